"""Feeding the terminal state from the record of every scorer: payments, then labels, in event time.

The record is the score store in production (`store/terminal_feed.py`) and a payment frame in the parity
check (`FrameTerminalSource`); both answer the four questions of `TerminalSource`. The feed keeps two
horizons and only moves them forward:
- payments: every payment with an event time before it is in the state; a payment that has a fraud
  label already recorded is followed from then on, with its whole label history;
- labels: every label with a labelled_at before it has been applied: to a followed transaction, or, if
  it is a fraud label, by starting to follow its transaction (when its payment is recorded; if not yet,
  the payment horizon brings it later, with this label).
A label applied before it is visible changes nothing before it is (`definitions.label_visible_s`), so the
horizons may run ahead of the payments being featurised; they must never lag behind.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd

from payment_platform.features.definitions import (
    LABEL_SETTLE_S,
    SECOND_MS,
    TERMINAL_LABEL_DELAY_S,
    TERMINAL_REACH_S,
    event_time_us,
    seconds,
)
from payment_platform.features.labels import LabelEvent, label_events_of
from payment_platform.features.terminal_state import TerminalState


class RecordedPayments(Protocol):
    terminals: list[str]
    t_s: list[int]
    fraud_labelled: dict[str, tuple[str, int]]  # transaction_id → (terminal, t_s), payments with a fraud label


class TerminalSource(Protocol):
    """Where every scorer's payments and labels are recorded."""

    def payments_between(self, after_us: int, before_us: int) -> RecordedPayments:
        """Payments with after_us <= event time < before_us."""

    def labels_between(self, after_us: int, before_us: int) -> list[LabelEvent]:
        """Labels with after_us <= labelled_at < before_us: at least the fraud labels, and every label of
        a transaction that has a fraud label (others change nothing)."""

    def payments_of(self, transaction_ids: list[str]) -> dict[str, tuple[str, int]]:
        """(terminal, t_s) of those of these transactions whose payment is recorded."""

    def label_history(self, transaction_ids: list[str]) -> list[LabelEvent]:
        """Every recorded label of these transactions."""


def horizons_us(t_ms: int) -> tuple[int, int]:
    """(payments, labels) horizons, exclusive, that the terminal state must reach before a payment at t_ms."""
    return (seconds(t_ms) - TERMINAL_LABEL_DELAY_S + 1) * 1_000_000, (seconds(t_ms) - LABEL_SETTLE_S + 1) * 1_000_000


class TerminalFeed:
    """Moves the terminal state's payment and label horizons forward from a TerminalSource."""

    def __init__(self, state: TerminalState, source: TerminalSource) -> None:
        self.state = state
        self.source = source
        self.payments_until_us: int | None = None  # exclusive horizons; None: not started
        self.labels_until_us: int | None = None
        self.serves_from_ms: int | None = None  # the oldest payment time it was started for

    @property
    def started(self) -> bool:
        return self.payments_until_us is not None

    def start(self, payments_from_us: int, labels_from_us: int) -> None:
        """Begin at these times: what is older can no longer count (a restart reads only this far back)."""
        self.payments_until_us = payments_from_us
        self.labels_until_us = labels_from_us

    def start_for(self, oldest_ms: int) -> None:
        """Begin so that payments from oldest_ms on see whole windows: nothing older than their reach is read."""
        self.start((seconds(oldest_ms) - TERMINAL_REACH_S) * 1_000_000, horizons_us(oldest_ms)[1])
        self.serves_from_ms = oldest_ms

    def serves(self, t_ms: int) -> bool:
        """Whether the state holds the whole windows of a payment at t_ms: it was started for one at least as
        old, and has not evicted what its windows reach."""
        started_for = self.serves_from_ms if self.serves_from_ms is not None else t_ms
        return t_ms >= max(started_for, self.state.serves_from_s * SECOND_MS)

    def reset(self) -> None:
        """Forget the state: the next `start_for` reads it again from the record, as far back as it asks."""
        self.state.clear()
        self.payments_until_us = self.labels_until_us = self.serves_from_ms = None

    def advance_for(self, t_ms: int) -> None:
        """Bring the state up to what a payment at t_ms needs."""
        self.advance(*horizons_us(t_ms))

    def advance(self, payments_until_us: int, labels_until_us: int) -> None:
        """Bring the state up to these horizons (exclusive); horizons never move back."""
        if self.payments_until_us is None or self.labels_until_us is None:
            raise RuntimeError("TerminalFeed.start must be called before advance")
        if payments_until_us > self.payments_until_us:
            self._payments(self.payments_until_us, payments_until_us)
            self.payments_until_us = payments_until_us
        if labels_until_us > self.labels_until_us:
            self._labels(self.labels_until_us, labels_until_us)
            self.labels_until_us = labels_until_us

    def _payments(self, after_us: int, before_us: int) -> None:
        recorded = self.source.payments_between(after_us, before_us)
        self.state.add_payments(recorded.terminals, recorded.t_s)
        self._follow(recorded.fraud_labelled)

    def _labels(self, after_us: int, before_us: int) -> None:
        self.apply_labels(self.source.labels_between(after_us, before_us))

    def apply_labels(self, events: list[LabelEvent]) -> None:
        """Apply labels now, whatever their labelled_at (one applied before it is visible changes nothing
        before it is): the scorer applies the labels it consumes itself without waiting for the store."""
        tracked = [e for e in events if self.state.is_tracked(e.transaction_id)]
        self.state.add_events(tracked)
        new_frauds = sorted(
            {e.transaction_id for e in events if e.is_fraud and not self.state.is_tracked(e.transaction_id)}
        )
        if new_frauds and self.payments_until_us is not None:
            # Only payments already within the payment horizon: later ones arrive with their labels.
            horizon_s = (self.payments_until_us - 1) // 1_000_000
            found = self.source.payments_of(new_frauds)
            followed = {tx: where for tx, where in found.items() if where[1] <= horizon_s}
            self._follow(followed)
            # The record may not hold these labels yet: they count from now, with the history it has.
            self.state.add_events([e for e in events if e.transaction_id in followed])

    def _follow(self, payments: dict[str, tuple[str, int]]) -> None:
        if not payments:
            return
        history: dict[str, list[LabelEvent]] = {}
        for event in self.source.label_history(list(payments)):
            history.setdefault(event.transaction_id, []).append(event)
        for transaction_id, (terminal, t_s) in payments.items():
            self.state.track(transaction_id, terminal, t_s, history.get(transaction_id, []))


