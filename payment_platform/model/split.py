"""Time split of a labelled payment history (CONTRACTS §5): train early, skip a gap, test late.

Labels arrive days after the payment, so a model trained today has labels only up to
"today minus the label delay" and is then used on the days after today. The split reproduces
that: the gap is as long as the label delay and its rows are used for neither training nor testing.
Day boundaries are UTC midnights; a naive event time is read as UTC.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

DAY = pd.Timedelta(days=1)


class InsufficientHistoryError(ValueError):
    """The history spans too few days for the requested training, gap and test periods."""


@dataclass(frozen=True)
class TimeSplit:
    """Day boundaries of a split; every period is a half-open interval [start, end) in UTC."""

    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp

    @property
    def train_days(self) -> int:
        return int((self.train_end - self.train_start) / DAY)

    @property
    def gap_days(self) -> int:
        return int((self.test_start - self.train_end) / DAY)

    @property
    def test_days(self) -> int:
        return int((self.test_end - self.test_start) / DAY)

    def train_mask(self, event_time: pd.Series) -> pd.Series:
        times = as_utc(event_time)
        return (times >= self.train_start) & (times < self.train_end)

    def test_mask(self, event_time: pd.Series) -> pd.Series:
        times = as_utc(event_time)
        return (times >= self.test_start) & (times < self.test_end)

    def as_dict(self) -> dict[str, str | int]:
        """ISO dates and period lengths, for run metadata and the model registry."""
        return {
            "train_start": self.train_start.isoformat(),
            "train_end": self.train_end.isoformat(),
            "test_start": self.test_start.isoformat(),
            "test_end": self.test_end.isoformat(),
            "train_days": self.train_days,
            "gap_days": self.gap_days,
            "test_days": self.test_days,
        }


@dataclass(frozen=True)
class FittedDays:
    """The days [start, end) and rows a model was fitted on."""

    start: pd.Timestamp
    end: pd.Timestamp
    rows: int
    frauds: int

    def as_dict(self) -> dict[str, str | int]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "days": int((self.end - self.start) / DAY),
            "rows": self.rows,
            "frauds": self.frauds,
        }


def as_utc(event_time: pd.Series) -> pd.Series:
    """Event times as tz-aware UTC timestamps (naive times are taken to be UTC already)."""
    return pd.to_datetime(event_time, utc=True)


def plan_time_split(event_time: pd.Series, *, test_days: int = 14, gap_days: int = 7) -> TimeSplit:
    """The split of this history: the last `test_days` whole days are the test period.

    The test period ends at the midnight after the latest event; the gap sits right before it and
    training takes every earlier day. Raises InsufficientHistoryError when no training day is left.
    """
    if test_days < 1 or gap_days < 0:
        raise ValueError(f"test_days must be >= 1 and gap_days >= 0, got {test_days} and {gap_days}")
    times = as_utc(event_time)
    if times.empty or times.isna().any():
        raise InsufficientHistoryError("the history has no events, or events without an event time")
    first_day = times.min().floor("D")
    test_end = times.max().floor("D") + DAY
    test_start = test_end - test_days * DAY
    train_end = test_start - gap_days * DAY
    if train_end <= first_day:
        span = int((test_end - first_day) / DAY)
        raise InsufficientHistoryError(
            f"history spans {span} days; need more than test {test_days} + gap {gap_days} days"
        )
    return TimeSplit(train_start=first_day, train_end=train_end, test_start=test_start, test_end=test_end)


def time_split(event_time: pd.Series, *, test_days: int = 14, gap_days: int = 7) -> tuple[pd.Series, pd.Series]:
    """Boolean (train_mask, test_mask) aligned with `event_time`; rows in the gap are in neither."""
    split = plan_time_split(event_time, test_days=test_days, gap_days=gap_days)
    return split.train_mask(event_time), split.test_mask(event_time)
