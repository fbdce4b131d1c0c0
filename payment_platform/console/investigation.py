"""One card's timeline: its payments with score, status and reasons, and what came back about them.

Everything is read through the (customer_id, event_time) index and bounded by a row limit, so a card with a
long history costs the same as any other. Labels are the current truth (`transaction_labels`) with where it
came from (`label_events`: chargeback, analyst:<name>), and the console's own verdicts (`reviews`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from payment_platform.console.tables import reviews
from payment_platform.store.tables import label_events, scored_transactions, transaction_labels

t = scored_transactions.c
TIMELINE_LIMIT = 500


@dataclass(frozen=True)
class TimelineEntry:
    row_id: int
    transaction_id: str
    terminal_id: str
    amount: float
    currency: str
    event_time: dt.datetime
    scored_at: dt.datetime
    score: float
    status: str
    reasons: str
    model_version: str
    is_fraud: bool | None
    labelled_at: dt.datetime | None
    label_source: str | None
    verdict: str | None  # the latest analyst verdict given in this console, with its analyst
    verdict_by: str | None


def card_timeline(
    conn: sa.Connection,
    customer_id: str,
    *,
    until: dt.datetime | None = None,
    since: dt.datetime | None = None,
    limit: int = TIMELINE_LIMIT,
) -> list[TimelineEntry]:
    """The card's latest payments (newest first), at most `limit`, optionally within [since, until]."""
    lb = transaction_labels.c
    conditions = [t.customer_id == customer_id]
    if until is not None:
        conditions.append(t.event_time <= until)
    if since is not None:
        conditions.append(t.event_time >= since)
    rows = conn.execute(
        sa.select(
            t.id,
            t.transaction_id,
            t.terminal_id,
            t.amount,
            t.currency,
            t.event_time,
            t.scored_at,
            t.score,
            t.status,
            t.reasons,
            t.model_version,
            lb.is_fraud,
            lb.labelled_at,
        )
        .select_from(scored_transactions.outerjoin(transaction_labels, lb.transaction_id == t.transaction_id))
        .where(*conditions)
        .order_by(t.event_time.desc(), t.id.desc())
        .limit(limit)
    ).all()
    ids = [r.transaction_id for r in rows]
    sources = _label_sources(conn, ids)
    verdicts = _verdicts(conn, ids)
    return [
        TimelineEntry(
            row_id=r.id,
            transaction_id=r.transaction_id,
            terminal_id=r.terminal_id,
            amount=float(r.amount),
            currency=r.currency,
            event_time=r.event_time,
            scored_at=r.scored_at,
            score=r.score,
            status=r.status,
            reasons=r.reasons,
            model_version=r.model_version,
            is_fraud=None if r.is_fraud is None else bool(r.is_fraud),
            labelled_at=r.labelled_at,
            label_source=sources.get((r.transaction_id, r.labelled_at)),
            verdict=verdicts.get(r.transaction_id, (None, None))[0],
            verdict_by=verdicts.get(r.transaction_id, (None, None))[1],
        )
        for r in rows
    ]


def _label_sources(conn: sa.Connection, transaction_ids: list[str]) -> dict[tuple[str, dt.datetime], str]:
    """The source of each stored label, keyed by (transaction, labelled_at) to match the label that stands."""
    e = label_events.c
    found: dict[tuple[str, dt.datetime], str] = {}
    for start in range(0, len(transaction_ids), 500):
        chunk = transaction_ids[start : start + 500]
        for r in conn.execute(
            sa.select(e.transaction_id, e.labelled_at, e.source).where(
                e.transaction_id.in_(chunk), e.source.is_not(None)
            )
        ):
            found[(r.transaction_id, r.labelled_at)] = r.source
    return found


def _verdicts(conn: sa.Connection, transaction_ids: list[str]) -> dict[str, tuple[str, str]]:
    v = reviews.c
    found: dict[str, tuple[str, str, dt.datetime]] = {}
    for start in range(0, len(transaction_ids), 500):
        chunk = transaction_ids[start : start + 500]
        for r in conn.execute(
            sa.select(v.transaction_id, v.verdict, v.analyst, v.reviewed_at).where(v.transaction_id.in_(chunk))
        ):
            current = found.get(r.transaction_id)
            if current is None or r.reviewed_at >= current[2]:
                found[r.transaction_id] = (r.verdict, r.analyst, r.reviewed_at)
    return {tx: (verdict, analyst) for tx, (verdict, analyst, _) in found.items()}
