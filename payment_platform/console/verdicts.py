"""Verdicts on a review case: labels out to the broker, audit rows in, the case closed.

A verdict covers the open payments the analyst was shown. In one database transaction it writes one
`reviews` row per payment (the audit trail), closes the items and releases the lease; the labels are sent
to the broker and acknowledged before that transaction commits, so a verdict the broker refused leaves no
trace and the case stays open. (If the commit itself fails after the send, the labels stand without their
audit rows; sending the verdict again repeats the same labels with a later time, which is harmless.)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa

from payment_platform.console.leases import CaseTaken, desk_transaction
from payment_platform.console.review_cases import CASE_ITEMS_LIMIT
from payment_platform.console.tables import case_leases, review_items, reviews
from payment_platform.console.verdict_labels import AnalystLabel, LabelSink

VERDICTS = ("fraud", "genuine")
NOTE_LIMIT = 1_000

ri = review_items.c
cl = case_leases.c


class NothingToReview(RuntimeError):
    """The payments of the verdict are no longer open (someone else gave a verdict first)."""


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
    with desk_transaction(engine) as conn:
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
