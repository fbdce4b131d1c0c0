"""The long-running scoring job, and the live fraud-rate check on what it writes."""

import datetime as dt

import dagster as dg

from payment_platform.defs.resources import KafkaResource, PaymentHomeResource, ScoreStoreResource
from payment_platform.model.monitoring import Finding, FlagRateBands
from payment_platform.settings import Settings
from payment_platform.store.outcomes import recent_flag_counts
from payment_platform.stream.config import ScorerConfig
from payment_platform.stream.runner import run_scorer
from payment_platform.stream.stats import ScorerStats

SCORE_JOB = "score_payments"
SCORED_FRAUD_RATE_CHECK = "scored_fraud_rate_in_band"

scored_transactions = dg.AssetSpec(
    "scored_transactions",
    group_name="scoring",
    deps=["production_model"],  # every row is scored by the promoted model, which the scorer follows
    description=(
        "Every scored payment with its decision (table scored_transactions, docs/contracts.md §2), "
        "written by the score_payments job with the promoted model."
    ),
    kinds={"mysql"},
)


class ScoreConfig(dg.Config):
    """Bounds for a finite run (tests, draining a topic); a live run leaves them empty. `max_idle_ms`: how
    long a partition at its end holds the others back before it counts as idle (more for a replay at full
    speed: README, Event time)."""

    max_messages: int | None = None
    idle_timeout_s: float | None = None
    batch_size: int = 5_000
    max_idle_ms: int = 20


def scorer_setup(
    kafka: KafkaResource,
    score_store: ScoreStoreResource,
    payment_home: PaymentHomeResource,
    batch_size: int,
    max_idle_ms: int = 20,
) -> ScorerConfig:
    """The scorer's configuration from the code location's resources."""
    return ScorerConfig(
        bootstrap=kafka.bootstrap_servers,
        consumer_group=kafka.consumer_group,
        payment_topic=kafka.payment_topic,
        labels_topic=kafka.labels_topic,
        dlq_topic=kafka.dlq_topic,
        decisions_topic=kafka.decisions_topic,
        db_url=score_store.url,
        model_dir=payment_home.registry().root,
        batch_size=batch_size,
        max_idle_ms=max_idle_ms,
        repartition=Settings.from_env().repartition,
    )


@dg.op(out=dg.Out(dg.Nothing))
def score_stream(
    context: dg.OpExecutionContext,
    config: ScoreConfig,
    kafka: KafkaResource,
    score_store: ScoreStoreResource,
    payment_home: PaymentHomeResource,
) -> None:
    """Consume payments, score them with the promoted model and store the decisions until stopped.

    Terminating the run lets the scorer write and commit the batch in hand; the step then ends as a
    success and the run as canceled (see `end_run_as_canceled`)."""

    def report(stats: ScorerStats) -> None:
        context.log.info(stats.summary())
        context.log_event(
            dg.AssetObservation(
                asset_key=scored_transactions.key,
                metadata={
                    "scored": stats.scored,
                    "payments_per_s": round(stats.rate, 1),
                    "dlq": stats.invalid,
                    "labels": stats.labels,
                    "consumer_lag": stats.lag if stats.lag is not None else -1,
                },
            )
        )

    stats = run_scorer(
        scorer_setup(kafka, score_store, payment_home, config.batch_size, config.max_idle_ms),
        max_messages=config.max_messages,
        idle_timeout_s=config.idle_timeout_s,
        on_progress=report,
    )
    report(stats)
    if stats.interrupted:
        context.log.info("scorer stopped on request: its last batch is written and committed")


STOPPED_ON_REQUEST = "The scorer stopped on request: its last batch is written and committed."


@dg.success_hook(name="end_run_as_canceled")
def end_run_as_canceled(context: dg.HookContext) -> None:
    """After a requested stop, record the run as CANCELED, cleanly.

    Terminating the run asks the scorer to stop; it writes and commits the batch in hand and its step
    succeeds. Dagster 1.13 would then record the run as SUCCESS (a run whose steps all succeeded),
    and a later terminal event overrides an earlier one (dagster-io/dagster#34175). So the run is
    reported canceled here, and the run worker interrupted: Dagster's run loop takes an interrupt of a
    run already canceled as its clean end, with no error and no further terminal event."""
    run = context.instance.get_run_by_id(context.run_id)
    if run is None or run.status != dg.DagsterRunStatus.CANCELING:
        return
    context.instance.report_run_canceled(run, STOPPED_ON_REQUEST)
    raise dg.DagsterExecutionInterruptedError(STOPPED_ON_REQUEST)


@dg.job(
    name=SCORE_JOB,
    executor_def=dg.in_process_executor,
    tags={"payment_platform/role": "scorer"},
    hooks={end_run_as_canceled},
)
def score_payments() -> None:
    """The streaming scorer: Kafka `payments` → features → model → decision → score store."""
    score_stream()


class ScoredFraudRateConfig(dg.Config, FlagRateBands):
    """The bands of the flagged share (the fields are FlagRateBands', in model/monitoring.py)."""


@dg.asset_check(asset=scored_transactions.key, name=SCORED_FRAUD_RATE_CHECK)
def scored_fraud_rate_in_band(config: ScoredFraudRateConfig, score_store: ScoreStoreResource) -> dg.AssetCheckResult:
    """The share of recently scored payments that were flagged lies in its band."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=config.lookback_minutes)
    engine = score_store.engine()
    try:
        counts = recent_flag_counts(engine, since)
    finally:
        engine.dispose()
    metadata: dict[str, float | int] = {"payments": counts.payments, "lookback_minutes": config.lookback_minutes}
    if counts.payments < config.min_payments:
        return dg.AssetCheckResult(
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            description=(
                f"only {counts.payments} payments scored in the last {config.lookback_minutes} min: too few to judge"
            ),
            metadata=metadata,
        )
    shares = counts.shares()
    finding = config.judge(shares)
    return dg.AssetCheckResult(
        passed=finding is Finding.IN_BAND,
        severity=dg.AssetCheckSeverity.ERROR if finding is Finding.ERROR else dg.AssetCheckSeverity.WARN,
        description=config.describe(shares),
        metadata={**metadata, **shares},
    )


scored_fraud_rate_job = dg.define_asset_job(
    "check_scored_fraud_rate", selection=dg.AssetSelection.checks(scored_fraud_rate_in_band)
)

scored_fraud_rate_schedule = dg.ScheduleDefinition(
    name="scored_fraud_rate_schedule",
    job=scored_fraud_rate_job,
    cron_schedule="*/15 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
