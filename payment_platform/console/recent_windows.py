"""The recent-window panels: high-risk payments, velocity suspects and the last minute, read from the store.

They need every row of their window, so they read `scored_transactions` itself, but only a primary-key range:
it starts at the lowest id scored in the window's first minute (kept with the rollup's minute rows), not at
the start of the table, and a window busier than MAX_WINDOW_ROWS is shortened to its latest minutes. Their
cost grows with the scoring rate, not with the table.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from payment_platform.console.portable_sql import from_epoch_minute, to_epoch_minute
from payment_platform.console.tables import minute_status, rollup_cursor, rollup_gaps
from payment_platform.store.tables import scored_transactions

t = scored_transactions.c


# Recent-window panels read the rows after the rollup's cursor too; beyond this many, they wait for it.
MAX_UNFOLDED_ROWS = 100_000
# The most rows a recent-window panel reads: a busier window is shortened (about 100 ms of MariaDB per panel).
MAX_WINDOW_ROWS = 100_000
WRITE_MARGIN = dt.timedelta(minutes=2)


class AggregatesBehind(RuntimeError):
    """The rollup has not caught up with the store yet: a recent-window panel would have to scan."""


def recent_floor(conn: sa.Connection, since: dt.datetime) -> int:
    """The lowest id a row scored at or after `since` can have: the first id of that minute in the rollup,
    or the first id after its cursor, or the lowest pending gap that may hold such a row. A writer stamps
    scored_at before it takes its ids, so a row filling a gap was stamped before the row after the gap took
    its ids: only gaps whose next row was scored after `since` count, less WRITE_MARGIN for the time a
    write takes. Raises AggregatesBehind when more than MAX_UNFOLDED_ROWS rows are past the cursor."""
    cursor = conn.execute(sa.select(rollup_cursor.c.last_id)).scalar()
    store_max = conn.execute(sa.select(sa.func.max(t.id))).scalar() or 0
    if cursor is None or store_max - cursor > MAX_UNFOLDED_ROWS:
        behind = store_max - (cursor or 0)
        raise AggregatesBehind(f"the console's aggregates are {behind:,} rows behind the store")
    candidates = [cursor + 1]
    first = conn.execute(
        sa.select(sa.func.min(minute_status.c.first_id)).where(minute_status.c.minute >= to_epoch_minute(since))
    ).scalar()
    gap = conn.execute(
        sa.select(sa.func.min(rollup_gaps.c.first_id)).where(rollup_gaps.c.next_scored_at >= since - WRITE_MARGIN)
    ).scalar()
    candidates += [int(x) for x in (first, gap) if x is not None]
    return min(candidates)


@dataclass(frozen=True)
class RecentWindow:
    """Where a recent-window panel starts: `since` as asked, or later when the window is busier than
    MAX_WINDOW_ROWS (then `shortened`), so that its cost stays bounded whatever the traffic."""

    since: dt.datetime
    shortened: bool
    payments: int  # in the window read (whole minutes counted, so at most this many)


def recent_window(conn: sa.Connection, since: dt.datetime) -> RecentWindow:
    """The window [since, now], shortened to its latest whole minutes holding at most MAX_WINDOW_ROWS payments
    (counted from the rollup's minutes, plus the rows it has not folded yet)."""
    m = minute_status.c
    cursor = conn.execute(sa.select(rollup_cursor.c.last_id)).scalar() or 0
    unfolded = max((conn.execute(sa.select(sa.func.max(t.id))).scalar() or 0) - cursor, 0)
    per_minute = conn.execute(
        sa.select(m.minute, sa.func.sum(m.payments))
        .where(m.minute >= to_epoch_minute(since))
        .group_by(m.minute)
        .order_by(m.minute.desc())
    ).all()
    total = unfolded
    for minute, payments in per_minute:
        if total + int(payments) > MAX_WINDOW_ROWS:
            return RecentWindow(from_epoch_minute(int(minute) + 1), True, total)
        total += int(payments)
    return RecentWindow(since, False, total)


def payments_since(conn: sa.Connection, since: dt.datetime) -> int:
    """Rows scored at or after `since` (seed: Transactions / Min over the last 60 s)."""
    floor = recent_floor(conn, since)
    return int(conn.execute(sa.select(sa.func.count()).where(t.id >= floor, t.scored_at >= since)).scalar_one())


@dataclass(frozen=True)
class HighRiskPayment:
    transaction_id: str
    customer_id: str
    terminal_id: str
    amount: float
    currency: str
    event_time: dt.datetime
    scored_at: dt.datetime
    score: float
    status: str
    reasons: str


def high_risk_payments(
    conn: sa.Connection, since: dt.datetime, min_score: float = 0.8, limit: int = 50
) -> list[HighRiskPayment]:
    """Payments scored since `since` with a score of at least `min_score`, riskiest first
    (seed: High Risk Transactions, score >= 0.8 in the recent window, top 50)."""
    floor = recent_floor(conn, since)
    rows = conn.execute(
        sa.select(
            t.transaction_id,
            t.customer_id,
            t.terminal_id,
            t.amount,
            t.currency,
            t.event_time,
            t.scored_at,
            t.score,
            t.status,
            t.reasons,
        )
        .where(t.id >= floor, t.scored_at >= since, t.score >= min_score)
        .order_by(t.score.desc(), t.id.desc())
        .limit(limit)
    )
    return [
        HighRiskPayment(
            r.transaction_id,
            r.customer_id,
            r.terminal_id,
            float(r.amount),
            r.currency,
            r.event_time,
            r.scored_at,
            r.score,
            r.status,
            r.reasons,
        )
        for r in rows
    ]


@dataclass(frozen=True)
class VelocitySuspect:
    customer_id: str
    payments: int
    first_event: dt.datetime
    last_event: dt.datetime
    max_score: float


def velocity_suspects(
    conn: sa.Connection, since: dt.datetime, min_payments: int = 8, limit: int = 50
) -> list[VelocitySuspect]:
    """Cards with at least `min_payments` payments scored since `since` (seed: Velocity Alerts, >= 8)."""
    floor = recent_floor(conn, since)
    payments = sa.func.count().label("payments")
    rows = conn.execute(
        sa.select(t.customer_id, payments, sa.func.min(t.event_time), sa.func.max(t.event_time), sa.func.max(t.score))
        .where(t.id >= floor, t.scored_at >= since)
        .group_by(t.customer_id)
        .having(sa.func.count() >= min_payments)
        .order_by(payments.desc(), t.customer_id)
        .limit(limit)
    )
    return [VelocitySuspect(r[0], int(r[1]), r[2], r[3], float(r[4])) for r in rows]
