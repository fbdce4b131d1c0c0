"""Leases on open review cases: opening a case leases it to the analyst, so that two analysts do not work one card.

A lease lasts LEASE_TTL and is renewed while the case page stays open; another analyst sees the case taken
until it ends. The desk's writes run in `desk_transaction`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from payment_platform.console.tables import case_leases

LEASE_TTL = dt.timedelta(minutes=15)

cl = case_leases.c


class CaseTaken(RuntimeError):
    """Another analyst holds the case's lease."""

    def __init__(self, analyst: str, expires_at: dt.datetime) -> None:
        super().__init__(f"{analyst} has this case open until {expires_at:%H:%M:%S} UTC")
        self.analyst = analyst
        self.expires_at = expires_at


@dataclass(frozen=True)
class Lease:
    analyst: str
    taken_at: dt.datetime
    expires_at: dt.datetime


def live_leases(conn: sa.Connection, customers: Sequence[str], now: dt.datetime) -> dict[str, Lease]:
    if not customers:
        return {}
    rows = conn.execute(sa.select(case_leases).where(cl.customer_id.in_(list(customers)), cl.expires_at > now))
    return {r.customer_id: Lease(r.analyst, r.taken_at, r.expires_at) for r in rows}


@contextlib.contextmanager
def desk_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
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
    with desk_transaction(engine) as conn:
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
    with desk_transaction(engine) as conn:
        conn.execute(case_leases.delete().where(cl.customer_id == customer_id, cl.analyst == analyst))
