"""Offline driver: the features of a whole payment frame at once, vectorised (training, backfills).

Windows are counted with sorted keys and `searchsorted`, sums with per-card cumulative sums of cents. A card
window counts only payments at or before the current one in stream order (the frame's row order), as
the online state does: sorting by (card, time, position) makes every payment's window a contiguous
prefix range, and the few pairs where a later-arriving payment has an earlier time (out-of-order
arrival) are then subtracted explicitly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from payment_platform.features.definitions import (
    CARD_MEAN_WINDOWS,
    CARD_REACH_MS,
    CARD_WINDOWS_MS,
    FEATURE_NAMES,
    TERMINAL_WINDOWS_MS,
    amount_cents,
    assemble_features,
    card_window_start,
    event_time_ms,
    terminal_window,
)

# Out-of-order pairs are corrected in chunks of at most this many candidate pairs (bounds memory).
_PAIR_CHUNK = 4_000_000


def compute_features(payments: pd.DataFrame) -> pd.DataFrame:
    """The FEATURE_NAMES (float64) of every payment, index = payments.index; stream order = row order.

    Terminal fraud shares use `is_fraud`; without that column every payment counts as not fraud.
    """
    t_ms = event_time_ms(payments["event_time"])
    amount = payments["amount"].to_numpy(dtype=np.float64)
    if "is_fraud" in payments.columns:
        is_fraud = payments["is_fraud"].fillna(0).to_numpy(dtype=np.int64)
    else:
        is_fraud = np.zeros(len(payments), dtype=np.int64)
    ranks = _TimeRanks(t_ms)
    card = pd.factorize(payments["customer_id"])[0]
    terminal = pd.factorize(payments["terminal_id"])[0]
    card_count, card_cents = _card_aggregates(ranks, card, t_ms, amount_cents(amount))
    terminal_count, terminal_fraud = _terminal_aggregates(ranks, terminal, t_ms, is_fraud)
    matrix = assemble_features(t_ms, amount, card_count, card_cents, terminal_count, terminal_fraud)
    return pd.DataFrame(matrix, index=payments.index, columns=list(FEATURE_NAMES))


class _TimeRanks:
    """Ranks of times among the frame's distinct times, so (group, time) packs into one int64 sort key
    without overflow: key = group · (distinct + 1) + rank, where rank(x) = number of distinct times ≤ x.

    Window bounds (a monotone function of each payment's time) are ranked in time order, which keeps
    `searchsorted` cache-friendly on large frames."""

    def __init__(self, t_ms: np.ndarray) -> None:
        self.t_ms = t_ms
        self.by_time = np.argsort(t_ms, kind="stable")
        self.sorted_t = t_ms[self.by_time]
        is_new = np.ones(len(t_ms), dtype=bool)
        is_new[1:] = self.sorted_t[1:] != self.sorted_t[:-1]
        self.distinct = self.sorted_t[is_new]
        self.stride = np.int64(len(self.distinct) + 1)
        self.rank = np.empty(len(t_ms), dtype=np.int64)
        self.rank[self.by_time] = np.cumsum(is_new)

    def of_time_ordered(self, times_ms: np.ndarray) -> np.ndarray:
        """rank() of times given per payment in time order (ascending, aligned with sorted_t), returned
        in frame order; e.g. `of_time_ordered(ranks.sorted_t - w)` for every payment's t − w."""
        rank = np.empty(len(self.t_ms), dtype=np.int64)
        rank[self.by_time] = np.searchsorted(self.distinct, times_ms, "right")
        return rank

    def of(self, t_ms: np.ndarray) -> np.ndarray:
        """rank(t) of arbitrary times."""
        return np.searchsorted(self.distinct, t_ms, "right")

    def key(self, group: np.ndarray, rank: np.ndarray) -> np.ndarray:
        """Sort key of (group, time of that rank); ordered like (group, time)."""
        return group.astype(np.int64) * self.stride + rank


def _card_aggregates(
    ranks: _TimeRanks, card: np.ndarray, t_ms: np.ndarray, cents: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per payment: count (per CARD_WINDOWS_MS) and sum of cents (per CARD_MEAN_WINDOWS) of its card's
    payments in (t − w, t] that came at or before it in stream order."""
    n = len(t_ms)
    position = np.arange(n)
    order = np.lexsort((position, t_ms, card))  # by card, then time, then stream position
    sorted_card = card[order]
    keys = ranks.key(sorted_card, ranks.rank[order])
    running = pd.Series(cents[order]).groupby(sorted_card).cumsum().to_numpy()  # exact: integers
    before = running - cents[order]
    end = np.arange(1, n + 1)  # the sorted prefix up to and including the payment itself

    count = np.empty((n, len(CARD_WINDOWS_MS)))
    total = np.empty((n, len(CARD_MEAN_WINDOWS)))
    for column, (name, window_ms) in enumerate(CARD_WINDOWS_MS.items()):
        start_rank = ranks.of_time_ordered(card_window_start(ranks.sorted_t, window_ms))[order]
        start = np.searchsorted(keys, ranks.key(sorted_card, start_rank), "right")
        count[order, column] = end - start
        if name in CARD_MEAN_WINDOWS:
            # start ≤ own sorted index: the window always holds the payment itself.
            total[order, CARD_MEAN_WINDOWS.index(name)] = running - before[start]
    _subtract_later_arrivals(ranks, card, t_ms, cents, order, keys, count, total)
    return count, total


def _subtract_later_arrivals(
    ranks: _TimeRanks,
    card: np.ndarray,
    t_ms: np.ndarray,
    cents: np.ndarray,
    order: np.ndarray,
    keys: np.ndarray,
    count: np.ndarray,
    total: np.ndarray,
) -> None:
    """Remove from each payment's windows the card's payments with an earlier time that arrived later.

    A payment j is late when an earlier-arriving payment of its card has a later time. Its victims are
    the card's payments i with t_j < t_i < t_j + w that arrived before j; in (card, time, position)
    order they lie right after j, so they are enumerated as a short range per late payment.
    """
    n = len(t_ms)
    if n < 2:
        return
    stream = np.argsort(card, kind="stable")  # by card, then stream position
    stream_keys = ranks.key(card[stream], ranks.rank[stream])
    latest_before = np.maximum.accumulate(stream_keys)
    same_card = np.r_[False, card[stream][1:] == card[stream][:-1]]
    is_late = np.r_[False, stream_keys[1:] < latest_before[:-1]] & same_card
    late = stream[is_late]
    if len(late) == 0:
        return
    sorted_index = np.empty(n, dtype=np.int64)
    sorted_index[order] = np.arange(n)
    first = sorted_index[late] + 1
    reach = ranks.key(card[late], ranks.of(t_ms[late] + CARD_REACH_MS - 1))  # t_i < t_j + reach
    stop = np.searchsorted(keys, reach, "right")
    lengths = np.maximum(stop - first, 0)
    bounds = np.r_[0, np.cumsum(lengths)]
    chunk_starts = np.searchsorted(bounds, np.arange(0, bounds[-1], _PAIR_CHUNK), "right") - 1
    for lo, hi in zip(chunk_starts, [*chunk_starts[1:], len(late)], strict=True):
        size = lengths[lo:hi]
        j = np.repeat(late[lo:hi], size)
        offset = np.arange(size.sum()) - np.repeat(np.cumsum(size) - size, size)
        i = order[np.repeat(first[lo:hi], size) + offset]
        arrived_before = i < j
        i, j = i[arrived_before], j[arrived_before]
        for column, (name, window_ms) in enumerate(CARD_WINDOWS_MS.items()):
            inside = card_window_start(t_ms[i], window_ms) < t_ms[j]
            count[:, column] -= np.bincount(i[inside], minlength=n)
            if name in CARD_MEAN_WINDOWS:
                total[:, CARD_MEAN_WINDOWS.index(name)] -= np.bincount(i[inside], weights=cents[j[inside]], minlength=n)


def _terminal_aggregates(
    ranks: _TimeRanks, terminal: np.ndarray, t_ms: np.ndarray, is_fraud: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per payment: its terminal's payments and fraud-labelled payments in each delayed window.

    The windows end a label delay before t, so they count every payment of the frame in them,
    whatever its stream position."""
    n = len(t_ms)
    order = np.lexsort((t_ms, terminal))
    sorted_terminal = terminal[order]
    keys = ranks.key(sorted_terminal, ranks.rank[order])
    frauds_before = np.r_[0, np.cumsum(is_fraud[order])]
    count = np.empty((n, len(TERMINAL_WINDOWS_MS)))
    fraud = np.empty((n, len(TERMINAL_WINDOWS_MS)))
    for column, window_ms in enumerate(TERMINAL_WINDOWS_MS.values()):
        start_ms, end_ms = terminal_window(ranks.sorted_t, window_ms)
        # Queries in (terminal, time) order, like the keys: a cache-friendly search.
        start_rank, end_rank = ranks.of_time_ordered(start_ms)[order], ranks.of_time_ordered(end_ms)[order]
        start = np.searchsorted(keys, ranks.key(sorted_terminal, start_rank), "right")
        end = np.searchsorted(keys, ranks.key(sorted_terminal, end_rank), "right")
        count[order, column] = end - start
        fraud[order, column] = frauds_before[end] - frauds_before[start]
    return count, fraud
