"""What the command line does through Dagster, recorded in the instance like a launch from the UI.

The CLI imports Dagster only through this module (and only in the commands that need it).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import dagster as dg

from payment_platform.defs.history import history_job
from payment_platform.defs.model import TrainingConfig, train_job
from payment_platform.defs.scoring import SCORE_JOB
from payment_platform.settings import Settings
from payment_platform.store.history import HistoryStore
from payment_platform.training_data import missing_history_days


class TrainingFailed(RuntimeError):
    """Training did not produce a promoted model; the text says why."""


EMBEDDED_INSTANCE_CONFIG = """\
# The embedded Dagster instance of the local quick start (SQLite under PAYMENT_HOME).
# A real deployment uses deploy/dagster.yaml (dagster-mysql).
run_coordinator:
  module: dagster
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 8
    dequeue_interval_seconds: 2
python_logs:
  managed_python_loggers: [payment_platform]
  python_log_level: INFO
telemetry:
  enabled: false
nux:
  enabled: false
"""


def write_embedded_instance_config(settings: Settings) -> Path:
    """Create the embedded instance's home and its dagster.yaml, unless the user wrote one; the home."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    config = settings.dagster_home / "dagster.yaml"
    if not config.exists() or not config.read_text().strip():
        config.write_text(EMBEDDED_INSTANCE_CONFIG)
    return settings.dagster_home


def dagster_instance(settings: Settings) -> dg.DagsterInstance:
    """The instance at DAGSTER_HOME, or the embedded one under PAYMENT_HOME.

    The platform's variables are filled in for this process, so the resources' EnvVars resolve here as
    they do in a run launched by the daemon."""
    for name, value in settings.as_environment().items():
        os.environ.setdefault(name, value)
    if not os.environ.get("DAGSTER_HOME"):
        os.environ["DAGSTER_HOME"] = str(write_embedded_instance_config(settings))
    return dg.DagsterInstance.get()


def _definitions() -> dg.Definitions:
    from payment_platform.definitions import defs

    return defs()


def train_through_dagster(
    settings: Settings, *, source: str = "synthetic", until: dt.date | None = None, **plan: int
) -> tuple[str, dict[str, object]]:
    """Materialise the missing history window (synthetic source), then model, metrics, checks and promotion.

    `plan` sets other TrainingPlan fields (e.g. test_days) for this run.

    Returns the promoted version and its metrics; raises TrainingFailed when a run fails or the
    model does not clear its checks (it is then not promoted).
    """
    instance = dagster_instance(settings)
    definitions = _definitions()
    config = TrainingConfig(source=source, until=until.isoformat() if until else None, **plan)
    if source == "synthetic":
        last_day = until or dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
        missing = missing_history_days(HistoryStore(settings.history_dir), last_day, config.window_days)
        if missing:
            history = definitions.resolve_job_def(history_job.name).execute_in_process(
                instance=instance,
                tags={
                    "dagster/asset_partition_range_start": missing[0].isoformat(),
                    "dagster/asset_partition_range_end": missing[-1].isoformat(),
                },
                raise_on_error=False,
            )
            if not history.success:
                raise TrainingFailed(f"materializing the history failed (run {history.run_id})")
        config = TrainingConfig(source=source, until=last_day.isoformat(), **plan)

    result = definitions.resolve_job_def(train_job.name).execute_in_process(
        instance=instance,
        run_config=dg.RunConfig(ops={"fraud_model": config}),
        raise_on_error=False,
    )
    failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
    if not result.success and not failed:  # a failed blocking check also fails the run: reported below
        failure = next((e for e in result.all_events if e.is_step_failure), None)
        error = failure.step_failure_data.error if failure else None
        while error is not None and error.cause is not None:  # Dagster wraps the user code's exception
            error = error.cause
        reason = error.message.strip().splitlines()[-1] if error else "see the run"
        raise TrainingFailed(f"training run {result.run_id} failed: {reason}")
    candidate = result.output_for_node("fraud_model")
    promoted = {e.asset_key for e in result.get_asset_materialization_events()}
    if failed or dg.AssetKey("production_model") not in promoted:
        why = "; ".join(c.description or c.check_name for c in failed) or "production_model was not materialized"
        raise TrainingFailed(f"model {candidate.version} failed its checks and was not promoted: {why}")
    return candidate.version, result.output_for_node("model_metrics")


def stop_scoring_runs(settings: Settings, timeout_s: float) -> list[tuple[str, str]]:
    """Stop every scoring run of the instance through its run launcher, and wait for them to end.

    Each scorer commits its batch in hand and its run ends as CANCELED. Returns (run id, final status)
    of each run that was in flight."""
    from payment_platform.defs.keep_scoring import IN_FLIGHT

    with dagster_instance(settings) as instance:
        runs = list(instance.get_runs(filters=dg.RunsFilter(job_name=SCORE_JOB, statuses=IN_FLIGHT)))
        for run in runs:
            if run.status in (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING):
                instance.run_launcher.terminate(run.run_id)
            else:  # queued or not started: no process to stop
                instance.report_run_canceled(run, "stopped before it started: the local stack is shutting down")
        deadline = time.monotonic() + timeout_s
        final: dict[str, str] = {}
        while len(final) < len(runs) and time.monotonic() < deadline:
            for run in runs:
                current = instance.get_run_by_id(run.run_id)
                if current is not None and current.is_finished:
                    final[run.run_id] = current.status.value
            time.sleep(0.1)
    return [(run.run_id, final.get(run.run_id, "still running")) for run in runs]
