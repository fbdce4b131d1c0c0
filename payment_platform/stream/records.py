"""The records of the card-keyed repartition topic, which the platform owns: payments and watermarks.

A payment record carries a payment already validated against the contract, with where it came from, so
the scorer of its card need not parse JSON again. A watermark record says that the input partition it
names has sent every payment up to an event time (or is idle, at its end): it is written to every
partition of the topic after the payments it covers, so a reader of one partition knows, from that
partition alone, when no earlier payment of any input can still arrive (the watermarks of stream
processors, carried in the stream).
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from payment_platform.stream.validation import Payment

_PAYMENT, _WATERMARK = 1, 0
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list)


class RoutedPayment(NamedTuple):
    """A valid payment and the input message it came from (its key and value, unchanged, for the DLQ
    should it turn out to conflict with another payment of the same transaction_id)."""

    payment: Payment
    source_partition: int
    source_offset: int
    key: bytes | None
    value: bytes | None


class Watermark(NamedTuple):
    """Input partition `partition` has forwarded every payment with an event time before `event_us`, or,
    if idle, every payment it holds."""

    partition: int
    event_us: int
    idle: bool


def encode_payment(routed: RoutedPayment) -> bytes:
    return _encoder.encode((_PAYMENT, *routed.payment, *routed[1:]))


def encode_watermark(watermark: Watermark) -> bytes:
    return _encoder.encode((_WATERMARK, *watermark))


def decode(value: bytes) -> RoutedPayment | Watermark:
    """A record of the repartition topic; raises ValueError on anything else (not ours to read)."""
    try:
        fields = _decoder.decode(value)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a repartition record: {exc}") from None
    if fields and fields[0] == _PAYMENT and len(fields) == 11:
        return RoutedPayment(Payment(*fields[1:7]), *fields[7:])
    if fields and fields[0] == _WATERMARK and len(fields) == 4:
        return Watermark(fields[1], fields[2], bool(fields[3]))
    raise ValueError("not a repartition record")
