"""How the promoted model does on live traffic, one day at a time, once that day's labels have matured.

The test metrics of `model_metrics` are a promise made on history; this asset measures the same
quantities (AUC, AP, CP@100, precision of the alerts) on what the scorer actually decided on a past day,
against the labels that came back since. Its check warns when live quality falls clearly below the
promise: the data has drifted away from what the model learned, and it is time to retrain.
"""

import datetime as dt

import dagster as dg
import numpy as np

from payment_platform.defs.history import partition_days
from payment_platform.defs.partitions import daily_partitions
from payment_platform.defs.scoring import scored_transactions
from payment_platform.model.metrics import UndefinedMetricError, average_precision, daily_card_precision_at_k, roc_auc
from payment_platform.resources import ScoreStoreResource
from payment_platform.store.outcomes import read_day_outcomes

LIVE_QUALITY_CHECK = "live_quality_near_test_metrics"
# "Clearly below": live AUC more than this under the test AUC, or live AP / CP@100 under this share of theirs.
AUC_DROP, SHARE_KEPT = 0.05, 0.5
MIN_LABELLED_SHARE = 0.5  # a day with fewer labelled payments has not matured yet
LABEL_LAG_DAYS = 8  # the 7-day label delay, and a day of margin


@dg.asset(
    key="live_model_performance",
    group_name="reports",
    partitions_def=daily_partitions,
    deps=[scored_transactions, "model_metrics"],
    check_specs=[dg.AssetCheckSpec(LIVE_QUALITY_CHECK, asset="live_model_performance")],
)
def live_model_performance(context: dg.AssetExecutionContext, score_store: ScoreStoreResource) -> object:
    """The live scores of one past day measured against its matured labels (unlabelled: genuine)."""
    (day,) = partition_days(context)
    engine = score_store.engine()
    try:
        rows = read_day_outcomes(engine, day)
    finally:
        engine.dispose()
    labelled_share = float(rows["is_fraud"].notna().mean()) if len(rows) else 0.0
    labels = rows["is_fraud"].fillna(0).to_numpy(dtype=int)
    alerts = (rows["status"] != "APPROVED").to_numpy()
    declined = (rows["status"] == "DECLINED").to_numpy()
    live: dict[str, float] = {}
    try:
        live["roc_auc"] = roc_auc(labels, rows["score"])
        live["average_precision"] = average_precision(labels, rows["score"])
        live["card_precision_at_k"] = float(
            daily_card_precision_at_k(rows["score"], labels, rows["customer_id"], rows["event_time"]).mean()
        )
    except UndefinedMetricError as exc:
        context.log.warning(f"{day}: {exc}")
    if alerts.any():
        live["precision_of_alerts"] = float(labels[alerts].mean())
    if declined.any():
        live["precision_of_declines"] = float(labels[declined].mean())
    promised = _test_metrics(context)
    yield dg.Output(
        live,
        metadata={
            "payments": len(rows),
            "frauds": int(labels.sum()),
            "labelled_share": labelled_share,
            "model_versions": ", ".join(sorted(rows["model_version"].unique())),
            **{f"live_{name}": value for name, value in live.items()},
            **{f"test_{name}": value for name, value in promised.items()},
        },
    )
    yield _drift_check(live, promised, labelled_share)


def _test_metrics(context: dg.AssetExecutionContext) -> dict[str, float]:
    """The test metrics of the latest `model_metrics` materialization (the promoted model's promise)."""
    event = context.instance.get_latest_materialization_event(dg.AssetKey("model_metrics"))
    if event is None or event.asset_materialization is None:
        return {}
    metadata = event.asset_materialization.metadata
    return {
        name: float(metadata[name].value)  # type: ignore[arg-type]
        for name in ("roc_auc", "average_precision", "card_precision_at_k")
        if name in metadata and metadata[name].value is not None
    }


def _drift_check(live: dict[str, float], promised: dict[str, float], labelled_share: float) -> dg.AssetCheckResult:
    if labelled_share < MIN_LABELLED_SHARE or "roc_auc" not in live:
        return dg.AssetCheckResult(
            check_name=LIVE_QUALITY_CHECK,
            passed=True,
            description=f"not measured: {labelled_share:.0%} of the day's payments are labelled, or one class only",
        )
    if not promised:
        return dg.AssetCheckResult(
            check_name=LIVE_QUALITY_CHECK, passed=True, description="no model_metrics to compare with yet"
        )
    below = []
    if "roc_auc" in promised and live["roc_auc"] < promised["roc_auc"] - AUC_DROP:
        below.append(f"AUC {live['roc_auc']:.3f} vs test {promised['roc_auc']:.3f}")
    for name in ("average_precision", "card_precision_at_k"):
        if name in promised and live.get(name, np.inf) < SHARE_KEPT * promised[name]:
            below.append(f"{name} {live[name]:.3f} vs test {promised[name]:.3f}")
    return dg.AssetCheckResult(
        check_name=LIVE_QUALITY_CHECK,
        passed=not below,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(below) or "live quality is in line with the test metrics",
        metadata={f"live_{k}": v for k, v in live.items()},
    )


live_quality_job = dg.define_asset_job(
    "live_quality", selection=dg.AssetSelection.assets(live_model_performance), partitions_def=daily_partitions
)


@dg.schedule(
    job=live_quality_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def live_quality_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """Each night, the day whose labels have just matured: LABEL_LAG_DAYS before the scheduled day."""
    day = (context.scheduled_execution_time - dt.timedelta(days=LABEL_LAG_DAYS)).date()
    if day < daily_partitions.start.date():
        return dg.SkipReason(f"{day} is before the first partition")
    return dg.RunRequest(partition_key=day.isoformat())
