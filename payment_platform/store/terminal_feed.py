"""The score store as the record of every scorer's payments and labels, for the terminal windows.

Implements `features.terminal_feed.TerminalSource`. Ranges are read by the event-time index and streamed
in chunks, so a scorer that starts with weeks to catch up holds one chunk at a time; times come back as
integers computed by the database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import sqlalchemy as sa

from payment_platform.features.labels import LabelEvent
from payment_platform.store import driver
from payment_platform.store.driver import uses_pymysql
from payment_platform.store.event_time import EpochMicros, datetime_of
from payment_platform.store.tables import label_events, scored_transactions

Retry = Callable[[Callable[[], Any], str], Any]
_CHUNK = 5_000
_STREAM = 50_000
# The hot reads, as constants for MySQL/MariaDB (store/driver.py); the SQLAlchemy forms below say the same.
_PAYMENTS_SQL = (
    "SELECT st.terminal_id, TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', st.event_time), "
    "CASE WHEN EXISTS (SELECT 1 FROM label_events le WHERE le.transaction_id = st.transaction_id "
    "AND le.is_fraud) THEN st.transaction_id END "
    "FROM scored_transactions st WHERE st.event_time >= %s AND st.event_time < %s ORDER BY st.event_time"
)
_LABELS_SQL = (
    "SELECT le.transaction_id, le.is_fraud, TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', le.labelled_at), le.id "
    "FROM label_events le WHERE le.labelled_at >= %s AND le.labelled_at < %s AND (le.is_fraud OR EXISTS "
    "(SELECT 1 FROM label_events fraud WHERE fraud.transaction_id = le.transaction_id AND fraud.is_fraud))"
)


class RecordedPayments:
    def __init__(self) -> None:
        self.terminals: list[str] = []
        self.t_s: list[int] = []
        self.fraud_labelled: dict[str, tuple[str, int]] = {}


class StoreTerminalSource:
    """Payments and labels of every scorer of the group, as written to the score store."""

    def __init__(self, engine: sa.Engine, retry: Retry = lambda call, what: call()) -> None:
        self.engine = engine
        self.retry = retry  # how a read rides out a database outage (the scorer's policy)
        self.rows_read = 0

    def payments_between(self, after_us: int, before_us: int) -> RecordedPayments:
        return self.retry(lambda: self._payments_between(after_us, before_us), "reading payments for terminals")

    def labels_between(self, after_us: int, before_us: int) -> list[LabelEvent]:
        return self.retry(lambda: self._labels_between(after_us, before_us), "reading labels for terminals")

    def payments_of(self, transaction_ids: list[str]) -> dict[str, tuple[str, int]]:
        return self.retry(lambda: self._payments_of(transaction_ids), "reading labelled payments")

    def label_history(self, transaction_ids: list[str]) -> list[LabelEvent]:
        return self.retry(lambda: self._label_history(transaction_ids), "reading label histories")

    def _payments_between(self, after_us: int, before_us: int) -> RecordedPayments:
        if uses_pymysql(self.engine):
            rows = driver.rows(self.engine, _PAYMENTS_SQL, (datetime_of(after_us), datetime_of(before_us)))
            return self._recorded(rows)
        t, le = scored_transactions.c, label_events.c
        has_fraud_label = (
            sa.select(sa.literal(1)).where(le.transaction_id == t.transaction_id, le.is_fraud.is_(sa.true())).exists()
        )
        query = (
            sa.select(t.terminal_id, EpochMicros(t.event_time), sa.case((has_fraud_label, t.transaction_id)))
            .where(t.event_time >= datetime_of(after_us), t.event_time < datetime_of(before_us))
            .order_by(t.event_time)
        )
        return self._recorded((terminal, int(us) // 1_000_000, tx) for terminal, us, tx in self._stream(query))

    def _recorded(self, rows: Iterable[tuple[str, int, str | None]]) -> RecordedPayments:
        recorded = RecordedPayments()
        terminals, seconds, labelled = recorded.terminals, recorded.t_s, recorded.fraud_labelled
        for terminal, second, fraud_tx in rows:
            terminals.append(terminal)
            seconds.append(second)
            if fraud_tx is not None:
                labelled[fraud_tx] = (terminal, second)
        self.rows_read += len(terminals)
        return recorded

    def _labels_between(self, after_us: int, before_us: int) -> list[LabelEvent]:
        if uses_pymysql(self.engine):
            rows = driver.rows(self.engine, _LABELS_SQL, (datetime_of(after_us), datetime_of(before_us)))
            return [LabelEvent(tx, bool(fraud), int(at), int(seq)) for tx, fraud, at, seq in rows]
        le, fraud = label_events.c, label_events.alias("fraud").c
        # A genuine label matters only to a transaction that has a fraud label: the database checks that
        # with an index probe, so the rest (most labels) never cross the wire.
        has_fraud_label = (
            sa.select(sa.literal(1))
            .where(fraud.transaction_id == le.transaction_id, fraud.is_fraud.is_(sa.true()))
            .exists()
        )
        query = sa.select(le.transaction_id, le.is_fraud, EpochMicros(le.labelled_at), le.id).where(
            le.labelled_at >= datetime_of(after_us),
            le.labelled_at < datetime_of(before_us),
            sa.or_(le.is_fraud.is_(sa.true()), has_fraud_label),
        )
        return [LabelEvent(tx, bool(fraud), int(at), int(seq)) for tx, fraud, at, seq in self._stream(query)]

    def _payments_of(self, transaction_ids: list[str]) -> dict[str, tuple[str, int]]:
        t = scored_transactions.c
        found = {}
        with self.engine.connect() as conn:
            for start in range(0, len(transaction_ids), _CHUNK):
                chunk = transaction_ids[start : start + _CHUNK]
                rows = conn.execute(
                    sa.select(t.transaction_id, t.terminal_id, EpochMicros(t.event_time)).where(
                        t.transaction_id.in_(chunk)
                    )
                )
                found.update({tx: (terminal, int(us) // 1_000_000) for tx, terminal, us in rows})
        return found

    def _label_history(self, transaction_ids: list[str]) -> list[LabelEvent]:
        le = label_events.c
        events = []
        with self.engine.connect() as conn:
            for start in range(0, len(transaction_ids), _CHUNK):
                chunk = transaction_ids[start : start + _CHUNK]
                rows = conn.execute(
                    sa.select(le.transaction_id, le.is_fraud, EpochMicros(le.labelled_at), le.id).where(
                        le.transaction_id.in_(chunk)
                    )
                )
                events += [LabelEvent(tx, bool(fraud), int(at), int(seq)) for tx, fraud, at, seq in rows]
        return events

    def _stream(self, query: sa.Select) -> Iterator[tuple]:
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=_STREAM).execute(query)
            for partition in result.partitions():
                yield from partition
