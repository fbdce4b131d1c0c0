"""The fraud model: trained on a rolling window of history, measured, checked, then promoted.

`fraud_model` saves a candidate version to the registry; `model_metrics` measures that saved
artifact on the held-out later days; a blocking check holds the metrics to their floors; only then
does `production_model` move the registry's production pointer, which the live scorer follows.
"""

import datetime as dt

import dagster as dg

from payment_platform.features.parity import compare_drivers
from payment_platform.model.pipeline import (
    Candidate,
    MetricFloors,
    TrainingPlan,
    evaluate_candidate,
    load_training_payments,
    train_candidate,
)
from payment_platform.resources import HistoryStoreResource, ModelRegistryResource, ScoreStoreResource

MODEL_METRICS_FLOORS_CHECK = "metrics_clear_floors"
FEATURE_PARITY_CHECK = "online_features_match_training"


class TrainingConfig(dg.Config):
    """The training window and split. Defaults suit the synthetic world's daily history."""

    source: str = "synthetic"  # "synthetic": the history partitions; "database": the platform's own labelled payments
    until: str | None = None  # last day of the window (event time, YYYY-MM-DD); default: latest available day
    window_days: int = 72
    warmup_days: int = 14  # history before the training days, used only to build behavioural features
    test_days: int = 14
    gap_days: int = 7  # as long as the label delay
    seed: int = 0


@dg.asset(
    key="fraud_model",
    group_name="model",
    deps=["transaction_history"],
    kinds={"scikitlearn"},
    check_specs=[dg.AssetCheckSpec(FEATURE_PARITY_CHECK, asset="fraud_model", blocking=True)],
)
def fraud_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    history: HistoryStoreResource,
    score_store: ScoreStoreResource,
    model_registry: ModelRegistryResource,
) -> object:
    """A candidate model trained on the earlier days of the window, saved as a new registry version.

    Its check streams the same payments through the live scorer's feature state and compares every row
    with the training features: a model is only as good as the features it will be served."""
    plan = TrainingPlan(
        source=config.source,
        until=dt.date.fromisoformat(config.until) if config.until else None,
        window_days=config.window_days,
        warmup_days=config.warmup_days,
        test_days=config.test_days,
        gap_days=config.gap_days,
        seed=config.seed,
    )
    payments, window = load_training_payments(plan, history.store(), score_store.url)
    context.log.info(f"training on {len(payments):,} payments from {window.start} to {window.end}")
    candidate = train_candidate(payments, window, plan, model_registry.registry())
    parity = compare_drivers(payments)
    yield dg.Output(
        candidate,
        metadata={
            "version": candidate.version,
            "source": plan.source,
            "window_start": str(window.start),
            "window_end": str(window.end),
            "train_rows": candidate.train_rows,
            "train_fraud_rate": candidate.train_fraud_rate,
            "review_threshold": candidate.review_threshold,
            "decline_threshold": candidate.decline_threshold,
        },
    )
    yield dg.AssetCheckResult(
        check_name=FEATURE_PARITY_CHECK,
        passed=parity.passed,
        description=(
            f"online and training features agree on all {parity.rows:,} payments"
            if parity.passed
            else f"{parity.mismatched_rows:,} of {parity.rows:,} payments differ, most in {parity.worst_feature}"
        ),
        metadata={
            "payments": parity.rows,
            "mismatched_rows": parity.mismatched_rows,
            "max_abs_difference": parity.max_abs_difference,
        },
    )


@dg.asset(
    key="model_metrics",
    group_name="model",
    check_specs=[dg.AssetCheckSpec(MODEL_METRICS_FLOORS_CHECK, asset="model_metrics", blocking=True)],
)
def model_metrics(
    context: dg.AssetExecutionContext,
    fraud_model: Candidate,
    history: HistoryStoreResource,
    score_store: ScoreStoreResource,
    model_registry: ModelRegistryResource,
) -> object:
    """The saved candidate measured on the held-out test days (CONTRACTS §5), plotted across versions."""
    metrics = evaluate_candidate(fraud_model, history.store(), score_store.url, model_registry.registry())
    floors = MetricFloors()
    failures = floors.failures(metrics)
    values = metrics.as_dict()
    context.log.info(f"model {fraud_model.version}: {values}")
    yield dg.Output(values, metadata={"version": fraud_model.version, **values})
    yield dg.AssetCheckResult(
        check_name=MODEL_METRICS_FLOORS_CHECK,
        passed=not failures,
        description="; ".join(failures) or "all metrics clear their floors",
        metadata={"version": fraud_model.version, **floors.as_dict()},
    )


@dg.asset(key="production_model", group_name="model", deps=["model_metrics"])
def production_model(
    context: dg.AssetExecutionContext, fraud_model: Candidate, model_registry: ModelRegistryResource
) -> dg.MaterializeResult:
    """Promotes the candidate: the live scorer switches to it within seconds, without a restart."""
    registry = model_registry.registry()
    previous = registry.production_version()
    registry.promote(fraud_model.version)
    context.log.info(f"promoted model {fraud_model.version} (was {previous})")
    return dg.MaterializeResult(metadata={"version": fraud_model.version, "previous_version": previous or ""})


train_job = dg.define_asset_job(
    "train_model", selection=dg.AssetSelection.assets(fraud_model, model_metrics, production_model)
)
