"""What one rollup step adds to the console's pre-aggregates: selected store rows grouped, then merged in.

`fold` groups the selected rows of `scored_transactions` in the database (per minute and status, per latency
and score bucket, per reason code, per card, and the REVIEW payments of the queue) into `Deltas`; `write`
adds them to the aggregate tables with one merge per table. The rollup calls both inside its step's
transaction, so a step's rows are counted once or not at all.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa

from payment_platform.console.portable_sql import (
    epoch_minute,
    insert_ignore,
    latency_bucket,
    latency_ms,
    merge_add,
    score_bucket,
)
from payment_platform.console.tables import (
    card_totals,
    minute_histograms,
    minute_reasons,
    minute_status,
    reason_totals,
    review_items,
    status_totals,
)
from payment_platform.store.tables import scored_transactions

HISTOGRAM_SPANS = (1, 10)  # minutes per histogram row: charts of many hours read the 10-minute ones

t = scored_transactions.c


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
class Deltas:
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


def fold(conn: sa.Connection, rows: sa.ColumnElement[bool], deltas: Deltas) -> None:
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
        _absorb(deltas.minutes, (int(r.minute), r.status), _MinuteDelta(payments, latency_sum, latency_max, r.first_id))
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
            sa.select(t.id, t.transaction_id, t.customer_id, t.score, t.event_time).where(rows, t.status == "REVIEW")
        )
    )


def write(conn: sa.Connection, deltas: Deltas) -> None:
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


def _codes(reasons: str) -> Iterable[str]:
    """The distinct reason codes of a row, in its order."""
    seen: list[str] = []
    for code in reasons.split(","):
        code = code.strip()[:64]
        if code and code not in seen:
            seen.append(code)
    return seen
