"""Partitions shared by the history and the reports."""

import dagster as dg

HISTORY_START_DATE = "2026-01-01"

daily_partitions = dg.DailyPartitionsDefinition(start_date=HISTORY_START_DATE, timezone="UTC")
