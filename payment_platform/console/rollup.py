"""The console's pre-aggregates, folded in from `scored_transactions` by id, incrementally and exactly once.

Every step is one transaction: read the ids after the cursor, GROUP BY them in the database into the
per-minute, per-status, per-reason, per-card and review-queue tables, and move the cursor, all or nothing.
A restart resumes from the cursor; two consoles on one store take turns on the cursor's row lock.

Auto-increment ids are handed out when a write starts and become visible when it commits, so with several
scorer processes a lower id can appear after a higher one was folded. The ids skipped below the cursor are
kept as pending gaps and read again at every step until they are older than `gap_grace`; a gap that never
fills was an id the bulk load skipped (a duplicate payment). All reads of a step see one snapshot
(REPEATABLE READ on MySQL/MariaDB, the write lock taken at BEGIN on SQLite), so a row is never both folded
and left pending.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from payment_platform.console.health import AggregatesHealth, aggregates_health
from payment_platform.console.portable_sql import (
    epoch_minute,
    insert_ignore,
    latency_bucket,
    latency_ms,
    merge_add,
    score_bucket,
)
from payment_platform.console.tables import (
    DERIVED_TABLES,
    card_totals,
    minute_histograms,
    minute_reasons,
    minute_status,
    reason_totals,
    review_items,
    rollup_cursor,
    rollup_gaps,
    status_totals,
)
from payment_platform.store.tables import scored_transactions

logger = logging.getLogger(__name__)

SOURCE = "scored_transactions"
HISTOGRAM_SPANS = (1, 10)  # minutes per histogram row: charts of many hours read the 10-minute ones
MAX_PENDING_GAPS = 2_000  # beyond this the oldest gaps are given up (each costs a range read per step)
_IN_LIST = 1_000

t = scored_transactions.c


def utc_now() -> dt.datetime:
    """Naive UTC, as the store keeps its DATETIMEs."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Gap:
    first_id: int
    last_id: int
    seen_at: dt.datetime
    next_scored_at: dt.datetime


@dataclass
class _MinuteDelta:
    payments: int
    latency_sum_ms: float
    latency_max_ms: float
    first_id: int

    def absorb(self, other: _MinuteDelta) -> None:
        self.payments += other.payments
        self.latency_sum_ms += other.latency_sum_ms
        self.latency_max_ms = max(self.latency_max_ms, other.latency_max_ms)
        self.first_id = min(self.first_id, other.first_id)


@dataclass
class _StatusDelta:
    payments: int
    latency_sum_ms: float
    latency_max_ms: float
    score_sum: float

    def absorb(self, other: _StatusDelta) -> None:
        self.payments += other.payments
        self.latency_sum_ms += other.latency_sum_ms
        self.latency_max_ms = max(self.latency_max_ms, other.latency_max_ms)
        self.score_sum += other.score_sum


@dataclass
class _CardDelta:
    payments: int
    review: int
    declined: int
    score_sum: float
    max_score: float
    last_event_time: dt.datetime

    def absorb(self, other: _CardDelta) -> None:
        self.payments += other.payments
        self.review += other.review
        self.declined += other.declined
        self.score_sum += other.score_sum
        self.max_score = max(self.max_score, other.max_score)
        self.last_event_time = max(self.last_event_time, other.last_event_time)


@dataclass
class _Deltas:
    """What one step adds to the aggregates, keyed like their primary keys."""

    minutes: dict[tuple[int, str], _MinuteDelta] = field(default_factory=dict)
    histograms: defaultdict[tuple[int, str, int], int] = field(default_factory=lambda: defaultdict(int))
    reasons: defaultdict[tuple[int, str], int] = field(default_factory=lambda: defaultdict(int))
    statuses: dict[str, _StatusDelta] = field(default_factory=dict)
    cards: dict[str, _CardDelta] = field(default_factory=dict)
    review_items: list[dict[str, object]] = field(default_factory=list)
    rows: int = 0


