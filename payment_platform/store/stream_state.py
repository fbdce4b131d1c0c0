"""What the scorer reads back from the score store: payments already decided, the recent payments of the
cards it is given, and how far every scorer of its group has written.

Everything a scorer holds in memory is made of rows of the store (offsets are committed only after the
write), so a scorer that starts, restarts or takes over partitions rebuilds it from here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from payment_platform.store import driver
from payment_platform.store.driver import uses_pymysql
from payment_platform.store.event_time import EpochMicros, datetime_of
from payment_platform.store.rows import Progress
from payment_platform.store.tables import label_events, scored_transactions, stream_progress

_CHUNK = 5_000


@dataclass(frozen=True)
class StoredPayment:
    """A stored row: enough to tell a duplicate from a conflict, and to publish its decision again."""

    customer_id: str
    terminal_id: str
    amount_cents: int
    currency: str
    event_us: int
    score: float
    status: str
    reasons: str
    model_version: str
    scored_at: dt.datetime
    shard: int | None


_STORED_SQL = (
    "SELECT transaction_id, customer_id, terminal_id, amount, currency, "
    "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', event_time), score, status, reasons, model_version, "
    "scored_at, shard FROM scored_transactions WHERE transaction_id IN %s"
)


def stored_payments(engine: sa.Engine, transaction_ids: Collection[str]) -> dict[str, StoredPayment]:
    """The stored rows of those of these transactions that have one."""
    t = scored_transactions.c
    ids = sorted(set(transaction_ids))
    found: dict[str, StoredPayment] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        if uses_pymysql(engine):
            rows: Iterable[Sequence[Any]] = driver.rows(engine, _STORED_SQL, (chunk,))
        else:
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.select(
                        t.transaction_id,
                        t.customer_id,
                        t.terminal_id,
                        t.amount,
                        t.currency,
                        EpochMicros(t.event_time),
                        t.score,
                        t.status,
                        t.reasons,
                        t.model_version,
                        t.scored_at,
                        t.shard,
                    ).where(t.transaction_id.in_(chunk))
                ).all()
        for tx, card, terminal, amount, currency, event_us, *decided in rows:
            found[tx] = StoredPayment(card, terminal, round(amount * 100), currency, int(event_us), *decided)
    return found


@dataclass(frozen=True)
class CardHistory:
    """Payments of some cards: card, time (epoch ms) and amount (cents), in event-time order."""

    cards: list[str]
    t_ms: np.ndarray
    cents: np.ndarray


def card_history(engine: sa.Engine, shard: int, since_us: int) -> CardHistory:
    """The stored payments of a card-keyed partition with an event time after since_us."""
    t = scored_transactions.c
    query = (
        sa.select(t.customer_id, EpochMicros(t.event_time), t.amount)
        .where(t.shard == shard, t.event_time > datetime_of(since_us))
        .order_by(t.event_time)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    if not rows:
        return CardHistory([], np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))
    cards, event_us, amount = zip(*rows, strict=True)
    return CardHistory(
        list(cards),
        np.array(event_us, dtype=np.int64) // 1_000,
        np.rint(np.array(amount, dtype=np.float64) * 100).astype(np.int64),
    )


def newest_event_us(engine: sa.Engine, shard: int) -> int | None:
    """The latest event time stored for a card-keyed partition."""
    t = scored_transactions.c
    with engine.connect() as conn:
        latest = conn.execute(sa.select(EpochMicros(sa.func.max(t.event_time))).where(t.shard == shard)).scalar()
    return None if latest is None else int(latest)


def read_progress(engine: sa.Engine, consumer_group: str) -> Progress:
    """How far each partition of the group's streams is written (stream_progress)."""
    p = stream_progress.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(p.topic, p.partition, p.progress_us).where(p.consumer_group == consumer_group)
        ).all()
    return {(topic, partition): int(us) for topic, partition, us in rows}


def orphan_labels(engine: sa.Engine, since: dt.datetime, until: dt.datetime) -> int:
    """Transactions labelled with a labelled_at in [since, until) whose payment is not in the store: labels
    whose payment never came (or has not come yet). They cost the scorer nothing (it keeps no label in
    memory for a payment it has not seen); this is how operators see them."""
    le, t = label_events.c, scored_transactions.c
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count(sa.distinct(le.transaction_id))).where(
                    le.labelled_at >= since,
                    le.labelled_at < until,
                    ~sa.select(sa.literal(1)).where(t.transaction_id == le.transaction_id).exists(),
                )
            ).scalar()
            or 0
        )
