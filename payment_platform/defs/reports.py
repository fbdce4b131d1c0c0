"""The daily scoring report, one partition per UTC day, backfillable from the UI."""

import dagster as dg

from payment_platform.defs.partitions import daily_partitions, partition_days
from payment_platform.defs.resources import ScoreStoreResource
from payment_platform.defs.scoring import scored_transactions
from payment_platform.store.reports import build_daily_report, save_daily_report


@dg.asset(
    key="daily_scoring_report",
    group_name="reports",
    partitions_def=daily_partitions,
    deps=[scored_transactions],
    kinds={"sql"},
)
def daily_scoring_report(context: dg.AssetExecutionContext, score_store: ScoreStoreResource) -> dg.MaterializeResult:
    """Counts by status, fraud rate, amount statistics and scoring latency of the day's payments."""
    engine = score_store.engine()
    try:
        (day,) = partition_days(context)
        report = build_daily_report(engine, day)
        save_daily_report(engine, report)
    finally:
        engine.dispose()
    # The day is the partition itself; a figure not known yet (the fraud rate before any label) is left out.
    metadata = {k: v for k, v in report.as_dict().items() if k != "day" and isinstance(v, int | float)}
    return dg.MaterializeResult(metadata=metadata)


report_job = dg.define_asset_job("daily_report", selection=dg.AssetSelection.assets(daily_scoring_report))

report_schedule = dg.build_schedule_from_partitioned_job(
    report_job,
    hour_of_day=1,
    minute_of_hour=0,
    name="daily_report_schedule",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
