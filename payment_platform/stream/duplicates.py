"""One decision per transaction_id, whatever was delivered twice.

A transaction seen again is scored once (CONTRACTS §1). With the same content it is a replay (a producer's
retry, the uncommitted tail read again after a restart): its stored decision is sent again, identical. With
different content it is a conflict: the one decided first stands, the other goes to the DLQ. Within a
released batch "first" is by event time, then by the smallest digest of the message, so the same stream
decides the same way however it was read; across batches, earlier batches hold earlier event times.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from payment_platform.store.stream_state import StoredPayment
from payment_platform.stream.event_time import Buffered
from payment_platform.stream.records import RoutedPayment

Content = tuple[str, str, int, str, int]  # customer_id, terminal_id, amount in cents, currency, event time


def content_of(payment: RoutedPayment) -> Content:
    return (
        payment.customer_id,
        payment.terminal_id,
        round(payment.amount * 100),  # as amount_cents: halves to even, like numpy's rint
        payment.currency,
        payment.event_us,
    )


def stored_content(row: StoredPayment) -> Content:
    return (row.customer_id, row.terminal_id, row.amount_cents, row.currency, row.event_us)


@dataclass
class Deduplicated:
    fresh: list[tuple[int, Buffered]] = field(default_factory=list)  # (shard, payment) to score
    replays: list[tuple[str, StoredPayment]] = field(default_factory=list)  # stored already: send again
    repeats: int = 0  # the same content again, in this batch or the one being written
    conflicts: list[Buffered] = field(default_factory=list)  # to the DLQ


def deduplicate(
    released: list[tuple[int, Buffered]],
    in_flight: dict[str, RoutedPayment],
    lookup: Callable[[Collection[str]], dict[str, StoredPayment]],
) -> Deduplicated:
    """Split a released batch into payments to score, replays of stored ones, and conflicts."""
    out = Deduplicated()
    chosen = {entry[1][0].transaction_id: entry for entry in released}
    if len(chosen) < len(released):  # the same transaction twice in the batch: decide which stands
        chosen = _first_of_each(released, out)
    candidates = []
    for tx, (shard, entry) in chosen.items():
        writing = in_flight.get(tx)
        if writing is None:
            candidates.append((shard, entry))
        elif content_of(writing) == content_of(entry[0]):
            out.repeats += 1
        else:
            out.conflicts.append(entry)
    stored = lookup([entry[0].transaction_id for _, entry in candidates]) if candidates else {}
    if not stored:
        out.fresh = candidates
        return out
    for shard, entry in candidates:
        payment = entry[0]
        row = stored.get(payment.transaction_id)
        if row is None:
            out.fresh.append((shard, entry))
        elif stored_content(row) == content_of(payment):
            out.replays.append((payment.transaction_id, row))
        else:
            out.conflicts.append(entry)
    return out


def _first_of_each(released: list[tuple[int, Buffered]], out: Deduplicated) -> dict[str, tuple[int, Buffered]]:
    chosen: dict[str, tuple[int, Buffered]] = {}
    for shard, entry in sorted(released, key=lambda item: item[1][0].event_us):
        tx = entry[0].transaction_id
        first = chosen.get(tx)
        if first is None:
            chosen[tx] = (shard, entry)
        elif content_of(first[1][0]) == content_of(entry[0]):
            out.repeats += 1
        elif _order(entry) < _order(first[1]):  # the same event time: the smaller digest is first
            out.conflicts.append(first[1])
            chosen[tx] = (shard, entry)
        else:
            out.conflicts.append(entry)
    return chosen


def _order(entry: Buffered) -> tuple[int, bytes]:
    """Which of two payments of one transaction_id is decided first: the earlier, then the smaller digest."""
    return entry[0].event_us, hashlib.blake2b(entry[0].value or b"", digest_size=16).digest()
