"""Online driver: incremental per-card and per-terminal state for the live scorer, batch after batch.

Each card keeps its recent payments in one `array('q')`: their times, sorted, then the running totals
of their amounts in cents, so a window's count and sum are two `bisect`s and one subtraction, however
many payments the card has. Each terminal keeps its payment times, and, only once it has any, the
times of its fraud-labelled payments. Payments enter the state in stream order, so a card window sees
exactly the payments that arrived before (and including) the current one, as the offline driver
defines it.

Labels arrive on their own (`add_label`), before or after their payment, possibly repeated or changed:
the state remembers each recent payment's terminal, time and current label, so the latest label counts
exactly once. Memory is bounded by evicting what no window can reach any more; a card or terminal
costs one dict entry and one array, a payment one dict entry (the bench measures bytes per card).
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Sequence

import numpy as np
import pandas as pd

from payment_platform.features.definitions import (
    CARD_MEAN_WINDOWS,
    CARD_REACH_MS,
    CARD_WINDOWS_MS,
    DAY_MS,
    FEATURE_NAMES,
    HOUR_MS,
    TERMINAL_REACH_MS,
    TERMINAL_WINDOWS_MS,
    amount_cents,
    assemble_features,
    card_window_start,
    event_time_ms,
    terminal_window,
)

# A payment may arrive up to this long after the newest event time seen and still see its full history.
ALLOWED_LATENESS_MS = DAY_MS
# featurise() sweeps the whole state once the event-time watermark has moved this far.
SWEEP_EVERY_MS = 6 * HOUR_MS

_CARD_WINDOWS = tuple(CARD_WINDOWS_MS.values())
_CARD_SUMMED = tuple(name in CARD_MEAN_WINDOWS for name in CARD_WINDOWS_MS)
_TERMINAL_WINDOWS = tuple(TERMINAL_WINDOWS_MS.values())
_N_CARD, _N_MEAN, _N_TERMINAL = len(_CARD_WINDOWS), len(CARD_MEAN_WINDOWS), len(_TERMINAL_WINDOWS)


class FeatureState:
    """Per-card and per-terminal state of the stream; `featurise` gives the same vectors as the offline
    `compute_features` on the same payments in the same order (labels fed once known)."""

    def __init__(self, allowed_lateness_ms: int = ALLOWED_LATENESS_MS) -> None:
        self.allowed_lateness_ms = allowed_lateness_ms
        self._cards: dict[str, array] = {}  # see _add_card_payment for the layout
        self._terminals: dict[str, array] = {}  # sorted times of the terminal's payments
        self._terminal_frauds: dict[str, array] = {}  # sorted times of its fraud-labelled ones, if any
        # transaction_id → (terminal_id, time ms, is_fraud) of the payments still in terminal windows, in
        # arrival order (a dict keeps insertion order: eviction reads it from the front).
        self._payments: dict[str, tuple[str, int, bool]] = {}
        self._evicted_payments = 0  # since the dict was last compacted
        # Labels whose payment is not seen yet: transaction_id → (is_fraud, watermark when it arrived).
        self._pending: dict[str, tuple[bool, int]] = {}
        self._pending_arrivals: deque[str] = deque()
        self._watermark: int | None = None  # newest event time of the batches before the current one
        self._last_sweep: int | None = None

    @property
    def active_cards(self) -> int:
        return len(self._cards)

    @property
    def active_terminals(self) -> int:
        return len(self._terminals)

    def featurise(self, batch: pd.DataFrame) -> np.ndarray:
        """Feature matrix (len(batch) × FEATURE_NAMES, float64) of a batch of payments, in row order,
        adding them to the state. A transaction_id already in the state is featurised but not re-added."""
        return self.featurise_columns(
            batch["transaction_id"].tolist(),
            batch["customer_id"].tolist(),
            batch["terminal_id"].tolist(),
            event_time_ms(batch["event_time"]),
            batch["amount"].to_numpy(dtype=np.float64),
        )

    def featurise_columns(
        self,
        transaction_ids: list[str],
        cards: list[str],
        terminals: list[str],
        t_ms: np.ndarray,
        amount: np.ndarray,
    ) -> np.ndarray:
        """`featurise` of a batch given as columns (event times as int64 epoch ms): the scorer's path,
        which has its columns already and need not build a DataFrame."""
        if len(transaction_ids) == 0:
            return np.empty((0, len(FEATURE_NAMES)))
        times: list[int] = t_ms.tolist()
        # Evictions during the batch use the watermark from before it, so that every payment of the
        # batch no later than the allowed lateness still sees its full history.
        if self._watermark is None:
            # Labels that came before the stream started wait as if they came with its first payment.
            self._pending = {key: (label, times[0]) for key, (label, _) in self._pending.items()}
        elif self._last_sweep is None or self._watermark - self._last_sweep >= SWEEP_EVERY_MS:
            self.evict(self._watermark)

        fresh = self._register(transaction_ids, terminals, times)
        card_horizon = self._horizon(CARD_REACH_MS)
        aggregates = array("d")
        for card, terminal, t, cents, is_new in zip(
            cards, terminals, times, amount_cents(amount).tolist(), fresh, strict=True
        ):
            aggregates.extend(self._card_windows(card, t, cents, is_new, card_horizon))
            aggregates.extend(self._terminal_windows(terminal, t))
        newest = max(times)
        if self._watermark is None or newest > self._watermark:
            self._watermark = newest
        raw = np.frombuffer(aggregates, dtype=np.float64).reshape(len(times), -1)
        card_end = _N_CARD + _N_MEAN
        return assemble_features(
            t_ms,
            amount,
            raw[:, :_N_CARD],
            raw[:, _N_CARD:card_end],
            raw[:, card_end : card_end + _N_TERMINAL],
            raw[:, card_end + _N_TERMINAL :],
        )

    def add_label(self, transaction_id: str, is_fraud: bool) -> None:
        """Record the latest label of a payment; kept pending if the payment is not seen yet."""
        is_fraud = bool(is_fraud)
        seen = self._payments.get(transaction_id)
        if seen is None:
            if transaction_id not in self._pending:
                self._pending_arrivals.append(transaction_id)
            self._pending[transaction_id] = (is_fraud, self._watermark or 0)  # re-stamped if None
            return
        terminal, t, was_fraud = seen
        if was_fraud == is_fraud:
            return
        self._payments[transaction_id] = (terminal, t, is_fraud)
        if terminal not in self._terminals or t <= self._horizon(TERMINAL_REACH_MS):
            return  # out of reach of every window
        if is_fraud:
            self._add_fraud(terminal, t)
            return
        frauds = self._terminal_frauds.get(terminal)
        if frauds is not None:
            at = bisect_left(frauds, t)
            if at < len(frauds) and frauds[at] == t:
                del frauds[at]
            if not frauds:
                del self._terminal_frauds[terminal]

    def add_labels(self, transaction_ids: Sequence[str], is_fraud: Sequence[bool]) -> None:
        """add_label for each pair, in order (the last label of a transaction wins)."""
        for transaction_id, label in zip(transaction_ids, is_fraud, strict=True):
            self.add_label(transaction_id, label)

    @property
    def reach_ms(self) -> int:
        """How far back in event time, from the newest payment, the state can still be asked about."""
        return TERMINAL_REACH_MS + 2 * self.allowed_lateness_ms

    def restore(
        self,
        payments: pd.DataFrame,
        label_ids: Sequence[str],
        is_fraud: Sequence[bool],
        chunk: int = 50_000,
    ) -> None:
        """Rebuild the state from stored history: payments in the order they were first consumed, then
        the latest labels (of those payments, or waiting for theirs). Payments seen again afterwards
        (the uncommitted tail a restarted consumer re-reads) are recognised by id and not re-counted."""
        for start in range(0, len(payments), chunk):
            self.featurise(payments.iloc[start : start + chunk])
        self.add_labels(label_ids, is_fraud)

    def evict(self, now_ms: int) -> None:
        """Drop what no window of a payment at or after now − allowed lateness can reach any more.

        now_ms is event time (epoch ms), not the wall clock: featurise() passes its watermark, and a
        replay of old history would otherwise be wiped."""
        card_horizon = now_ms - self.allowed_lateness_ms - CARD_REACH_MS
        terminal_horizon = now_ms - self.allowed_lateness_ms - TERMINAL_REACH_MS
        # Rebuilt rather than deleted from, so the dicts shrink too.
        self._cards = {
            card: history for card, history in self._cards.items() if _drop_card_until(card_horizon, history)
        }
        self._terminals = {
            terminal: times for terminal, times in self._terminals.items() if _drop_until(terminal_horizon, times)
        }
        self._terminal_frauds = {
            terminal: times for terminal, times in self._terminal_frauds.items() if _drop_until(terminal_horizon, times)
        }
        # Payments arrive roughly in time order: stop at the first one still reachable.
        stale = []
        for transaction_id, (_, t, _) in self._payments.items():
            if t > terminal_horizon:
                break
            stale.append(transaction_id)
        for transaction_id in stale:
            del self._payments[transaction_id]
        self._evicted_payments += len(stale)
        if self._evicted_payments > len(self._payments):  # let the dict shrink, and drop its deleted slots
            self._payments = dict(self._payments)
            self._evicted_payments = 0
        pending = self._pending_arrivals
        while pending:
            label = self._pending.get(pending[0])
            if label is not None and label[1] > terminal_horizon:
                break
            self._pending.pop(pending.popleft(), None)
        self._last_sweep = now_ms

    def approx_bytes(self) -> int:
        """Approximate memory held by the state (containers, keys and buffers), in bytes; walks the
        whole state, so meant for metrics, not for every batch."""
        size = sys.getsizeof(self) + sys.getsizeof(self.__dict__)
        for histories in (self._cards, self._terminals, self._terminal_frauds):
            size += sys.getsizeof(histories)
            size += sum(sys.getsizeof(key) + sys.getsizeof(history) for key, history in histories.items())
        size += sys.getsizeof(self._payments)
        for key, (_, t, _) in self._payments.items():
            size += sys.getsizeof(key) + _TUPLE_OF_THREE + sys.getsizeof(t)
        size += sys.getsizeof(self._pending) + sys.getsizeof(self._pending_arrivals)
        size += sum(sys.getsizeof(key) + _TUPLE_OF_TWO for key in self._pending)
        return size

    def _register(self, transaction_ids: list[str], terminals: list[str], times: list[int]) -> list[bool]:
        """Enter a batch into the terminal state (applying labels that came first); True = new payment.

        The whole batch enters before any of it is featurised: terminal windows end a label delay
        before t, so they count every payment seen, whatever its position (as offline does)."""
        horizon = self._horizon(TERMINAL_REACH_MS)
        payments, pending, histories = self._payments, self._pending, self._terminals
        fresh = []
        for transaction_id, terminal, t in zip(transaction_ids, terminals, times, strict=True):
            if transaction_id in payments:
                fresh.append(False)
                continue
            fresh.append(True)
            label = pending.pop(transaction_id, None) if pending else None
            is_fraud = label is not None and label[0]
            payments[transaction_id] = (terminal, t, is_fraud)
            history = histories.get(terminal)
            if history is None:
                history = histories[terminal] = array("q")
            else:
                _drop_until(horizon, history)
            if not history or t >= history[-1]:
                history.append(t)
            else:
                insort(history, t)
            if is_fraud:
                self._add_fraud(terminal, t)
        return fresh

    def _add_fraud(self, terminal: str, t: int) -> None:
        frauds = self._terminal_frauds.get(terminal)
        if frauds is None:
            self._terminal_frauds[terminal] = array("q", (t,))
        else:
            insort(frauds, t)

    def _card_windows(self, card: str, t: int, cents: int, is_new: bool, horizon: int) -> tuple[int, ...]:
        """Counts (CARD_WINDOWS_MS) then sums of cents (CARD_MEAN_WINDOWS) of the card's payments in
        (t − w, t], after adding this one; the state holds only payments that arrived before it."""
        history = self._cards.get(card)
        if history is None:
            history = self._cards[card] = array("q", (0,))
        else:
            _drop_card_until(horizon, history)
        end = _add_card_payment(history, t, cents) if is_new else bisect_right(history, t, 0, len(history) // 2)
        totals = len(history) // 2  # where the running totals start
        total_end = history[totals + end]
        counts = []
        sums = []
        for window_ms, summed in zip(_CARD_WINDOWS, _CARD_SUMMED, strict=True):
            start = bisect_right(history, card_window_start(t, window_ms), 0, end)
            counts.append(end - start)
            if summed:
                sums.append(total_end - history[totals + start])
        return (*counts, *sums)

    def _terminal_windows(self, terminal: str, t: int) -> tuple[int, ...]:
        """Counts then fraud-labelled counts of the terminal's payments in each delayed window."""
        times = self._terminals[terminal]
        frauds = self._terminal_frauds.get(terminal)
        counts = []
        fraud_counts = []
        for window_ms in _TERMINAL_WINDOWS:
            start, end = terminal_window(t, window_ms)
            counts.append(bisect_right(times, end) - bisect_right(times, start))
            fraud_counts.append(0 if frauds is None else bisect_right(frauds, end) - bisect_right(frauds, start))
        return (*counts, *fraud_counts)

    def _horizon(self, reach_ms: int) -> int:
        """Events at or before this time are out of reach of every window still to be computed."""
        if self._watermark is None:
            return _BEFORE_ALL_TIMES
        return self._watermark - self.allowed_lateness_ms - reach_ms


