"""Operations the command line runs through Dagster, recorded in the instance like launches from the UI."""

from __future__ import annotations

import datetime as dt
import os

import dagster as dg

from payment_platform.settings import Settings


class TrainingFailed(RuntimeError):
    """Training did not produce a promoted model; the text says why."""


EMBEDDED_INSTANCE_CONFIG = """\
# The embedded Dagster instance of the local quick start (SQLite under PAYMENT_HOME).
# A real deployment uses deploy/dagster.yaml (dagster-mysql).
run_coordinator:
  module: dagster
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 4
python_logs:
  managed_python_loggers: [payment_platform]
  python_log_level: INFO
telemetry:
  enabled: false
"""


def write_embedded_instance_config(settings: Settings) -> None:
    """Create the embedded instance's home and its dagster.yaml, unless the user wrote one."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    config = settings.dagster_home / "dagster.yaml"
    if not config.exists() or not config.read_text().strip():
        config.write_text(EMBEDDED_INSTANCE_CONFIG)


def dagster_instance(settings: Settings) -> dg.DagsterInstance:
    """The instance at DAGSTER_HOME, or the embedded one under PAYMENT_HOME."""
    if not os.environ.get("DAGSTER_HOME"):
        write_embedded_instance_config(settings)
        os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    return dg.DagsterInstance.get()


def train_through_dagster(
    settings: Settings, *, source: str = "synthetic", until: dt.date | None = None
) -> tuple[str, dict[str, object]]:
    """Materialise the history window (synthetic source), then model, metrics, checks and promotion.

    Returns the promoted version and its metrics; raises TrainingFailed when a run fails or the
    model does not clear its checks (it is then not promoted).
    """
    from payment_platform.definitions import defs
    from payment_platform.defs.model import TrainingConfig
    from payment_platform.model.pipeline import training_window
    from payment_platform.store.history import HistoryStore

    instance = dagster_instance(settings)
    plan = TrainingConfig(source=source, until=until.isoformat() if until else None)
    if source == "synthetic":
        last_day = until or dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
        window = training_window(last_day, plan.window_days)
        store = HistoryStore(settings.history_dir)
        missing = [day for day in window.days() if not store.path(day).exists()]
        if missing:
            history = defs.get_job_def("materialize_history").execute_in_process(
                instance=instance,
                tags={
                    "dagster/asset_partition_range_start": missing[0].isoformat(),
                    "dagster/asset_partition_range_end": missing[-1].isoformat(),
                },
                raise_on_error=False,
            )
            if not history.success:
                raise TrainingFailed(f"materializing the history failed (run {history.run_id})")
        plan = TrainingConfig(source=source, until=last_day.isoformat())

    result = defs.get_job_def("train_model").execute_in_process(
        instance=instance,
        run_config=dg.RunConfig(ops={"fraud_model": plan}),
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