def _absorb(into: dict, key: object, delta: _MinuteDelta | _StatusDelta | _CardDelta) -> None:
    current = into.get(key)
    if current is None:
        into[key] = delta
    else:
        current.absorb(delta)


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
            gaps = self._gaps(conn)
            filled = self._filled(conn, gaps)
            deltas = _Deltas()
            if ids:
                self._fold(conn, sa.and_(t.id > last_id, t.id <= ids[-1]), deltas)
            for start in range(0, len(filled), _IN_LIST):
                self._fold(conn, t.id.in_(filled[start : start + _IN_LIST]), deltas)
            self._write(conn, deltas)
            now = self.clock()
            self._save_gaps(conn, gaps, filled, ids, last_id, now)
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

    def _gaps(self, conn: sa.Connection) -> list[Gap]:
        g = rollup_gaps.c
        rows = conn.execute(sa.select(g.first_id, g.last_id, g.seen_at, g.next_scored_at).order_by(g.first_id))
        return [Gap(r.first_id, r.last_id, r.seen_at, r.next_scored_at) for r in rows]

    def _filled(self, conn: sa.Connection, gaps: Sequence[Gap]) -> list[int]:
        """Ids of rows that appeared in pending gaps since they were recorded."""
        filled: list[int] = []
        for start in range(0, len(gaps), 200):
            ranges = [t.id.between(g.first_id, g.last_id) for g in gaps[start : start + 200]]
            filled.extend(conn.execute(sa.select(t.id).where(sa.or_(*ranges)).order_by(t.id)).scalars())
        return filled

    def _save_gaps(
        self,
        conn: sa.Connection,
        gaps: Sequence[Gap],
        filled: Sequence[int],
        ids: Sequence[int],
        last_id: int,
        now: dt.datetime,
    ) -> None:
        kept: list[Gap] = []
        filled_sorted = sorted(filled)
        for gap in gaps:
            if now - gap.seen_at > self.gap_grace:
                continue
            kept.extend(_split(gap, filled_sorted))
        new: list[tuple[int, int, int]] = []  # first id, last id, the id of the row after the gap
        previous = last_id
        for row_id in ids:
            if row_id > previous + 1:
                new.append((previous + 1, row_id - 1, row_id))
            previous = row_id
        if new:
            query = sa.select(t.id, t.scored_at).where(t.id.in_([after for _, _, after in new]))
            stamped = {row.id: row.scored_at for row in conn.execute(query)}
            kept.extend(Gap(first, last, now, stamped[after]) for first, last, after in new)
        kept.sort(key=lambda g: g.seen_at, reverse=True)
        if len(kept) > MAX_PENDING_GAPS:
            logger.warning("%d pending id gaps: giving up the %d oldest", len(kept), len(kept) - MAX_PENDING_GAPS)
            kept = kept[:MAX_PENDING_GAPS]
        unchanged = {(g.first_id, g.last_id) for g in gaps} == {(g.first_id, g.last_id) for g in kept}
        if unchanged:
            return
        conn.execute(rollup_gaps.delete())
        if kept:
            conn.execute(rollup_gaps.insert(), [vars(g) for g in kept])

    def _fold(self, conn: sa.Connection, rows: sa.ColumnElement[bool], deltas: _Deltas) -> None:
        """Group the selected rows of scored_transactions into the deltas (the database does the grouping)."""
        minute = epoch_minute(t.scored_at).label("minute")
        latency = latency_ms(t.event_time, t.scored_at)
        for r in conn.execute(
            sa.select(
                minute,
                t.status,
                sa.func.count().label("payments"),
                sa.func.sum(latency).label("latency_sum"),
                sa.func.max(latency).label("latency_max"),
                sa.func.min(t.id).label("first_id"),
                sa.func.sum(t.score).label("score_sum"),
            )
            .where(rows)
            .group_by(minute, t.status)
        ):
            payments, latency_sum, latency_max = int(r.payments), float(r.latency_sum), float(r.latency_max)
            _absorb(
                deltas.minutes, (int(r.minute), r.status), _MinuteDelta(payments, latency_sum, latency_max, r.first_id)
            )
            _absorb(deltas.statuses, r.status, _StatusDelta(payments, latency_sum, latency_max, float(r.score_sum)))
            deltas.rows += payments
        for metric, bucket in (("latency", latency_bucket(latency)), ("score", score_bucket(t.score))):
            labelled = bucket.label("bucket")
            for r in conn.execute(
                sa.select(minute, labelled, sa.func.count().label("payments")).where(rows).group_by(minute, labelled)
            ):
                deltas.histograms[(int(r.minute), metric, int(r.bucket))] += int(r.payments)
        for r in conn.execute(
            sa.select(minute, t.reasons, sa.func.count().label("payments"))
            .where(rows, t.reasons != "")
            .group_by(minute, t.reasons)
        ):
            for code in _codes(r.reasons):
                deltas.reasons[(int(r.minute), code)] += int(r.payments)
        for r in conn.execute(
            sa.select(
                t.customer_id,
                sa.func.count().label("payments"),
                sa.func.sum(sa.case((t.status == "REVIEW", 1), else_=0)).label("review"),
                sa.func.sum(sa.case((t.status == "DECLINED", 1), else_=0)).label("declined"),
                sa.func.sum(t.score).label("score_sum"),
                sa.func.max(t.score).label("max_score"),
                sa.func.max(t.event_time).label("last_event_time"),
            )
            .where(rows)
            .group_by(t.customer_id)
        ):
            _absorb(
                deltas.cards,
                r.customer_id,
                _CardDelta(
                    int(r.payments),
                    int(r.review),
                    int(r.declined),
                    float(r.score_sum),
                    float(r.max_score),
                    r.last_event_time,
                ),
            )
        deltas.review_items.extend(
            {
                "transaction_id": r.transaction_id,
                "row_id": r.id,
                "customer_id": r.customer_id,
                "score": r.score,
                "event_time": r.event_time,
                "reviewed": False,
            }
            for r in conn.execute(
                sa.select(t.id, t.transaction_id, t.customer_id, t.score, t.event_time).where(
                    rows, t.status == "REVIEW"
                )
            )
        )

    def _write(self, conn: sa.Connection, deltas: _Deltas) -> None:
        merge_add(
            conn,
            minute_status,
            [{"minute": m, "status": status, **vars(v)} for (m, status), v in deltas.minutes.items()],
            add=("payments", "latency_sum_ms"),
            greatest=("latency_max_ms",),
            least=("first_id",),
        )
        by_span: defaultdict[tuple[str, int, int, int], int] = defaultdict(int)
        for (m, metric, b), n in deltas.histograms.items():
            for span in HISTOGRAM_SPANS:
                by_span[(metric, span, m - m % span, b)] += n
        merge_add(
            conn,
            minute_histograms,
            [
                {"metric": metric, "span": span, "minute": m, "bucket": b, "payments": n}
                for (metric, span, m, b), n in by_span.items()
            ],
            add=("payments",),
        )
        merge_add(
            conn,
            minute_reasons,
            [{"minute": m, "reason": code, "payments": n} for (m, code), n in deltas.reasons.items()],
            add=("payments",),
        )
        totals_by_reason: dict[str, int] = defaultdict(int)
        for (_, code), n in deltas.reasons.items():
            totals_by_reason[code] += n
        merge_add(
            conn,
            reason_totals,
            [{"reason": code, "payments": n} for code, n in totals_by_reason.items()],
            add=("payments",),
        )
        merge_add(
            conn,
            status_totals,
            [{"status": status, **vars(v)} for status, v in deltas.statuses.items()],
            add=("payments", "latency_sum_ms", "score_sum"),
            greatest=("latency_max_ms",),
        )
        merge_add(
            conn,
            card_totals,
            [{"customer_id": customer, **vars(v)} for customer, v in deltas.cards.items()],
            add=("payments", "review", "declined", "score_sum"),
            greatest=("max_score", "last_event_time"),
        )
        insert_ignore(conn, review_items, deltas.review_items)


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


def _codes(reasons: str) -> Iterable[str]:
    """The distinct reason codes of a row, in its order."""
    seen: list[str] = []
    for code in reasons.split(","):
        code = code.strip()[:64]
        if code and code not in seen:
            seen.append(code)
    return seen


def _split(gap: Gap, filled: Sequence[int]) -> list[Gap]:
    """The parts of a gap that are still empty once the filled ids are taken out of it."""
    parts: list[Gap] = []
    start = gap.first_id
    for row_id in filled:
        if row_id < gap.first_id or row_id > gap.last_id:
            continue
        if row_id > start:
            parts.append(Gap(start, row_id - 1, gap.seen_at, gap.next_scored_at))
        start = row_id + 1
    if start <= gap.last_id:
        parts.append(Gap(start, gap.last_id, gap.seen_at, gap.next_scored_at))
    return parts
