"""The review desk: REVIEW payments grouped by card into cases, leases on open cases, and verdicts.

A case is a card with REVIEW payments nobody has given a verdict on yet (`console_review_items`, kept by the
rollup), ranked by its riskiest payment. Opening a case leases it to the analyst for LEASE_TTL, renewed
while the page stays open, so that two analysts do not work the same card: the other one sees it taken.

A verdict covers the open payments the analyst was shown. In one database transaction it writes one
`reviews` row per payment (the audit trail), closes the items and releases the lease; the labels are sent
to the broker and acknowledged before that transaction commits, so a verdict the broker refused leaves no
trace and the case stays open. (If the commit itself fails after the send, the labels stand without their
audit rows; sending the verdict again repeats the same labels with a later time, which is harmless.)
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from payment_platform.console.reasons import CARD_CONTEXT_REACH, CardPayments
from payment_platform.console.tables import case_leases, review_items, reviews
from payment_platform.console.verdict_labels import AnalystLabel, LabelSink
from payment_platform.store.tables import scored_transactions

LEASE_TTL = dt.timedelta(minutes=15)
QUEUE_LIMIT = 50
CASE_ITEMS_LIMIT = 100  # open payments shown (and judged) at once in one case
VERDICTS = ("fraud", "genuine")
NOTE_LIMIT = 1_000

t = scored_transactions.c
ri = review_items.c
cl = case_leases.c


class CaseTaken(RuntimeError):
    """Another analyst holds the case's lease."""

    def __init__(self, analyst: str, expires_at: dt.datetime) -> None:
        super().__init__(f"{analyst} has this case open until {expires_at:%H:%M:%S} UTC")
        self.analyst = analyst
        self.expires_at = expires_at


class NothingToReview(RuntimeError):
    """The payments of the verdict are no longer open (someone else gave a verdict first)."""


@dataclass(frozen=True)
class Lease:
    analyst: str
    taken_at: dt.datetime
    expires_at: dt.datetime


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
    leases = _leases(conn, [r.customer_id for r in rows], now)
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


def _leases(conn: sa.Connection, customers: Sequence[str], now: dt.datetime) -> dict[str, Lease]:
    if not customers:
        return {}
    rows = conn.execute(sa.select(case_leases).where(cl.customer_id.in_(list(customers)), cl.expires_at > now))
    return {r.customer_id: Lease(r.analyst, r.taken_at, r.expires_at) for r in rows}


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
    lease = _leases(conn, [customer_id], now).get(customer_id)
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


@contextlib.contextmanager
def _desk_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A write transaction at READ COMMITTED on MySQL/MariaDB: locks on the rows touched, no gap locks, so two
    analysts taking the same new case meet on the primary key instead of deadlocking."""
    with engine.connect() as conn:
        if engine.dialect.name != "sqlite":
            conn = conn.execution_options(isolation_level="READ COMMITTED")
        with conn.begin():
            yield conn


def take_case(engine: sa.Engine, customer_id: str, analyst: str, now: dt.datetime) -> Lease:
    """Lease the case to the analyst (or renew their lease). Raises CaseTaken if someone else holds it."""
    expires = now + LEASE_TTL
    mine_or_free = sa.or_(cl.analyst == analyst, cl.expires_at <= now)
    with _desk_transaction(engine) as conn:
        # taken_at first: MySQL evaluates SET left to right, and it must see the previous holder.
        renewed = conn.execute(
            case_leases.update()
            .where(cl.customer_id == customer_id, mine_or_free)
            .ordered_values(
                ("taken_at", sa.case((sa.and_(cl.analyst == analyst, cl.expires_at > now), cl.taken_at), else_=now)),
                ("analyst", analyst),
                ("expires_at", expires),
            )
        )
        if renewed.rowcount == 0:
            try:
                with conn.begin_nested():
                    conn.execute(
                        case_leases.insert().values(
                            customer_id=customer_id, analyst=analyst, taken_at=now, expires_at=expires
                        )
                    )
            except sa.exc.IntegrityError:
                holder = conn.execute(sa.select(case_leases).where(cl.customer_id == customer_id)).one()
                raise CaseTaken(holder.analyst, holder.expires_at) from None
        lease = conn.execute(sa.select(case_leases).where(cl.customer_id == customer_id)).one()
    return Lease(lease.analyst, lease.taken_at, lease.expires_at)


def release_case(engine: sa.Engine, customer_id: str, analyst: str) -> None:
    """Give the case back (only the lease holder's own lease is removed)."""
    with _desk_transaction(engine) as conn:
        conn.execute(case_leases.delete().where(cl.customer_id == customer_id, cl.analyst == analyst))


def record_verdict(
    engine: sa.Engine,
    labels: LabelSink,
    *,
    customer_id: str,
    analyst: str,
    verdict: str,
    note: str,
    transaction_ids: Sequence[str],
    now: dt.datetime,
) -> int:
    """Judge the listed open payments of the case: labels out, audit rows in, case closed; the payments judged.

    Raises CaseTaken when another analyst holds the lease, NothingToReview when none of the payments is
    still open, ValueError on a bad verdict, and the sink's error when the broker does not take the labels.
    """
    if verdict not in VERDICTS:
        raise ValueError(f"a verdict is one of {', '.join(VERDICTS)}")
    note = note.strip()[:NOTE_LIMIT]
    wanted = list(dict.fromkeys(transaction_ids))[:CASE_ITEMS_LIMIT]
    with _desk_transaction(engine) as conn:
        lease = conn.execute(sa.select(case_leases).where(cl.customer_id == customer_id).with_for_update()).first()
        if lease is not None and lease.analyst != analyst and lease.expires_at > now:
            raise CaseTaken(lease.analyst, lease.expires_at)
        open_items = (
            conn.execute(
                sa.select(ri.transaction_id)
                .where(ri.customer_id == customer_id, ri.reviewed.is_(False), ri.transaction_id.in_(wanted))
                .with_for_update()
            )
            .scalars()
            .all()
            if wanted
            else []
        )
        if not open_items:
            raise NothingToReview("these payments already have a verdict")
        conn.execute(
            reviews.insert(),
            [
                {
                    "customer_id": customer_id,
                    "transaction_id": tx,
                    "analyst": analyst,
                    "verdict": verdict,
                    "note": note,
                    "reviewed_at": now,
                }
                for tx in open_items
            ],
        )
        conn.execute(review_items.update().where(ri.transaction_id.in_(open_items)).values(reviewed=True))
        conn.execute(case_leases.delete().where(cl.customer_id == customer_id))
        labels.publish([AnalystLabel(tx, verdict == "fraud", now, analyst) for tx in open_items])
    return len(open_items)
