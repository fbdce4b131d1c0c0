"""The monitoring panels: each reads the console's pre-aggregates, or a recent primary-key range of the store.

The seed console answered every refresh with full-table GROUP BYs. Here lifetime figures come from the
totals the rollup keeps, charts from its per-minute rows over a bounded window, and the recent-window panels
(high-risk payments, velocity suspects, payments in the last minute) read only the rows scored since the
window began: they start at the lowest id scored in its first minute, so the primary key bounds the range.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass

import sqlalchemy as sa

from payment_platform.console.portable_sql import SCORE_BUCKETS, latency_bucket_bounds
from payment_platform.console.tables import (
    card_totals,
    minute_histograms,
    minute_reasons,
    minute_status,
    reason_totals,
    rollup_cursor,
    rollup_gaps,
    status_totals,
)
from payment_platform.store.tables import scored_transactions
from payment_platform.stream.decisions import APPROVED, DECLINED, REVIEW

STATUSES = (APPROVED, REVIEW, DECLINED)
t = scored_transactions.c
# Recent-window panels read the rows after the rollup's cursor too; beyond this many, they wait for it.
MAX_UNFOLDED_ROWS = 100_000
# The most rows a recent-window panel reads: a busier window is shortened (about 100 ms of MariaDB per panel).
MAX_WINDOW_ROWS = 100_000
WRITE_MARGIN = dt.timedelta(minutes=2)


class AggregatesBehind(RuntimeError):
    """The rollup has not caught up with the store yet: a recent-window panel would have to scan."""


def to_epoch_minute(moment: dt.datetime) -> int:
    """Whole minutes since the epoch of a naive UTC datetime (as the rollup's `epoch_minute`)."""
    return math.floor((moment - dt.datetime(1970, 1, 1)).total_seconds() / 60)


def from_epoch_minute(minute: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1) + dt.timedelta(minutes=minute)


@dataclass(frozen=True)
class Window:
    """The last `minutes` up to `end` (naive UTC), charted in steps of `step` minutes."""

    end: dt.datetime
    minutes: int

    @property
    def start(self) -> dt.datetime:
        return self.end - dt.timedelta(minutes=self.minutes)

    @property
    def first_minute(self) -> int:
        """The first whole minute inside the window, on a step boundary (so every point covers a full step)."""
        first = to_epoch_minute(self.start) + 1
        return first + (-first) % self.step

    @property
    def last_minute(self) -> int:
        return to_epoch_minute(self.end)

    @property
    def step(self) -> int:
        """Minutes per chart point: each minute up to 6 hours, then 10 minutes (the coarse histograms)."""
        return 1 if self.minutes <= 360 else 10


# --- lifetime ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusTotals:
    payments: dict[str, int]
    latency_avg_ms: float | None
    latency_max_ms: float | None

    @property
    def total(self) -> int:
        return sum(self.payments.values())


def status_totals_all_time(conn: sa.Connection) -> StatusTotals:
    """Decisions per status since the store began, with the average and maximum latency (seed: System Health)."""
    rows = conn.execute(sa.select(status_totals)).all()
    payments = {status: 0 for status in STATUSES}
    latency_sum, latency_max, count = 0.0, None, 0
    for r in rows:
        payments[r.status] = int(r.payments)
        latency_sum += r.latency_sum_ms
        count += r.payments
        latency_max = r.latency_max_ms if latency_max is None else max(latency_max, r.latency_max_ms)
    return StatusTotals(payments, latency_sum / count if count else None, latency_max)


@dataclass(frozen=True)
class ReasonCount:
    reason: str
    in_window: int
    all_time: int


def reason_breakdown(conn: sa.Connection, window: Window) -> list[ReasonCount]:
    """Payments per reason code, in the window and since the beginning (seed: Fraud Source Breakdown)."""
    lifetime = dict(conn.execute(sa.select(reason_totals.c.reason, reason_totals.c.payments)).tuples().all())
    recent = dict(
        conn.execute(
            sa.select(minute_reasons.c.reason, sa.func.sum(minute_reasons.c.payments))
            .where(minute_reasons.c.minute.between(window.first_minute, window.last_minute))
            .group_by(minute_reasons.c.reason)
        )
        .tuples()
        .all()
    )
    counts = [ReasonCount(r, int(recent.get(r, 0)), int(n)) for r, n in lifetime.items()]
    return sorted(counts, key=lambda c: (-c.in_window, -c.all_time, c.reason))


@dataclass(frozen=True)
class CardRisk:
    customer_id: str
    payments: int
    review: int
    declined: int
    average_score: float
    max_score: float
    last_event_time: dt.datetime


def top_risk_cards(conn: sa.Connection, limit: int = 10) -> list[CardRisk]:
    """The cards with the most declines, then reviews, then the highest score (seed: Top Risk Customers)."""
    c = card_totals.c
    rows = conn.execute(
        sa.select(card_totals).order_by(c.declined.desc(), c.review.desc(), c.max_score.desc()).limit(limit)
    )
    return [_card_risk(r) for r in rows]


def card_risk(conn: sa.Connection, customer_id: str) -> CardRisk | None:
    """One card's lifetime figures (seed: Customer Investigation)."""
    row = conn.execute(sa.select(card_totals).where(card_totals.c.customer_id == customer_id)).first()
    return _card_risk(row) if row else None


def _card_risk(r: sa.Row) -> CardRisk:
    return CardRisk(
        r.customer_id,
        int(r.payments),
        int(r.review),
        int(r.declined),
        r.score_sum / r.payments if r.payments else 0.0,
        r.max_score,
        r.last_event_time,
    )


# --- charts over a window ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionSeries:
    """Decisions per minute by status, one point per step (averaged over the step's minutes)."""

    minutes: list[int]  # epoch minute of each point's start
    per_minute: dict[str, list[float]]
    payments: dict[str, int]  # in the whole window
    latency_avg_ms: float | None
    latency_max_ms: float | None


def decisions_over_time(conn: sa.Connection, window: Window) -> DecisionSeries:
    m = minute_status.c
    step = window.step
    point = (m.minute - m.minute % step).label("point")
    rows = conn.execute(
        sa.select(
            point,
            m.status,
            sa.func.sum(m.payments).label("payments"),
            sa.func.sum(m.latency_sum_ms).label("latency_sum"),
            sa.func.max(m.latency_max_ms).label("latency_max"),
        )
        .where(m.minute.between(window.first_minute, window.last_minute))
        .group_by(point, m.status)
    ).all()
    points = _points(window)
    index = {p: i for i, p in enumerate(points)}
    per_minute = {status: [0.0] * len(points) for status in STATUSES}
    payments = dict.fromkeys(STATUSES, 0)
    latency_sum, latency_max = 0.0, None
    for r in rows:
        i = index.get(int(r.point))
        if i is None:
            continue
        per_minute.setdefault(r.status, [0.0] * len(points))[i] += float(r.payments) / step
        payments[r.status] = payments.get(r.status, 0) + int(r.payments)
        latency_sum += float(r.latency_sum)
        latency_max = r.latency_max if latency_max is None else max(latency_max, r.latency_max)
    total = sum(payments.values())
    return DecisionSeries(points, per_minute, payments, latency_sum / total if total else None, latency_max)


@dataclass(frozen=True)
class LatencySeries:
    """Latency percentiles (scored_at − event_time) per step, from the 12 %-wide histogram buckets."""

    minutes: list[int]
    p50: list[float | None]
    p95: list[float | None]
    p99: list[float | None]
    overall: dict[str, float | None]


def latency_over_time(conn: sa.Connection, window: Window) -> LatencySeries:
    h = minute_histograms.c
    rows = conn.execute(
        sa.select(h.minute.label("point"), h.bucket, h.payments).where(
            h.metric == "latency", h.span == window.step, h.minute.between(window.first_minute, window.last_minute)
        )
    ).all()
    points = _points(window)
    histograms: dict[int, dict[int, int]] = defaultdict(dict)
    whole: dict[int, int] = defaultdict(int)
    for r in rows:
        histograms[int(r.point)][int(r.bucket)] = int(r.payments)
        whole[int(r.bucket)] += int(r.payments)
    series: dict[float, list[float | None]] = {q: [] for q in (0.5, 0.95, 0.99)}
    for p in points:
        for q, values in series.items():
            values.append(histogram_quantile(histograms.get(p, {}), q))
    overall = {f"p{round(q * 100)}": histogram_quantile(whole, q) for q in (0.5, 0.95, 0.99)}
    return LatencySeries(points, series[0.5], series[0.95], series[0.99], overall)


def histogram_quantile(counts: dict[int, int], q: float) -> float | None:
    """The q-quantile of latency buckets, interpolated geometrically inside its bucket (linearly below 1 ms)."""
    total = sum(counts.values())
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for bucket in sorted(counts):
        n = counts[bucket]
        if n and seen + n >= rank:
            low, high = latency_bucket_bounds(bucket)
            fraction = min(max((rank - seen) / n, 0.0), 1.0)
            if math.isinf(high):
                return low
            if low <= 0:
                return low + (high - low) * fraction
            return low * (high / low) ** fraction
        seen += n
    return None


@dataclass(frozen=True)
class ScoreDistribution:
    edges: list[float]  # lower edge of each bucket
    payments: list[int]


def score_distribution(conn: sa.Connection, window: Window) -> ScoreDistribution:
    """Payments per score bucket (width 1/SCORE_BUCKETS) scored in the window."""
    h = minute_histograms.c
    rows = conn.execute(
        sa.select(h.bucket, sa.func.sum(h.payments))
        .where(h.metric == "score", h.span == window.step, h.minute.between(window.first_minute, window.last_minute))
        .group_by(h.bucket)
    ).all()
    payments = [0] * SCORE_BUCKETS
    for bucket, n in rows:
        payments[min(max(int(bucket), 0), SCORE_BUCKETS - 1)] += int(n)
    return ScoreDistribution([i / SCORE_BUCKETS for i in range(SCORE_BUCKETS)], payments)


def _points(window: Window) -> list[int]:
    step = window.step
    first = window.first_minute - window.first_minute % step
    return list(range(first, window.last_minute + 1, step))


# --- recent windows on the store -----------------------------------------------------------------------


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
