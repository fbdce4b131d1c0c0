"""From consumed messages to what the scorer works with: valid payments and labels, or dead letters.

Every invalid message becomes a `DeadLetter`: the original key and value, unchanged, with headers saying
which rule it broke and where it came from (CONTRACTS §1). Payments whose Kafka key is not their
customer_id are counted: the platform scores them the same (it repartitions by card), but a producer
that keys by card saves it a hop, and the count tells operators which one does not.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from confluent_kafka import Message

from payment_platform.kafka.delivery import Header
from payment_platform.kafka.messages import position
from payment_platform.stream.records import RoutedPayment
from payment_platform.stream.validation import InvalidMessage, Label, parse_label, parse_payment


class DeadLetter(NamedTuple):
    """A message that breaks the contract, as it goes to the DLQ."""

    key: bytes | None
    value: bytes | None
    headers: list[Header]


CONFLICT = "duplicate transaction_id with different content"


def dead_letter(message: Message, reason: str) -> DeadLetter:
    return _letter(message.key(), message.value(), reason, *position(message))


def routed_dead_letter(routed: RoutedPayment, topic: str, reason: str) -> DeadLetter:
    """The dead letter of a valid payment refused later (a conflicting duplicate), from its original message."""
    return _letter(routed.key, routed.value, reason, topic, routed.source_partition, routed.source_offset)


def _letter(key: bytes | None, value: bytes | None, reason: str, topic: str, partition: int, offset: int) -> DeadLetter:
    return DeadLetter(
        key,
        value,
        [
            ("error", reason.encode("utf-8", "replace")),
            ("source.topic", topic.encode()),
            ("source.partition", str(partition).encode()),
            ("source.offset", str(offset).encode()),
        ],
    )


def now_us() -> int:
    return time.time_ns() // 1_000


def payment_of(message: Message, partition: int, offset: int, now: int) -> RoutedPayment | DeadLetter:
    """The payment of a `payments` message (consumed at `partition` and `offset`), or its dead letter."""
    try:
        payment = parse_payment(message.value(), message.timestamp()[1] * 1_000, now)
    except InvalidMessage as exc:
        return dead_letter(message, str(exc))
    return RoutedPayment.of(payment, partition, offset, message.key(), message.value())


def label_of(message: Message, now: int) -> Label | DeadLetter:
    """The label of a `payment-labels` message, or its dead letter."""
    try:
        return parse_label(message.value(), message.timestamp()[1] * 1_000, now)
    except InvalidMessage as exc:
        return dead_letter(message, str(exc))


def keyed_by_card(message: Message, payment: RoutedPayment) -> bool:
    """Whether the producer keyed the payment by its customer_id, as CONTRACTS §1 asks."""
    key = message.key()
    return key is not None and key == payment.customer_id.encode("utf-8")
