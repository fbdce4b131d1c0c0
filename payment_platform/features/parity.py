"""Parity of the two drivers on a whole payment frame: what the live scorer would compute, row by row,
against what training computes. Used by the tests and by the asset check on every new model's data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from payment_platform.features.definitions import FEATURE_NAMES, event_time_ms
from payment_platform.features.offline import compute_features
from payment_platform.features.online import ALLOWED_LATENESS_MS, OnlineFeatures
from payment_platform.features.terminal_feed import FrameTerminalSource, TerminalFeed


def release_batches(t_ms: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Row positions in event-time order, cut into batches of about batch_size between two distinct
    milliseconds, as the scorer's event-time merge releases them (payments of one millisecond together)."""
    order = np.argsort(t_ms, kind="stable")
    sorted_t = t_ms[order]
    batches, start = [], 0
    while start < len(order):
        stop = min(start + batch_size, len(order))
        while stop < len(order) and sorted_t[stop] == sorted_t[stop - 1]:
            stop += 1
        batches.append(order[start:stop])
        start = stop
    return batches


def stream_online(
    payments: pd.DataFrame,
    labels: pd.DataFrame | None = None,
    batch_size: int = 2_000,
    source: FrameTerminalSource | None = None,
) -> np.ndarray:
    """The online features of `payments`, row by row, as the live scorer computes them: released in
    event-time order, batch by batch, the terminal state fed from the record (the frames) just as far
    as each batch needs."""
    t_ms = event_time_ms(payments["event_time"])
    out = np.empty((len(payments), len(FEATURE_NAMES)))
    if len(payments) == 0:
        return out
    online = OnlineFeatures()
    feed = TerminalFeed(online.terminals, source or FrameTerminalSource(payments, labels))
    feed.start_for(int(t_ms.min()) - ALLOWED_LATENESS_MS)
    cards, terminals = payments["customer_id"].to_numpy(), payments["terminal_id"].to_numpy()
    amount = payments["amount"].to_numpy(dtype=np.float64)
    for rows in release_batches(t_ms, batch_size):
        feed.advance_for(int(t_ms[rows].max()))
        out[rows] = online.featurise(cards[rows].tolist(), terminals[rows].tolist(), t_ms[rows], amount[rows])
    return out


@dataclass(frozen=True)
class ParityReport:
    rows: int
    mismatched_rows: int
    worst_feature: str | None
    max_abs_difference: float

    @property
    def passed(self) -> bool:
        return self.mismatched_rows == 0


def compare(online: np.ndarray, offline: np.ndarray) -> ParityReport:
    """Row-by-row equality of two feature matrices (bit for bit: both drivers add integers)."""
    equal = online == offline
    difference = np.abs(online - offline)
    worst = int(np.argmax(difference.max(axis=0))) if difference.size else 0
    mismatched = int((~equal.all(axis=1)).sum())
    return ParityReport(
        rows=len(online),
        mismatched_rows=mismatched,
        worst_feature=FEATURE_NAMES[worst] if mismatched else None,
        max_abs_difference=float(difference.max()) if difference.size else 0.0,
    )


def compare_drivers(
    payments: pd.DataFrame, labels: pd.DataFrame | None = None, batch_size: int = 2_000
) -> ParityReport:
    """Every row's online vector against its offline one."""
    return compare(stream_online(payments, labels, batch_size), compute_features(payments, labels).to_numpy())
