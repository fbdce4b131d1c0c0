"""Ids skipped below the rollup's cursor, kept as pending gaps until they fill or grow too old.

Auto-increment ids are handed out when a write starts and become visible when it commits, so with several
scorer processes a lower id can appear after a higher one was folded. Each step records the ids it skipped,
re-reads the pending ranges for rows that appeared in them, and gives a gap up once it is older than the
grace period (a gap that never fills was an id the bulk load skipped: a duplicate payment).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from payment_platform.console.tables import rollup_gaps
from payment_platform.store.tables import scored_transactions

logger = logging.getLogger(__name__)

MAX_PENDING_GAPS = 2_000  # beyond this the oldest gaps are given up (each costs a range read per step)

t = scored_transactions.c


@dataclass(frozen=True)
class Gap:
    first_id: int
    last_id: int
    seen_at: dt.datetime
    next_scored_at: dt.datetime


def load_gaps(conn: sa.Connection) -> list[Gap]:
    g = rollup_gaps.c
    rows = conn.execute(sa.select(g.first_id, g.last_id, g.seen_at, g.next_scored_at).order_by(g.first_id))
    return [Gap(r.first_id, r.last_id, r.seen_at, r.next_scored_at) for r in rows]


def filled_ids(conn: sa.Connection, gaps: Sequence[Gap]) -> list[int]:
    """Ids of rows that appeared in pending gaps since they were recorded."""
    filled: list[int] = []
    for start in range(0, len(gaps), 200):
        ranges = [t.id.between(g.first_id, g.last_id) for g in gaps[start : start + 200]]
        filled.extend(conn.execute(sa.select(t.id).where(sa.or_(*ranges)).order_by(t.id)).scalars())
    return filled


def save_gaps(
    conn: sa.Connection,
    gaps: Sequence[Gap],
    filled: Sequence[int],
    ids: Sequence[int],
    last_id: int,
    now: dt.datetime,
    grace: dt.timedelta,
) -> None:
    """Keep the pending gaps that are still empty and younger than `grace`, and add those `ids` skipped."""
    kept: list[Gap] = []
    filled_sorted = sorted(filled)
    for gap in gaps:
        if now - gap.seen_at > grace:
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
