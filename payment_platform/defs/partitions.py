"""The daily partitions shared by the history, the reports and live quality, and the days a run covers."""

import datetime as dt

import dagster as dg

HISTORY_START_DATE = "2026-01-01"

daily_partitions = dg.DailyPartitionsDefinition(start_date=HISTORY_START_DATE, timezone="UTC")


def partition_days(context: dg.AssetExecutionContext) -> list[dt.date]:
    """The UTC days of the run's partition or partition range (a sensor launches whole ranges at once)."""
    window = context.partition_time_window
    first, last = window.start.date(), (window.end - dt.timedelta(microseconds=1)).date()
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
