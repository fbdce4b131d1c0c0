"""The review queue and one case, as the analyst reads them.

A case is a card with REVIEW payments nobody has given a verdict on yet (`console_review_items`, kept by the
rollup), ranked by its riskiest payment. A case shows its open payments, its lease, the card's history the
reason codes are explained with, and the verdicts already given on it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from payment_platform.console.leases import Lease, live_leases
from payment_platform.console.reasons import CARD_CONTEXT_REACH, CardPayments
from payment_platform.console.tables import review_items, reviews
from payment_platform.store.tables import scored_transactions

QUEUE_LIMIT = 50
CASE_ITEMS_LIMIT = 100  # open payments shown (and judged) at once in one case

t = scored_transactions.c
ri = review_items.c


@dataclass(frozen=True)
class CaseSummary:
    customer_id: str
    open_payments: int
    max_score: float
    first_event: dt.datetime
    last_event: dt.datetime
    lease: Lease | None


def review_queue(conn: sa.Connection, now: dt.datetime, limit: int = QUEUE_LIMIT) -> list[CaseSummary]:
    """Cases with open REVIEW payments, riskiest first, each with its live lease if any."""
    max_score = sa.func.max(ri.score).label("max_score")
    rows = conn.execute(
        sa.select(
            ri.customer_id,
            sa.func.count().label("open_payments"),
            max_score,
            sa.func.min(ri.event_time).label("first_event"),
            sa.func.max(ri.event_time).label("last_event"),
        )
        .where(ri.reviewed.is_(False))
        .group_by(ri.customer_id)
        .order_by(max_score.desc(), sa.func.count().desc(), ri.customer_id)
        .limit(limit)
    ).all()
    leases = live_leases(conn, [r.customer_id for r in rows], now)
    return [
        CaseSummary(
            r.customer_id, int(r.open_payments), r.max_score, r.first_event, r.last_event, leases.get(r.customer_id)
        )
        for r in rows
    ]


def open_cases(conn: sa.Connection) -> tuple[int, int]:
    """(cases, payments) waiting for a verdict."""
    row = conn.execute(
        sa.select(sa.func.count(sa.distinct(ri.customer_id)), sa.func.count()).where(ri.reviewed.is_(False))
    ).one()
    return int(row[0]), int(row[1])


def open_payments_of(conn: sa.Connection, customer_id: str) -> int:
    """The card's REVIEW payments waiting for a verdict."""
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(ri.reviewed.is_(False), ri.customer_id == customer_id)
        ).scalar_one()
    )


@dataclass(frozen=True)
class CasePayment:
    transaction_id: str
    terminal_id: str
    amount: float
    currency: str
    event_time: dt.datetime
    score: float
    status: str
    reasons: str
    model_version: str


@dataclass(frozen=True)
class PastVerdict:
    transaction_id: str
    analyst: str
    verdict: str
    note: str
    reviewed_at: dt.datetime


@dataclass(frozen=True)
class Case:
    customer_id: str
    open_payments: list[CasePayment]
    more_open: int  # open payments beyond those shown
    lease: Lease | None
    card: CardPayments  # the card's history the explanations need
    past_verdicts: list[PastVerdict]


def load_case(conn: sa.Connection, customer_id: str, now: dt.datetime) -> Case:
    """The card's open REVIEW payments (riskiest first), its lease, its history for the reason codes,
    and the verdicts already given on it."""
    open_ids = conn.execute(
        sa.select(ri.transaction_id, ri.row_id)
        .where(ri.reviewed.is_(False), ri.customer_id == customer_id)
        .order_by(ri.score.desc(), ri.event_time.desc())
        .limit(CASE_ITEMS_LIMIT + 1)
    ).all()
    shown = open_ids[:CASE_ITEMS_LIMIT]
    payments: list[CasePayment] = []
    if shown:
        rows = conn.execute(
            sa.select(
                t.transaction_id,
                t.terminal_id,
                t.amount,
                t.currency,
                t.event_time,
                t.score,
                t.status,
                t.reasons,
                t.model_version,
            ).where(t.id.in_([r.row_id for r in shown]))
        ).all()
        by_id = {r.transaction_id: r for r in rows}
        payments = [
            CasePayment(
                r.transaction_id,
                r.terminal_id,
                float(r.amount),
                r.currency,
                r.event_time,
                r.score,
                r.status,
                r.reasons,
                r.model_version,
            )
            for r in (by_id.get(x.transaction_id) for x in shown)
            if r is not None
        ]
    more = 0
    if len(open_ids) > CASE_ITEMS_LIMIT:
        total = conn.execute(
            sa.select(sa.func.count()).where(ri.reviewed.is_(False), ri.customer_id == customer_id)
        ).scalar_one()
        more = int(total) - len(shown)
    lease = live_leases(conn, [customer_id], now).get(customer_id)
    card = _card_payments(conn, customer_id, [p.event_time for p in payments])
    v = reviews.c
    past = [
        PastVerdict(r.transaction_id, r.analyst, r.verdict, r.note, r.reviewed_at)
        for r in conn.execute(
            sa.select(v.transaction_id, v.analyst, v.verdict, v.note, v.reviewed_at)
            .where(v.customer_id == customer_id)
            .order_by(v.reviewed_at.desc(), v.id.desc())
            .limit(50)
        )
    ]
    return Case(customer_id, payments, more, lease, card, past)


def _card_payments(conn: sa.Connection, customer_id: str, times: Sequence[dt.datetime]) -> CardPayments:
    if not times:
        return CardPayments([], [])
    rows = conn.execute(
        sa.select(t.event_time, t.amount)
        .where(
            t.customer_id == customer_id,
            t.event_time > min(times) - CARD_CONTEXT_REACH,
            t.event_time <= max(times),
        )
        .order_by(t.event_time)
        .limit(20_000)
    ).all()
    return CardPayments([r.event_time for r in rows], [float(r.amount) for r in rows])