class _Recorded:
    def __init__(self, terminals: list[str], t_s: list[int], fraud_labelled: dict[str, tuple[str, int]]) -> None:
        self.terminals = terminals
        self.t_s = t_s
        self.fraud_labelled = fraud_labelled


class FrameTerminalSource:
    """A TerminalSource over payment and label frames held in memory (the parity check, tests).

    `arrived` limits the labels the source knows to those that have arrived by then (their position in
    the label frame's row order), so a test can deliver labels at any point of the stream."""

    def __init__(self, payments: pd.DataFrame, labels: pd.DataFrame | None = None) -> None:
        self._event_us = event_time_us(payments["event_time"])
        self._order = np.argsort(self._event_us, kind="stable")
        self._sorted_us = self._event_us[self._order]
        self._terminal = payments["terminal_id"].to_numpy()
        self._tx = payments["transaction_id"].to_numpy()
        self._position = pd.Series(np.arange(len(payments)), index=self._tx)
        events = label_events_of(payments) if labels is None else labels
        self._labels = events.reset_index(drop=True)
        self.arrived = len(self._labels)

    def payments_between(self, after_us: int, before_us: int) -> _Recorded:
        lo, hi = np.searchsorted(self._sorted_us, [after_us, before_us], "left")
        rows = self._order[lo:hi]
        terminals = self._terminal[rows].tolist()
        t_s = (self._event_us[rows] // 1_000_000).tolist()
        known = self._labels.iloc[: self.arrived]
        fraud_txs = set(known.loc[known["is_fraud"].astype(bool), "transaction_id"])
        labelled = {
            tx: (terminal, t) for tx, terminal, t in zip(self._tx[rows], terminals, t_s, strict=True) if tx in fraud_txs
        }
        return _Recorded(terminals, t_s, labelled)

    def labels_between(self, after_us: int, before_us: int) -> list[LabelEvent]:
        known = self._labels.iloc[: self.arrived]
        inside = known[(known["labelled_us"] >= after_us) & (known["labelled_us"] < before_us)]
        return _events(inside)

    def payments_of(self, transaction_ids: list[str]) -> dict[str, tuple[str, int]]:
        found = {}
        for tx in transaction_ids:
            if tx in self._position.index:
                row = int(self._position[tx])
                found[tx] = (str(self._terminal[row]), int(self._event_us[row] // 1_000_000))
        return found

    def label_history(self, transaction_ids: list[str]) -> list[LabelEvent]:
        known = self._labels.iloc[: self.arrived]
        return _events(known[known["transaction_id"].isin(transaction_ids)])


def _events(frame: pd.DataFrame) -> list[LabelEvent]:
    return [
        LabelEvent(str(tx), bool(fraud), int(at), int(seq))
        for tx, fraud, at, seq in zip(
            frame["transaction_id"], frame["is_fraud"], frame["labelled_us"], frame["seq"], strict=True
        )
    ]
