"""How the serving model does on live traffic, one day at a time, once that day's labels have matured.

A model's test metrics are a promise made on history; this asset measures the same quantities (AUC,
AP, CP@100, precision of the alerts) on what the scorer actually decided on a past day, against the
labels that came back since, and compares them with the test metrics of the model(s) that decided
that day, read from the registry. Its check warns when live quality falls clearly below the promise:
the traffic has drifted away from what the model learned, and it is time to retrain.
"""

import datetime as dt
from collections.abc import Iterator

import dagster as dg

from payment_platform.defs.partitions import daily_partitions, partition_days
from payment_platform.defs.resources import PaymentHomeResource, ScoreStoreResource
from payment_platform.defs.scoring import scored_transactions
from payment_platform.model import ModelRegistry, ModelRegistryError
from payment_platform.model.monitoring import (
    COMPARED_METRICS,
    LiveQuality,
    drift_findings,
    measure_live_quality,
    served_test_metrics,
)
from payment_platform.store.outcomes import read_day_outcomes

LIVE_QUALITY_CHECK = "live_quality_near_test_metrics"
LABEL_LAG_DAYS = 8  # the 7-day label delay, and a day of margin


@dg.asset(
    key="live_model_performance",
    group_name="reports",
    partitions_def=daily_partitions,
    deps=[scored_transactions],
    check_specs=[dg.AssetCheckSpec(LIVE_QUALITY_CHECK, asset="live_model_performance")],
)
def live_model_performance(
    context: dg.AssetExecutionContext, score_store: ScoreStoreResource, payment_home: PaymentHomeResource
) -> Iterator[dg.Output[dict[str, float]] | dg.AssetCheckResult]:
    """The live scores of one past day against its matured labels (unlabelled: genuine), next to the test
    metrics of the model versions that scored it."""
    (day,) = partition_days(context)
    engine = score_store.engine()
    try:
        rows = read_day_outcomes(engine, day)
    finally:
        engine.dispose()
    live = measure_live_quality(rows)
    if live.undefined:
        context.log.warning(f"{day}: {live.undefined}")
    by_version = test_metrics_by_version(payment_home.registry(), live.model_versions, context)
    promised = served_test_metrics(by_version, rows)
    yield dg.Output(
        live.metrics,
        metadata={
            "payments": live.payments,
            "frauds": live.frauds,
            "labelled_share": live.labelled_share,
            "model_versions": ", ".join(live.model_versions),
            **{f"live_{name}": value for name, value in live.metrics.items()},
            **{f"test_{name}": value for name, value in promised.items()},
        },
    )
    yield drift_check(live, promised)


def test_metrics_by_version(
    registry: ModelRegistry, versions: tuple[str, ...], context: dg.AssetExecutionContext
) -> dict[str, dict[str, float]]:
    """The test metrics each version recorded in the registry when it was trained."""
    found: dict[str, dict[str, float]] = {}
    for version in versions:
        try:
            metrics = registry.metadata(version).get("metrics") or {}
        except ModelRegistryError as exc:
            context.log.warning(f"no test metrics for model {version}: {exc}")
            continue
        found[version] = {name: float(metrics[name]) for name in COMPARED_METRICS if metrics.get(name) is not None}
    return found


def drift_check(live: LiveQuality, promised: dict[str, float]) -> dg.AssetCheckResult:
    if not live.matured:
        return dg.AssetCheckResult(
            check_name=LIVE_QUALITY_CHECK,
            passed=True,
            description=(
                f"not measured: {live.labelled_share:.0%} of the day's payments are labelled, or one class only"
            ),
        )
    if not promised:
        return dg.AssetCheckResult(
            check_name=LIVE_QUALITY_CHECK,
            passed=True,
            description="the serving models' test metrics are not in the registry: nothing to compare with",
        )
    below = drift_findings(live, promised)
    return dg.AssetCheckResult(
        check_name=LIVE_QUALITY_CHECK,
        passed=not below,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(below) or "live quality is in line with the serving model's test metrics",
        metadata={f"live_{k}": v for k, v in live.metrics.items()},
    )


live_quality_job = dg.define_asset_job("live_quality", selection=dg.AssetSelection.assets(live_model_performance))


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
