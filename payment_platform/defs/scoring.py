"""The long-running scoring job, the sensor that keeps exactly one alive, and the live fraud-rate check."""

import datetime as dt
import time

import dagster as dg
import sqlalchemy as sa

from payment_platform.defs.history import history_job
from payment_platform.defs.model import TrainingConfig, train_job
from payment_platform.model.pipeline import training_window
from payment_platform.resources import (
    HistoryStoreResource,
    KafkaResource,
    ModelRegistryResource,
    ScoreStoreResource,
)
from payment_platform.store.tables import scored_transactions as scored_table
from payment_platform.stream.config import ScorerConfig
from payment_platform.stream.runner import run_scorer
from payment_platform.stream.stats import ScorerStats

SCORED_FRAUD_RATE_CHECK = "scored_fraud_rate_in_band"
SCORE_JOB = "score_payments"
SCORER_SILENCE_S = 120  # the scorer reports progress every 10 s; this long without an event means it is gone
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]

scored_transactions = dg.AssetSpec(
    "scored_transactions",
    group_name="scoring",
    description="Every scored payment with its decision (table scored_transactions), written by score_payments.",
    kinds={"mysql"},
)


class ScoreConfig(dg.Config):
    """Bounds for a finite run (tests, backfills of a topic); a live run leaves them empty."""

    max_messages: int | None = None
    idle_timeout_s: float | None = None
    batch_size: int = 5_000


@dg.op(out=dg.Out(dg.Nothing))
def score_stream(
    context: dg.OpExecutionContext,
    config: ScoreConfig,
    kafka: KafkaResource,
    score_store: ScoreStoreResource,
    model_registry: ModelRegistryResource,
) -> None:
    """Consume payments, score them with the promoted model and store the decisions until stopped.

    Terminating the run from the UI lets the scorer write and commit the batch in hand first.
    """
    setup = ScorerConfig(
        bootstrap=kafka.bootstrap_servers,
        consumer_group=kafka.consumer_group,
        payment_topic=kafka.payment_topic,
        labels_topic=kafka.labels_topic,
        dlq_topic=kafka.dlq_topic,
        decisions_topic=kafka.decisions_topic,
        db_url=score_store.url,
        model_dir=model_registry.registry().root,
        batch_size=config.batch_size,
    )

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
        setup, max_messages=config.max_messages, idle_timeout_s=config.idle_timeout_s, on_progress=report
    )
    report(stats)
    if stats.interrupted:  # the batch in hand is written and committed: now end the run as terminated
        raise dg.DagsterExecutionInterruptedError("scorer stopped on request after committing its last batch")


@dg.job(name=SCORE_JOB, executor_def=dg.in_process_executor, tags={"payment_platform/role": "scorer"})
def score_payments() -> None:
    """The streaming scorer: Kafka `payments` → features → model → decision → score store."""
    score_stream()


def _in_flight(instance: dg.DagsterInstance, job_names: list[str]) -> list[dg.DagsterRun]:
    """Runs of these jobs that are queued, starting, running or being cancelled."""
    return [
        run
        for name in job_names
        for run in instance.get_runs(filters=dg.RunsFilter(job_name=name, statuses=IN_FLIGHT), limit=1)
    ]


