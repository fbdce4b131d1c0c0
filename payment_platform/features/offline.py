"""Offline driver: the features of a whole payment frame at once, vectorised (training, backfills, the
parity gate's rescoring).

Every window is a count of events of one group (card or terminal) with a time in a half-open range, so
everything reduces to one primitive, `_GroupedTimes.at_or_before`: how many of a group's events are at
or before a time, answered for all payments with one sort and one `searchsorted`. Nothing depends on row
order: the definitions (`definitions.py`) are on event time alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from payment_platform.features.definitions import (
    CARD_MEAN_WINDOWS,
    CARD_WINDOWS_MS,
    FEATURE_NAMES,
    TERMINAL_WINDOWS_S,
    amount_cents,
    assemble_features,
    card_window_start,
    event_time_ms,
    fraud_interval,
    seconds,
    terminal_window,
)
from payment_platform.features.labels import fraud_span_frame, label_events_of


def compute_features(payments: pd.DataFrame, labels: pd.DataFrame | None = None) -> pd.DataFrame:
    """The FEATURE_NAMES (float64) of every payment, index = payments.index.

    `labels` is the label history (`labels.LABEL_EVENT_COLUMNS`); without it, the frame's own `is_fraud`
    (and `labelled_at`, if any) stand for one label per payment. Payments must have unique ids."""
    if payments["transaction_id"].duplicated().any():
        raise ValueError("payments must have unique transaction_id values")
    t_ms = event_time_ms(payments["event_time"])
    amount = payments["amount"].to_numpy(dtype=np.float64)
    card = pd.factorize(payments["customer_id"])[0]
    terminal_codes = pd.factorize(payments["terminal_id"])[0]
    card_count, card_cents = _card_aggregates(card, t_ms, amount_cents(amount))
    terminal_count = _terminal_counts(terminal_codes, seconds(t_ms))
    events = label_events_of(payments) if labels is None else labels
    terminal_fraud = _terminal_frauds(payments, terminal_codes, seconds(t_ms), events)
    matrix = assemble_features(t_ms, amount, card_count, card_cents, terminal_count, terminal_fraud)
    return pd.DataFrame(matrix, index=payments.index, columns=list(FEATURE_NAMES))


class _GroupedTimes:
    """Events of groups at times, sorted by (group, time), with optional values summed cumulatively."""

    def __init__(self, group: np.ndarray, t: np.ndarray, values: np.ndarray | None = None) -> None:
        order = np.lexsort((t, group))
        self.group = group[order].astype(np.int64)
        self.t = t[order].astype(np.int64)
        self.cumulative = None if values is None else np.r_[0, np.cumsum(values[order])]

    def at_or_before(self, group: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Index just past the last event of `group` at or before `t`, for each query: the difference of
        two of these is a window count, and `cumulative` at them gives its sum."""
        ranks = np.unique(np.r_[self.t, t])
        stride = np.int64(len(ranks) + 1)
        keys = self.group * stride + np.searchsorted(ranks, self.t)
        return np.searchsorted(keys, group.astype(np.int64) * stride + np.searchsorted(ranks, t), "right")

    def window(self, group: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(first, last) index bounds of each group's events in (lo, hi]."""
        return self.at_or_before(group, lo), self.at_or_before(group, hi)


def _card_aggregates(card: np.ndarray, t_ms: np.ndarray, cents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per payment: count (per CARD_WINDOWS_MS) and sum of cents (per CARD_MEAN_WINDOWS) of its card's
    payments in (t − w, t]."""
    events = _GroupedTimes(card, t_ms, cents)
    assert events.cumulative is not None
    count = np.empty((len(t_ms), len(CARD_WINDOWS_MS)))
    total = np.empty((len(t_ms), len(CARD_MEAN_WINDOWS)))
    end = events.at_or_before(card, t_ms)
    for column, (name, window_ms) in enumerate(CARD_WINDOWS_MS.items()):
        start = events.at_or_before(card, card_window_start(t_ms, window_ms))
        count[:, column] = end - start
        if name in CARD_MEAN_WINDOWS:
            total[:, CARD_MEAN_WINDOWS.index(name)] = events.cumulative[end] - events.cumulative[start]
    return count, total


def _terminal_counts(terminal: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """Per payment: its terminal's payments in each delayed window."""
    events = _GroupedTimes(terminal, t_s)
    count = np.empty((len(t_s), len(TERMINAL_WINDOWS_S)))
    for column, window_s in enumerate(TERMINAL_WINDOWS_S.values()):
        start, end = events.window(terminal, *terminal_window(t_s, window_s))
        count[:, column] = end - start
    return count


def _terminal_frauds(payments: pd.DataFrame, terminal: np.ndarray, t_s: np.ndarray, events: pd.DataFrame) -> np.ndarray:
    """Per payment: payments of its terminal in each delayed window that are fraud by the labels visible
    at its time. Each fraud span of a payment j gives the interval [a, b) of payment times at which j
    counts (`definitions.fraud_interval`); a payment at t counts the intervals with a <= t < b."""
    fraud = np.zeros((len(t_s), len(TERMINAL_WINDOWS_S)))
    spans = fraud_span_frame(events)
    position = pd.Series(np.arange(len(payments)), index=payments["transaction_id"].to_numpy())
    spans = spans[spans["transaction_id"].isin(position.index)]
    if spans.empty:
        return fraud
    j = position[spans["transaction_id"].to_numpy()].to_numpy()
    span_start = spans["start_s"].to_numpy(dtype=np.int64)
    span_end = spans["end_s"].to_numpy(dtype=np.int64)
    for column, window_s in enumerate(TERMINAL_WINDOWS_S.values()):
        a, b = fraud_interval(t_s[j], span_start, span_end, window_s)
        keep = a < b
        starts = _GroupedTimes(terminal[j][keep], a[keep]).at_or_before(terminal, t_s)
        ends = _GroupedTimes(terminal[j][keep], b[keep]).at_or_before(terminal, t_s)
        fraud[:, column] = starts - ends
    return fraud
