"""Terminal windows: every card's payments at a terminal, and which of them were fraud when.

A terminal window ends a week before the payment (`definitions.terminal_window`), so it holds only
payments long written to the score store. The state is fed from there, by whatever scored them, which
makes it the same in every scorer process (`store/terminal_feed.py`); it never learns a payment from the
stream directly. Each terminal keeps its payment times as an `array('I')` of whole seconds (4 bytes a
payment).

Fraud is kept per transaction that ever had a fraud label: its label history gives spans of time during
which it is fraud (`labels.fraud_spans`), and each span, per window length, an interval [a, b) of payment
times at which it counts (`definitions.fraud_interval`). A terminal keeps the sorted starts and ends of
these intervals, so a payment at t counts bisect(starts, t) − bisect(ends, t) frauds. Genuine labels of
transactions never labelled fraud change nothing and are not kept.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_right, insort
from dataclasses import dataclass, field

import numpy as np

from payment_platform.features.definitions import TERMINAL_WINDOWS_S, fraud_interval, terminal_window
from payment_platform.features.labels import LabelEvent, fraud_spans

_WINDOWS = tuple(TERMINAL_WINDOWS_S.values())
N_WINDOWS = len(_WINDOWS)
_BEFORE_ALL = -(2**62)


@dataclass
class _FraudRecord:
    """A transaction with a fraud label: where and when it was paid, its labels, the intervals it added."""

    terminal: str
    t_s: int
    events: dict[int, LabelEvent] = field(default_factory=dict)  # by seq: a label seen twice is one
    intervals: list[tuple[int, int, int]] = field(default_factory=list)  # (window index, a, b)


class TerminalState:
    """Payment times and fraud intervals of every terminal, and the labelled transactions behind them."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget everything."""
        self._times: dict[str, array] = {}
        self._starts: dict[str, list[array]] = {}  # per terminal with frauds: one sorted array per window
        self._ends: dict[str, list[array]] = {}
        self._frauds: dict[str, _FraudRecord] = {}
        self.serves_from_s = _BEFORE_ALL  # payments from this second on see whole windows (nothing they reach evicted)

    def __len__(self) -> int:
        return len(self._times)

    @property
    def tracked_frauds(self) -> int:
        return len(self._frauds)

    def add_payments(self, terminals: list[str], t_s: list[int]) -> None:
        """Payments of any card, in any order (the feed brings them in time order: appended)."""
        histories = self._times
        for terminal, t in zip(terminals, t_s, strict=True):
            times = histories.get(terminal)
            if times is None:
                histories[terminal] = array("I", (t,))
            elif t >= times[-1]:
                times.append(t)
            else:
                insort(times, t)

    def is_tracked(self, transaction_id: str) -> bool:
        return transaction_id in self._frauds

    def track(self, transaction_id: str, terminal: str, t_s: int, events: list[LabelEvent]) -> None:
        """Start following a transaction that has a fraud label: its payment, and every label it has so far."""
        if transaction_id not in self._frauds:
            self._frauds[transaction_id] = _FraudRecord(terminal, t_s)
        self.add_events(events)

    def add_events(self, events: list[LabelEvent]) -> None:
        """Labels of followed transactions (others are ignored: genuine labels of a never-fraud payment
        change nothing); the same label twice is applied once."""
        changed: set[str] = set()
        for event in events:
            record = self._frauds.get(event.transaction_id)
            if record is not None and event.seq not in record.events:
                record.events[event.seq] = event
                changed.add(event.transaction_id)
        for transaction_id in changed:
            self._apply(self._frauds[transaction_id])

    def counts(self, terminals: list[str], t_s: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(payments, frauds), each (n, N_WINDOWS): of each payment's terminal, in its delayed windows."""
        out = array("d")
        histories, starts, ends = self._times, self._starts, self._ends
        empty = array("I")
        for terminal, t in zip(terminals, t_s, strict=True):
            times = histories.get(terminal, empty)
            counts = []
            for window_s in _WINDOWS:
                start, end = terminal_window(t, window_s)
                counts.append(bisect_right(times, end) - bisect_right(times, start))
            out.extend(counts)
            fraud_starts = starts.get(terminal)
            if fraud_starts is None:
                out.extend((0,) * N_WINDOWS)
            else:
                fraud_ends = ends[terminal]
                out.extend(bisect_right(fraud_starts[w], t) - bisect_right(fraud_ends[w], t) for w in range(N_WINDOWS))
        matrix = np.frombuffer(out, dtype=np.float64).reshape(len(t_s), 2 * N_WINDOWS)
        return matrix[:, :N_WINDOWS], matrix[:, N_WINDOWS:]

    def evict(self, horizon_s: int) -> None:
        """Forget what no payment at or after horizon_s can count: payments before its longest window,
        fraud intervals that ended before it."""
        self.serves_from_s = max(self.serves_from_s, horizon_s)
        oldest = terminal_window(horizon_s, max(_WINDOWS))[0]
        self._times = {t: times for t, times in self._times.items() if _drop_until(oldest, times)}
        kept: dict[str, _FraudRecord] = {}
        for transaction_id, record in self._frauds.items():
            if all(b <= horizon_s for _, _, b in record.intervals):
                self._remove_intervals(record)
            else:
                kept[transaction_id] = record
        self._frauds = kept
        self._starts, self._ends = dict(self._starts), dict(self._ends)  # let emptied dicts shrink

    def approx_bytes(self) -> int:
        """Memory held by the state, in bytes; walks every terminal."""
        size = sys.getsizeof(self._times) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in self._times.items())
        for table in (self._starts, self._ends):
            size += sys.getsizeof(table) + sum(sys.getsizeof(a) for arrays in table.values() for a in arrays)
        return size + sys.getsizeof(self._frauds) + 300 * len(self._frauds)

    def _apply(self, record: _FraudRecord) -> None:
        """Replace a transaction's intervals by those of its current label history."""
        self._remove_intervals(record)
        spans = fraud_spans(list(record.events.values()))
        record.intervals = []
        for w, window_s in enumerate(_WINDOWS):
            for start_s, end_s in spans:
                a, b = (int(x) for x in fraud_interval(record.t_s, start_s, end_s, window_s))
                if a < b:
                    record.intervals.append((w, a, b))
        if record.intervals:
            starts = self._starts.setdefault(record.terminal, [array("q") for _ in _WINDOWS])
            ends = self._ends.setdefault(record.terminal, [array("q") for _ in _WINDOWS])
            for w, a, b in record.intervals:
                insort(starts[w], a)
                insort(ends[w], b)

    def _remove_intervals(self, record: _FraudRecord) -> None:
        starts, ends = self._starts.get(record.terminal), self._ends.get(record.terminal)
        if starts is None or ends is None:
            return
        for w, a, b in record.intervals:
            _remove_one(starts[w], a)
            _remove_one(ends[w], b)
        if not any(starts):
            del self._starts[record.terminal], self._ends[record.terminal]


def _remove_one(values: array, value: int) -> None:
    at = bisect_right(values, value) - 1
    if at >= 0 and values[at] == value:
        del values[at]


def _drop_until(horizon: int, times: array) -> bool:
    """Drop the times <= horizon from the front of a sorted array; returns whether any is left."""
    if times and times[0] <= horizon:
        del times[: bisect_right(times, horizon)]
    return len(times) > 0
