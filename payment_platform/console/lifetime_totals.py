"""Lifetime figures of the monitoring pages: decisions per status and each card's risk since the store began.

They read the totals the rollup keeps (`console_status_totals`, `console_card_totals`): a handful of rows,
or one card's, however large the store. The seed console computed them with full-table GROUP BYs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from payment_platform.console.tables import card_totals, status_totals
from payment_platform.stream.decisions import APPROVED, DECLINED, REVIEW

STATUSES = (APPROVED, REVIEW, DECLINED)


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
