"""The fraud model: trained on a rolling window of history, measured, checked, then promoted.

`fraud_model` measures a model on held-out later days, refits it on every labelled day and saves that as
a candidate version in the registry; `model_metrics` reads the held-out metrics back from the saved,
verified version; a blocking check holds them to their floors; only then does `production_model` move
the registry's production pointer, which the live scorer follows.
"""

from collections.abc import Iterator

import dagster as dg

from payment_platform.defs.resources import PaymentHomeResource, ScoreStoreResource
from payment_platform.features.parity import compare_drivers
from payment_platform.model.pipeline import (
    Candidate,
    MetricFloors,
    TrainingPlan,
    evaluate_candidate,
    train_candidate,
)
from payment_platform.training_data import load_training_payments

MODEL_METRICS_FLOORS_CHECK = "metrics_clear_floors"
FEATURE_PARITY_CHECK = "online_features_match_training"


class TrainingConfig(dg.Config, TrainingPlan):
    """The training window and its split (the fields are TrainingPlan's, in model/pipeline.py)."""


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
    payment_home: PaymentHomeResource,
    score_store: ScoreStoreResource,
) -> Iterator[dg.Output[Candidate] | dg.AssetCheckResult]:
    """A candidate model measured on the window's last days, then refit on all of them, saved as a new
    registry version.

    Its check streams the same payments through the live scorer's feature state and compares every row
    with the training features: a model is only as good as the features it will be served."""
    payments, window = load_training_payments(config, payment_home.history(), score_store.url)
    context.log.info(f"training on {len(payments):,} payments from {window.start} to {window.end}")
    candidate = train_candidate(payments, window, config, payment_home.registry())
    parity = compare_drivers(payments)
    yield dg.Output(
        candidate,
        metadata={
            "version": candidate.version,
            "source": config.source,
            "window_start": str(window.start),
            "window_end": str(window.end),
            "modelled_start": str(candidate.modelled_start),
            "train_rows": candidate.train_rows,
            "fitted_rows": candidate.fitted_rows,
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
    payment_home: PaymentHomeResource,
) -> Iterator[dg.Output[dict[str, float | int | None]] | dg.AssetCheckResult]:
    """The candidate's metrics on its held-out test days (docs/contracts.md §5), plotted across versions."""
    metrics = evaluate_candidate(fraud_model, payment_home.registry())
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
    context: dg.AssetExecutionContext, fraud_model: Candidate, payment_home: PaymentHomeResource
) -> dg.MaterializeResult:
    """Promotes the candidate: the live scorer switches to it within seconds, without a restart."""
    registry = payment_home.registry()
    previous = registry.production_version()
    registry.promote(fraud_model.version)
    context.log.info(f"promoted model {fraud_model.version} (was {previous})")
    return dg.MaterializeResult(metadata={"version": fraud_model.version, "previous_version": previous or ""})


# In one process: the three steps run one after the other anyway, and a fresh install waits for them.
train_job = dg.define_asset_job(
    "train_model",
    selection=dg.AssetSelection.assets(fraud_model, model_metrics, production_model),
    executor_def=dg.in_process_executor,
)
