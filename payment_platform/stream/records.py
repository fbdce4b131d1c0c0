"""The records of the card-keyed repartition topic, which the platform owns: payments and watermarks.

A payment batch record carries payments of one card-keyed partition (CRC-32 of the card), already
validated against the contract, with where they came from, so the scorer of the cards need not parse
JSON again. A watermark record says that the input partition it names has sent every payment up to an
event time (or is idle, at its end): it is written to every partition of the topic after the payments it
covers, so a reader of one partition knows, from that partition alone, when no earlier payment of any
input can still arrive (the watermarks of stream processors, carried in the stream). Both are msgspec
structs: encoded and decoded in C, as MessagePack arrays whose first element says which one it is.
"""

from __future__ import annotations

import zlib

import msgspec

from payment_platform.stream.validation import Payment


class RoutedPayment(msgspec.Struct, array_like=True, gc=False, tag=1, frozen=True):
    """A valid payment and the input message it came from (its key and value, unchanged, for the DLQ
    should it turn out to conflict with another payment of the same transaction_id)."""

    transaction_id: str
    customer_id: str
    terminal_id: str
    amount: float
    currency: str
    event_us: int  # event time, epoch microseconds UTC
    source_partition: int
    source_offset: int
    key: bytes | None
    value: bytes | None

    @classmethod
    def of(cls, payment: Payment, partition: int, offset: int, key: bytes | None, value: bytes | None) -> RoutedPayment:
        return cls(*payment, partition, offset, key, value)


class PaymentBatch(msgspec.Struct, array_like=True, gc=False, tag=2, frozen=True):
    """Payments of one card-keyed partition, forwarded together: one record instead of one each (a Kafka
    record costs the forwarder about as much to produce as scoring a payment)."""

    payments: list[RoutedPayment]


class Watermark(msgspec.Struct, array_like=True, gc=False, tag=0, frozen=True):
    """Input partition `partition` has forwarded every payment with an event time before `event_us`, or,
    if idle, every payment it holds."""

    partition: int
    event_us: int
    idle: bool


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(PaymentBatch | Watermark)

# Payments a PaymentBatch holds at most: ~150 bytes each, well under the 1 MB a Kafka record may weigh.
MAX_BATCH = 2_000


def encode(record: PaymentBatch | Watermark) -> bytes:
    return _encoder.encode(record)


def shard_of(customer_id: str, shards: int) -> int:
    """The card-keyed partition of a card: a stable hash (CRC-32, computed in C), the same in every process."""
    return zlib.crc32(customer_id.encode("utf-8")) % shards


def decode(value: bytes | None) -> PaymentBatch | Watermark:
    """A record of the repartition topic; raises ValueError on anything else (not ours to read)."""
    try:
        return _decoder.decode(value or b"")
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a repartition record: {exc}") from None
