"""The sensor that keeps the stream scored: N scoring runs alive, one per slot, all in one consumer group.

On a fresh install it first materializes the missing history and trains a model. A run that has gone
silent (its process died, or is stuck) is stopped through the run launcher before its slot gets a new
run, so that a slot never has two scorers alive.
"""

import datetime as dt
import time

import dagster as dg

from payment_platform.defs.history import history_job
from payment_platform.defs.model import TrainingConfig, train_job
from payment_platform.defs.resources import PaymentHomeResource, ScorerPoolResource
from payment_platform.defs.scoring import SCORE_JOB, score_payments
from payment_platform.training_data import missing_history_days

SLOT_TAG = "payment_platform/scorer_slot"
SCORER_SILENCE_S = 120.0  # the scorer reports progress every 10 s: this long without an event, it is gone
STOP_GRACE_S = 30.0  # a stopping scorer commits within 10 s; after this it is stopped again and marked failed
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def in_flight(instance: dg.DagsterInstance, job_name: str) -> list[dg.DagsterRun]:
    """Runs of the job that are queued, starting, running or being stopped."""
    return list(instance.get_runs(filters=dg.RunsFilter(job_name=job_name, statuses=IN_FLIGHT)))


def seconds_since_last_event(instance: dg.DagsterInstance, run: dg.DagsterRun) -> float:
    records = instance.get_records_for_run(run.run_id, ascending=False, limit=1).records
    last_event = records[0].event_log_entry.timestamp if records else 0.0
    return time.time() - last_event


def seconds_in_status(instance: dg.DagsterInstance, run: dg.DagsterRun) -> float:
    record = instance.get_run_record_by_id(run.run_id)
    return 0.0 if record is None else time.time() - record.update_timestamp.timestamp()


def worker_gone(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Whether the run launcher can tell that the run's process or container no longer runs."""
    launcher = instance.run_launcher
    if not launcher.supports_check_run_worker_health:
        return False
    # WorkerStatus is not exported by dagster: its values are stable strings.
    return launcher.check_run_worker_health(run).status.value in ("NOT_FOUND", "FAILED", "SUCCESS")


def stop_run(instance: dg.DagsterInstance, run: dg.DagsterRun, why: str) -> None:
    """Ask the run launcher to stop the run's process (the scorer commits its batch in hand and exits)."""
    instance.report_engine_event(f"keep_scoring: stopping this run: {why}", run)
    instance.run_launcher.terminate(run.run_id)


def retire_stuck_run(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Handle a run that is alive on paper but not in fact; True once its slot is free again.

    A silent run is asked to stop first. One still stopping STOP_GRACE_S later is signalled once
    more (a second signal interrupts the scorer at once), then marked failed, and only then does its
    slot get a new run."""
    if run.status == dg.DagsterRunStatus.STARTED and seconds_since_last_event(instance, run) >= SCORER_SILENCE_S:
        if worker_gone(instance, run):
            instance.report_run_failed(run, "keep_scoring: the scorer's process is gone")
            return True
        stop_run(instance, run, f"no progress from the scorer for {SCORER_SILENCE_S:.0f}s")
        return False
    if run.status == dg.DagsterRunStatus.CANCELING and (
        seconds_in_status(instance, run) >= STOP_GRACE_S or worker_gone(instance, run)
    ):
        instance.run_launcher.terminate(run.run_id)
        instance.report_run_failed(run, f"keep_scoring: the scorer did not stop within {STOP_GRACE_S:.0f}s")
        return True
    return False


def slot_of(run: dg.DagsterRun) -> int | None:
    try:
        return int(run.tags[SLOT_TAG])
    except (KeyError, ValueError):
        return None


def scoring_requests(instance: dg.DagsterInstance, slots: int) -> tuple[list[dg.RunRequest], list[str]]:
    """A run request for every free slot, and what happened to the others."""
    notes: list[str] = []
    occupied: set[int] = set()
    untagged = 0
    for run in in_flight(instance, SCORE_JOB):
        slot = slot_of(run)
        if retire_stuck_run(instance, run):
            notes.append(f"slot {slot}: run {run.run_id[:8]} was stuck, marked failed")
            continue
        if slot is None:
            untagged += 1  # launched by hand: it holds a slot all the same
        elif slot >= slots:
            if run.status != dg.DagsterRunStatus.CANCELING:
                stop_run(instance, run, f"PAYMENT_SCORERS is {slots}: slot {slot} is no longer wanted")
            notes.append(f"slot {slot}: stopping, only {slots} wanted")
        else:
            occupied.add(slot)
    free = [slot for slot in range(slots) if slot not in occupied][untagged:]
    requests = [dg.RunRequest(job_name=SCORE_JOB, tags={SLOT_TAG: str(slot)}) for slot in free]
    return requests, notes


def training_request(instance: dg.DagsterInstance, payment_home: PaymentHomeResource) -> dg.RunRequest | None:
    """The history or training run a fresh install needs next; None while one is in flight."""
    if in_flight(instance, train_job.name) or in_flight(instance, history_job.name):
        return None
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    missing = missing_history_days(payment_home.history(), yesterday, TrainingConfig().window_days)
    if missing:
        return dg.RunRequest(
            job_name=history_job.name,
            tags={
                "dagster/asset_partition_range_start": missing[0].isoformat(),
                "dagster/asset_partition_range_end": missing[-1].isoformat(),
            },
        )
    return dg.RunRequest(job_name=train_job.name)


@dg.sensor(
    name="keep_scoring",
    jobs=[score_payments, train_job, history_job],
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=5,  # a fresh install moves from history to training to scoring without waiting
)
def keep_scoring(
    context: dg.SensorEvaluationContext, payment_home: PaymentHomeResource, scorer_pool: ScorerPoolResource
) -> dg.SensorResult | dg.SkipReason:
    """Keeps PAYMENT_SCORERS scoring runs alive (one per slot, tagged); trains a model first on a fresh install."""
    instance = context.instance
    if payment_home.registry().production_version() is None:
        request = training_request(instance, payment_home)
        if request is None:
            return dg.SkipReason("no promoted model yet: waiting for the training runs in progress")
        return dg.SensorResult(run_requests=[request])
    requests, notes = scoring_requests(instance, scorer_pool.size)
    if not requests:
        return dg.SkipReason("; ".join([*notes, f"all {scorer_pool.size} scoring slots have a run"]))
    for note in notes:
        context.log.info(note)
    return dg.SensorResult(run_requests=requests)
