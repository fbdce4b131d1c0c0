"""The keep_scoring sensor, evaluated with `dg.build_sensor_context` on a real test instance.

Runs are put in the instance's run storage in the status under test by the run events that set them,
as the run coordinator and the run launcher would; the sensor's decisions are then read back from the
same instance (run requests, the runs it stopped or marked failed, the events it left).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from payment_platform.defs import keep_scoring as keep_scoring_defs
from payment_platform.defs.keep_scoring import IN_FLIGHT, SLOT_TAG, keep_scoring
from payment_platform.defs.model import TrainingConfig
from payment_platform.defs.resources import ScorerPoolResource
from payment_platform.model.pipeline import training_window
from payment_platform_tests.dagster_face.support import RANGE_END, RANGE_START, platform_defs, promote_a_model

FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]

# The run event that moves a run into each status, as the run coordinator and launcher report it.
STATUS_EVENT = {
    dg.DagsterRunStatus.QUEUED: dg.DagsterEventType.RUN_ENQUEUED,
    dg.DagsterRunStatus.STARTING: dg.DagsterEventType.RUN_STARTING,
    dg.DagsterRunStatus.STARTED: dg.DagsterEventType.RUN_START,
    dg.DagsterRunStatus.CANCELING: dg.DagsterEventType.RUN_CANCELING,
    dg.DagsterRunStatus.SUCCESS: dg.DagsterEventType.RUN_SUCCESS,
    dg.DagsterRunStatus.FAILURE: dg.DagsterEventType.RUN_FAILURE,
    dg.DagsterRunStatus.CANCELED: dg.DagsterEventType.RUN_CANCELED,
}


def evaluate_sensor(
    instance: dg.DagsterInstance, resources: dict[str, dg.ConfigurableResource], scorers: int = 1
) -> dg.SensorResult | dg.SkipReason:
    context = dg.build_sensor_context(
        instance=instance,
        resources={"payment_home": resources["payment_home"], "scorer_pool": ScorerPoolResource(size=scorers)},
    )
    return keep_scoring(context)


def run_requests(result: dg.SensorResult | dg.SkipReason) -> list[dg.RunRequest]:
    return [] if isinstance(result, dg.SkipReason) else list(result.run_requests or [])


def requested_slots(result: dg.SensorResult | dg.SkipReason) -> list[str]:
    requests = run_requests(result)
    assert {request.job_name for request in requests} <= {"score_payments"}
    return sorted(request.tags[SLOT_TAG] for request in requests)


def add_run(
    instance: dg.DagsterInstance,
    resources: dict[str, dg.ConfigurableResource],
    job_name: str,
    status: dg.DagsterRunStatus = dg.DagsterRunStatus.STARTED,
    slot: int | None = None,
) -> dg.DagsterRun:
    """A run of the job in the instance, brought to `status` by the run event that sets it.

    The run carries the origin of its code, as a launch from the UI or a sensor does (a queued run needs it)."""
    location = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="payment_platform.definitions", attribute="defs"),
        location_name="payment_platform",
    )
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), job_name)
    run = instance.create_run_for_job(
        platform_defs(resources).resolve_job_def(job_name),
        remote_job_origin=origin,
        tags={SLOT_TAG: str(slot)} if slot is not None else None,
    )
    if status in STATUS_EVENT:
        instance.report_dagster_event(
            dg.DagsterEvent(event_type_value=STATUS_EVENT[status].value, job_name=job_name), run_id=run.run_id
        )
    stored = instance.get_run_by_id(run.run_id)
    assert stored is not None and stored.status == status
    return stored


def status_of(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dg.DagsterRunStatus:
    stored = instance.get_run_by_id(run.run_id)
    assert stored is not None
    return stored.status


def run_messages(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[str]:
    return [record.event_log_entry.message for record in instance.get_records_for_run(run.run_id).records]


def sensor_window() -> list[dt.date]:
    """The days the sensor wants before training: the default window ending yesterday (UTC)."""
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    return training_window(yesterday, TrainingConfig().window_days).days()


def write_history_files(home: Path, days: list[dt.date]) -> None:
    """Partitions as the sensor sees them: it only looks for the files."""
    (home / "history").mkdir(parents=True, exist_ok=True)
    for day in days:
        (home / "history" / f"date={day.isoformat()}.parquet").touch()


# --- scoring slots -------------------------------------------------------------------------------


def test_sensor_starts_one_tagged_scorer_by_default(
    resources: dict[str, dg.ConfigurableResource], instance: dg.DagsterInstance, home: Path
) -> None:
    promote_a_model(home)
    (request,) = run_requests(evaluate_sensor(instance, resources))
    assert (request.job_name, request.tags[SLOT_TAG]) == ("score_payments", "0")
    assert request.run_key is None  # a restart after the scorer ended must not be deduplicated away


def test_sensor_fills_every_free_slot_of_the_pool(
    resources: dict[str, dg.ConfigurableResource], instance: dg.DagsterInstance, home: Path
) -> None:
    promote_a_model(home)
    add_run(instance, resources, "score_payments", slot=1)
    assert requested_slots(evaluate_sensor(instance, resources, scorers=3)) == ["0", "2"]


def test_a_run_launched_by_hand_holds_a_slot(
    resources: dict[str, dg.ConfigurableResource], instance: dg.DagsterInstance, home: Path
) -> None:
    promote_a_model(home)
    add_run(instance, resources, "score_payments")  # from the launchpad: no slot tag
    assert isinstance(evaluate_sensor(instance, resources), dg.SkipReason)
    assert requested_slots(evaluate_sensor(instance, resources, scorers=2)) == ["1"]


@pytest.mark.parametrize("status", IN_FLIGHT, ids=lambda s: s.value)
def test_sensor_skips_a_slot_whose_run_is_in_flight(
    resources: dict[str, dg.ConfigurableResource],
    instance: dg.DagsterInstance,
    home: Path,
    status: dg.DagsterRunStatus,
) -> None:
    promote_a_model(home)
    add_run(instance, resources, "score_payments", status, slot=0)
    result = evaluate_sensor(instance, resources)
    assert isinstance(result, dg.SkipReason)
    assert "all 1 scoring slots have a run" in (result.skip_message or "")


@pytest.mark.parametrize("status", FINISHED, ids=lambda s: s.value)
def test_sensor_restarts_the_scorer_after_its_run_ended(
    resources: dict[str, dg.ConfigurableResource],
    instance: dg.DagsterInstance,
    home: Path,
    status: dg.DagsterRunStatus,
) -> None:
    promote_a_model(home)
    add_run(instance, resources, "score_payments", status, slot=0)
    assert requested_slots(evaluate_sensor(instance, resources)) == ["0"]


def test_sensor_stops_the_runs_of_slots_no_longer_wanted(
    resources: dict[str, dg.ConfigurableResource], instance: dg.DagsterInstance, home: Path
) -> None:
    promote_a_model(home)
    kept = add_run(instance, resources, "score_payments", slot=0)
    extra = add_run(instance, resources, "score_payments", slot=1)
    assert isinstance(evaluate_sensor(instance, resources, scorers=1), dg.SkipReason)
    assert status_of(instance, kept) == dg.DagsterRunStatus.STARTED
    assert status_of(instance, extra) == dg.DagsterRunStatus.CANCELING  # asked to stop through the run launcher


# --- a silent run is stopped before its slot gets another ----------------------------------------


def test_a_silent_scorer_is_stopped_then_marked_failed_before_its_slot_is_refilled(
    resources: dict[str, dg.ConfigurableResource],
    instance: dg.DagsterInstance,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    promote_a_model(home)
    silent = add_run(instance, resources, "score_payments", slot=0)
    monkeypatch.setattr(keep_scoring_defs, "SCORER_SILENCE_S", 0)

    # First tick: the run launcher is asked to stop the run's process; nothing new starts yet.
    first = evaluate_sensor(instance, resources)
    assert isinstance(first, dg.SkipReason)
    assert status_of(instance, silent) == dg.DagsterRunStatus.CANCELING
    assert any("keep_scoring: stopping this run: no progress" in m for m in run_messages(instance, silent))

    # Within the grace period the slot stays held, however often the sensor ticks.
    assert isinstance(evaluate_sensor(instance, resources), dg.SkipReason)

    # Past it, the run is stopped once more, marked failed, and only then is its slot refilled.
    monkeypatch.setattr(keep_scoring_defs, "STOP_GRACE_S", 0)
    assert requested_slots(evaluate_sensor(instance, resources)) == ["0"]
    assert status_of(instance, silent) == dg.DagsterRunStatus.FAILURE
    assert any("did not stop within" in m for m in run_messages(instance, silent))


def test_a_scorer_that_stops_when_asked_frees_its_slot_without_a_failure(
    resources: dict[str, dg.ConfigurableResource],
    instance: dg.DagsterInstance,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    promote_a_model(home)
    silent = add_run(instance, resources, "score_payments", slot=0)
    monkeypatch.setattr(keep_scoring_defs, "SCORER_SILENCE_S", 0)
    assert isinstance(evaluate_sensor(instance, resources), dg.SkipReason)
    instance.report_run_canceled(instance.get_run_by_id(silent.run_id))  # its process committed and exited

    assert requested_slots(evaluate_sensor(instance, resources)) == ["0"]
    assert status_of(instance, silent) == dg.DagsterRunStatus.CANCELED


@pytest.mark.parametrize("status", [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING], ids=lambda s: s.value)
def test_sensor_never_stops_a_scoring_run_that_has_not_started(
    resources: dict[str, dg.ConfigurableResource],
    instance: dg.DagsterInstance,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    status: dg.DagsterRunStatus,
) -> None:
    promote_a_model(home)
    waiting = add_run(instance, resources, "score_payments", status, slot=0)
    monkeypatch.setattr(keep_scoring_defs, "SCORER_SILENCE_S", 0)
    assert isinstance(evaluate_sensor(instance, resources), dg.SkipReason)
    assert status_of(instance, waiting) == status


def test_a_scorer_that_reports_progress_is_left_alone(
    resources: dict[str, dg.ConfigurableResource], instance: dg.DagsterInstance, home: Path
) -> None:
    promote_a_model(home)
    busy = add_run(instance, resources, "score_payments", slot=0)  # its start event is seconds old
    assert isinstance(evaluate_sensor(instance, resources), dg.SkipReason)
    assert status_of(instance, busy) == dg.DagsterRunStatus.STARTED


# --- a fresh install: history, then training -----------------------------------------------------


def test_sensor_materializes_the_missing_history_first(
    resources: dict[str, dg.ConfigurableResource], instance: dg.DagsterInstance, home: Path
) -> None:
    window = sensor_window()
    assert len(window) == TrainingConfig().window_days
    write_history_files(home, window[-10:])
    (request,) = run_requests(evaluate_sensor(instance, resources))
    assert request.job_name == "materialize_history"
    assert request.tags[RANGE_START] == window[0].isoformat()
    assert request.tags[RANGE_END] == window[-11].isoformat()


def test_sensor_requests_the_whole_window_on_a_fresh_install(
    resources: dict[str, dg.ConfigurableResource], instance: dg.DagsterInstance
) -> None:
    window = sensor_window()
    (request,) = run_requests(evaluate_sensor(instance, resources))
    assert request.job_name == "materialize_history"
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == (window[0].isoformat(), window[-1].isoformat())


def test_sensor_trains_when_the_history_is_complete(
    resources: dict[str, dg.ConfigurableResource], instance: dg.DagsterInstance, home: Path
) -> None:
    write_history_files(home, sensor_window())
    (request,) = run_requests(evaluate_sensor(instance, resources))
    assert request.job_name == "train_model"


@pytest.mark.parametrize("job_name", ["train_model", "materialize_history"])
def test_sensor_waits_for_training_runs_in_progress(
    resources: dict[str, dg.ConfigurableResource], instance: dg.DagsterInstance, home: Path, job_name: str
) -> None:
    write_history_files(home, sensor_window())
    add_run(instance, resources, job_name)
    result = evaluate_sensor(instance, resources)
    assert isinstance(result, dg.SkipReason)
    assert "training runs in progress" in (result.skip_message or "")


def test_sensor_trains_again_after_a_failed_training_run(
    resources: dict[str, dg.ConfigurableResource], instance: dg.DagsterInstance, home: Path
) -> None:
    write_history_files(home, sensor_window())
    add_run(instance, resources, "train_model", dg.DagsterRunStatus.FAILURE)
    (request,) = run_requests(evaluate_sensor(instance, resources))
    assert request.job_name == "train_model"
