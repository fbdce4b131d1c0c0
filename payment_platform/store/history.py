"""Labelled payment history, one Parquet file per UTC day: what the training assets read."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pandas as pd


class MissingHistory(LookupError):
    """Some days of the requested window have not been materialized."""


class HistoryStore:
    """Daily partitions of labelled payments under `root/date=YYYY-MM-DD.parquet`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, day: dt.date) -> Path:
        return self.root / f"date={day.isoformat()}.parquet"

    def write_day(self, day: dt.date, payments: pd.DataFrame) -> Path:
        """Replace the day's partition atomically: a re-run of a day is safe."""
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.path(day)
        temporary = target.with_suffix(f".tmp{os.getpid()}")
        payments.to_parquet(temporary, index=False)
        os.replace(temporary, target)
        return target

    def days(self) -> list[dt.date]:
        if not self.root.exists():
            return []
        return sorted(dt.date.fromisoformat(p.stem.removeprefix("date=")) for p in self.root.glob("date=*.parquet"))

    def read(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Payments of the days start..end inclusive, in event-time order."""
        wanted = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
        missing = [day for day in wanted if not self.path(day).exists()]
        if missing:
            raise MissingHistory(
                f"{len(missing)} history partitions missing between {start} and {end} "
                f"(first {missing[0]}): materialize transaction_history for them"
            )
        frames = [pd.read_parquet(self.path(day)) for day in wanted]
        payments = pd.concat(frames, ignore_index=True)
        return payments.sort_values("event_time", kind="stable", ignore_index=True)