def _fail_if_silent(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Mark a started scoring run failed when its heartbeat stopped; True if it was.

    The scorer logs progress every few seconds; a run that has been silent for longer than
    SCORER_SILENCE_S lost its process (machine restart, kill -9) and would otherwise block the
    sensor forever, since the default run launcher cannot check its workers' health.
    """
    if run.status != dg.DagsterRunStatus.STARTED:
        return False
    records = instance.get_records_for_run(run.run_id, ascending=False, limit=1).records
    last_event = records[0].event_log_entry.timestamp if records else 0.0
    if time.time() - last_event < SCORER_SILENCE_S:
        return False
    instance.report_run_failed(run, f"no heartbeat from the scorer for {SCORER_SILENCE_S}s: its process is gone")
    return True


@dg.sensor(
    name="keep_scoring",
    jobs=[score_payments, train_job, history_job],
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=15,
)
def keep_scoring(
    context: dg.SensorEvaluationContext,
    model_registry: ModelRegistryResource,
    history: HistoryStoreResource,
) -> dg.SensorResult | dg.SkipReason:
    """Keeps exactly one scoring run alive; on a fresh install, trains and promotes a model first."""
    instance = context.instance
    scoring = _in_flight(instance, [SCORE_JOB])
    if scoring and not _fail_if_silent(instance, scoring[0]):
        return dg.SkipReason("a scoring run is already queued or in progress")
    if model_registry.registry().production_version() is not None:
        return dg.SensorResult(run_requests=[dg.RunRequest(job_name=SCORE_JOB)])
    if _in_flight(instance, [train_job.name, history_job.name]):
        return dg.SkipReason("no promoted model yet: waiting for the training runs in progress")
    plan = TrainingConfig()
    window = training_window(dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1), plan.window_days)
    store = history.store()
    missing = [day for day in window.days() if not store.path(day).exists()]
    if missing:
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    job_name=history_job.name,
                    tags={
                        "dagster/asset_partition_range_start": missing[0].isoformat(),
                        "dagster/asset_partition_range_end": missing[-1].isoformat(),
                    },
                )
            ]
        )
    return dg.SensorResult(run_requests=[dg.RunRequest(job_name=train_job.name)])


class ScoredFraudRateConfig(dg.Config):
    lookback_minutes: int = 60
    min_payments: int = 200
    flagged_min: float = 0.001  # band of the share of DECLINED + REVIEW
    flagged_max: float = 0.05
    model_flagged_min: float = 0.0005  # band of the share flagged by the model score
    model_flagged_max: float = 0.04
    error_factor: float = 2.0  # ERROR beyond band × factor (or below band ÷ factor), else WARN


def evaluate_rates(
    shares: dict[str, float], bands: dict[str, tuple[float, float]], factor: float
) -> dg.AssetCheckSeverity | None:
    """None when every share is within its band; WARN when slightly out; ERROR when far out."""
    worst: dg.AssetCheckSeverity | None = None
    for name, share in shares.items():
        low, high = bands[name]
        if low <= share <= high:
            continue
        if share > high * factor or share < low / factor:
            return dg.AssetCheckSeverity.ERROR
        worst = dg.AssetCheckSeverity.WARN
    return worst


@dg.asset_check(asset="scored_transactions", name=SCORED_FRAUD_RATE_CHECK)
def scored_fraud_rate_in_band(config: ScoredFraudRateConfig, score_store: ScoreStoreResource) -> dg.AssetCheckResult:
    """The share of recently scored payments that were flagged lies in its band."""
    since = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=config.lookback_minutes)
    engine = score_store.engine()
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.sum(sa.case((scored_table.c.status != "APPROVED", 1), else_=0)),
                    sa.func.sum(sa.case((scored_table.c.reasons.like("model_score%"), 1), else_=0)),
                ).where(scored_table.c.scored_at >= since)
            ).one()
    finally:
        engine.dispose()
    total, flagged, model_flagged = int(row[0]), int(row[1] or 0), int(row[2] or 0)
    metadata: dict[str, object] = {"payments": total, "lookback_minutes": config.lookback_minutes}
    if total < config.min_payments:
        return dg.AssetCheckResult(
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"only {total} payments scored in the last {config.lookback_minutes} min: too few to judge",
            metadata=metadata,
        )
    shares = {"flagged_share": flagged / total, "model_flagged_share": model_flagged / total}
    bands = {
        "flagged_share": (config.flagged_min, config.flagged_max),
        "model_flagged_share": (config.model_flagged_min, config.model_flagged_max),
    }
    severity = evaluate_rates(shares, bands, config.error_factor)
    metadata.update(shares)
    return dg.AssetCheckResult(
        passed=severity is None,
        severity=severity or dg.AssetCheckSeverity.WARN,
        description=(
            f"flagged {shares['flagged_share']:.2%} (band {config.flagged_min:.2%}–{config.flagged_max:.2%}), "
            f"model-flagged {shares['model_flagged_share']:.2%} "
            f"(band {config.model_flagged_min:.2%}–{config.model_flagged_max:.2%})"
        ),
        metadata=metadata,
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
