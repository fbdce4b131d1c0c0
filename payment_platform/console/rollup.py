"""The console's pre-aggregates, folded in from `scored_transactions` by id, incrementally and exactly once.

Every step is one transaction: read the ids after the cursor, GROUP BY them in the database into the
per-minute, per-status, per-reason, per-card and review-queue tables (`rollup_deltas`), and move the
cursor, all or nothing. A restart resumes from the cursor; two consoles on one store take turns on the
cursor's row lock.

Auto-increment ids are handed out when a write starts and become visible when it commits, so with several
scorer processes a lower id can appear after a higher one was folded. The ids skipped below the cursor are
kept as pending gaps (`id_gaps`) and read again at every step until they are older than `gap_grace`; a gap
that never fills was an id the bulk load skipped (a duplicate payment). All reads of a step see one
snapshot (REPEATABLE READ on MySQL/MariaDB, the write lock taken at BEGIN on SQLite), so a row is never
both folded and left pending.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import sqlalchemy as sa

from payment_platform.console.health import AggregatesHealth, aggregates_health
from payment_platform.console.id_gaps import filled_ids, load_gaps, save_gaps
from payment_platform.console.rollup_deltas import Deltas, fold, write
from payment_platform.console.tables import DERIVED_TABLES, rollup_cursor
from payment_platform.store.tables import scored_transactions

logger = logging.getLogger(__name__)

SOURCE = "scored_transactions"
_IN_LIST = 1_000

t = scored_transactions.c


def utc_now() -> dt.datetime:
    """Naive UTC, as the store keeps its DATETIMEs."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Rollup:
    """Keeps the console's pre-aggregates level with `scored_transactions`."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        gap_grace: dt.timedelta = dt.timedelta(minutes=10),
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.engine = engine
        self.gap_grace = gap_grace
        self.clock = clock

    def step(self, max_rows: int = 50_000) -> int:
        """Fold up to `max_rows` new ids, and whatever filled the pending gaps, in one transaction.
        Returns the number of rows folded."""
        with self._transaction() as conn:
            last_id = self._lock_cursor(conn)
            store_max = conn.execute(sa.select(sa.func.max(t.id))).scalar()
            if last_id > 0 and (store_max is None or store_max < last_id):
                logger.warning("scored_transactions was emptied or recreated: rebuilding the console's aggregates")
                self._reset(conn)
                return 0
            ids = list(conn.execute(sa.select(t.id).where(t.id > last_id).order_by(t.id).limit(max_rows)).scalars())
            gaps = load_gaps(conn)
            filled = filled_ids(conn, gaps)
            deltas = Deltas()
            if ids:
                fold(conn, sa.and_(t.id > last_id, t.id <= ids[-1]), deltas)
            for start in range(0, len(filled), _IN_LIST):
                fold(conn, t.id.in_(filled[start : start + _IN_LIST]), deltas)
            write(conn, deltas)
            now = self.clock()
            save_gaps(conn, gaps, filled, ids, last_id, now, self.gap_grace)
            conn.execute(
                rollup_cursor.update()
                .where(rollup_cursor.c.source == SOURCE)
                .values(last_id=ids[-1] if ids else last_id, updated_at=now)
            )
            return deltas.rows

    def catch_up(self, chunk_rows: int = 200_000, on_progress: Callable[[AggregatesHealth], None] | None = None) -> int:
        """Fold until level with the store; the total of rows folded."""
        total = 0
        while True:
            folded = self.step(chunk_rows)
            total += folded
            if on_progress is not None:
                on_progress(self.state())
            if self.state().behind == 0:
                return total

    def state(self) -> AggregatesHealth:
        with self.engine.connect() as conn:
            return aggregates_health(conn)

    # --- one step ---------------------------------------------------------------------------------

    def _transaction(self) -> _OwnedTransaction:
        conn = self.engine.connect()
        if self.engine.dialect.name != "sqlite":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        return _OwnedTransaction(conn)

    def _lock_cursor(self, conn: sa.Connection) -> int:
        query = sa.select(rollup_cursor.c.last_id).where(rollup_cursor.c.source == SOURCE).with_for_update()
        last_id = conn.execute(query).scalar()
        if last_id is None:
            # Two consoles starting at once: one insert fails on the key, its step is rolled back and retried.
            conn.execute(rollup_cursor.insert().values(source=SOURCE, last_id=0, updated_at=self.clock()))
            last_id = conn.execute(query).scalar_one()
        return int(last_id)

    def _reset(self, conn: sa.Connection) -> None:
        for table in DERIVED_TABLES:
            conn.execute(table.delete())
        conn.execute(rollup_cursor.insert().values(source=SOURCE, last_id=0, updated_at=self.clock()))


class _OwnedTransaction:
    """A connection with its transaction: commits on success, rolls back on error, closes either way."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sa.Connection:
        self.conn.begin()
        return self.conn

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            if exc_type is None:
                self.conn.commit()
            else:
                self.conn.rollback()
        finally:
            self.conn.close()