_BEFORE_ALL_TIMES = -(2**62)
_TUPLE_OF_TWO = sys.getsizeof((1, 2))
_TUPLE_OF_THREE = sys.getsizeof((1, 2, 3))


def _add_card_payment(history: array, t: int, cents: int) -> int:
    """Insert a payment into a card's history; returns the index just past it (after any equal times).

    A history of n payments is one array of 2n + 1 integers: the times, sorted, then n + 1 running
    totals of cents, where totals[k] is the sum before payment k (including payments already evicted),
    so payments [i, j) sum to totals[j] − totals[i]. One array per card keeps a card at one object."""
    n = len(history) // 2
    at = n if n == 0 or t >= history[n - 1] else bisect_right(history, t, 0, n)
    history.insert(at, t)
    before = n + 1 + at  # the total before the new payment, after the times grew by one
    history.insert(before + 1, history[before] + cents)
    for later in range(before + 2, len(history)):  # only when it arrived out of time order
        history[later] += cents
    return at + 1


def _drop_card_until(horizon: int, history: array) -> bool:
    """Drop a card's payments with time ≤ horizon (and their totals); returns whether any is left."""
    n = len(history) // 2
    if n and history[0] <= horizon:
        cut = bisect_right(history, horizon, 0, n)
        del history[n : n + cut]
        del history[:cut]
        n -= cut
    return n > 0


def _drop_until(horizon: int, times: array) -> bool:
    """Drop the times ≤ horizon from the front of a sorted array; returns whether any is left."""
    if times and times[0] <= horizon:
        del times[: bisect_right(times, horizon)]
    return len(times) > 0
