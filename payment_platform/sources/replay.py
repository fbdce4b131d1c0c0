"""Replays a historical payments file (CSV or Parquet) through the live pipeline in event-time order."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from payment_platform.sources.feed import PaymentFeed, event_us

REQUIRED_COLUMNS = ("transaction_id", "customer_id", "amount")


class ReplayFileError(ValueError):
    """The file cannot be replayed as it is."""


def read_history_file(path: Path) -> pd.DataFrame:
    """A payment frame from a CSV or Parquet file with the payment fields (and optional `is_fraud`)."""
    if not path.exists():
        raise ReplayFileError(f"{path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".gz", ".txt"):
            frame = pd.read_csv(path, dtype={"transaction_id": str, "customer_id": str, "terminal_id": str})
        else:
            raise ReplayFileError(f"{path}: expected a .csv or .parquet file")
    except (OSError, ValueError) as exc:
        if isinstance(exc, ReplayFileError):
            raise
        raise ReplayFileError(f"{path} could not be read: {str(exc).splitlines()[0]}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if "timestamp" not in frame.columns and "event_time" not in frame.columns:
        missing.append("timestamp")
    if missing:
        raise ReplayFileError(f"{path} lacks the columns {', '.join(missing)}")
    return normalise_history(frame)


def normalise_history(frame: pd.DataFrame) -> pd.DataFrame:
    """Contract defaults filled in, event time parsed, rows in event-time order."""
    frame = frame.copy()
    stamps = frame["event_time"] if "event_time" in frame.columns else frame["timestamp"]
    if pd.api.types.is_numeric_dtype(stamps):
        frame["event_time"] = pd.to_datetime(stamps, unit="s", utc=True)
    else:
        frame["event_time"] = pd.to_datetime(stamps, utc=True, format="mixed")
    if "terminal_id" not in frame.columns:
        frame["terminal_id"] = "unknown"
    if "currency" not in frame.columns:
        frame["currency"] = "EUR"
    frame["transaction_id"] = frame["transaction_id"].astype(str)
    frame["customer_id"] = frame["customer_id"].astype(str)
    frame["terminal_id"] = frame["terminal_id"].fillna("unknown").astype(str)
    frame["currency"] = frame["currency"].fillna("EUR").astype(str)
    frame["amount"] = pd.to_numeric(frame["amount"], errors="coerce")
    return frame.sort_values("event_time", kind="stable", ignore_index=True)


def replay(
    feed: PaymentFeed,
    frame: pd.DataFrame,
    *,
    rate: float | None = None,
    chunk: int = 5_000,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Send the frame at `rate` payments/s (None: full speed); every label is sent by the end."""
    sent = 0
    started = time.monotonic()
    times = event_us(frame)
    step = chunk if rate is None else max(1, min(chunk, int(rate / 20)))
    for position in range(0, len(frame), step):
        part = frame.iloc[position : position + step]
        feed.send(part)
        sent += len(part)
        feed.producer.poll(0)
        if rate is not None:
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        if on_progress:
            on_progress(sent)
    if len(times):
        feed.send_due_labels(int(np.max(times)))
    feed.send_pending_labels()
    feed.flush()
    return sent
