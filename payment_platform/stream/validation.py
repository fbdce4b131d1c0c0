"""Validation of payment and label messages against the contract (CONTRACTS §1).

Each function returns either the parsed value or a one-line reason that says which rule was broken;
the reason travels to the DLQ in the `error` header. Parsing is per message and feeds column lists, so
the rest of the pipeline works on whole batches.

A payment of the usual shape is decoded and type-checked in C by msgspec (~1 µs, a third of the general
path); anything that fast path does not accept outright goes through the general path, which alone
words the reasons, so a message gets the same verdict and the same reason whichever path saw it first.

A value larger than MAX_MESSAGE_BYTES is refused before either path parses it; how a value of any
shape or depth becomes a dict of members is `json_document`'s work.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, NamedTuple, TypeVar

import msgspec

from payment_platform.stream.json_document import (
    MAX_ID_LENGTH,
    MAX_MESSAGE_BYTES,
    InvalidMessage,
    decode_object,
    exact_integer,
)

MAX_AMOUNT = 1_000_000.0
DEFAULT_TERMINAL = "unknown"
DEFAULT_CURRENCY = "EUR"
EARLIEST_EVENT_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z
MAX_FUTURE_US = 24 * 3600 * 1_000_000  # 24 h ahead of the scorer's clock
_CURRENCY = re.compile(r"[A-Z]{3}")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class Payment(NamedTuple):
    """A valid payment (a named tuple: three times cheaper to make than a frozen dataclass, per message)."""

    transaction_id: str
    customer_id: str
    terminal_id: str
    amount: float
    currency: str
    event_us: int  # event time, epoch microseconds UTC


@dataclass(frozen=True, slots=True)
class Label:
    transaction_id: str
    is_fraud: bool
    labelled_us: int
    source: str | None = None  # e.g. "chargeback", "analyst:<name>"


def _identifier(document: dict[str, object], field: str, *, integer_from: bytes | None = None) -> str:
    """A 1-64 character id; given the message bytes `integer_from`, a JSON integer is its decimal string."""
    value = document.get(field)
    if value is None:
        raise InvalidMessage(f"{field} is required")
    if integer_from is not None:
        if isinstance(value, float):
            value = exact_integer(integer_from, field)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
    if not isinstance(value, str):
        kinds = "a string or an integer" if integer_from is not None else "a string"
        raise InvalidMessage(f"{field} must be {kinds}, got {type(value).__name__}")
    if not 1 <= len(value) <= MAX_ID_LENGTH:
        raise InvalidMessage(f"{field} must have 1-{MAX_ID_LENGTH} characters, got {len(value)}")
    return value


def _epoch_us(value: object, field: str, now_us: int) -> int:
    """An event time as epoch microseconds: ISO-8601 with an offset, or epoch seconds."""
    if isinstance(value, bool):
        raise InvalidMessage(f"{field} must be an ISO-8601 string or epoch seconds, got bool")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise InvalidMessage(f"{field} must be finite")
        if abs(value) > 1e11:  # beyond year 5138: certainly not epoch seconds
            raise InvalidMessage(f"{field} is out of range: {value!r}")
        event_us = round(value * 1_000_000)
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise InvalidMessage(f"{field} is not ISO-8601: {value[:40]!r}") from None
        if parsed.tzinfo is None:
            raise InvalidMessage(f"{field} needs a UTC offset or Z: {value[:40]!r}")
        return _datetime_us(parsed, field, now_us)
    else:
        raise InvalidMessage(f"{field} must be an ISO-8601 string or epoch seconds, got {type(value).__name__}")
    return _in_range(event_us, field, now_us)


def _datetime_us(value: dt.datetime, field: str, now_us: int) -> int:
    """An aware datetime as epoch microseconds, in range."""
    delta = value - _EPOCH
    return _in_range((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds, field, now_us)


def _in_range(event_us: int, field: str, now_us: int) -> int:
    if event_us < EARLIEST_EVENT_US:
        raise InvalidMessage(f"{field} is before 2000-01-01")
    if event_us > now_us + MAX_FUTURE_US:
        raise InvalidMessage(f"{field} is more than 24 h in the future")
    return event_us


_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]


class _UsualPayment(msgspec.Struct):
    """A payment of the usual shape, as msgspec decodes and type-checks it."""

    transaction_id: _Id | int
    customer_id: _Id
    amount: Annotated[float, msgspec.Meta(ge=0, le=MAX_AMOUNT)]
    terminal_id: _Id | None = None
    currency: str | None = None
    timestamp: dt.datetime | float | None = None


_USUAL_PAYMENT = msgspec.json.Decoder(_UsualPayment)
U = TypeVar("U")
V = TypeVar("V")


def _parse(
    value: bytes | None,
    record_us: int,
    now_us: int,
    fast: msgspec.json.Decoder[U],
    accept: Callable[[U, int, int], V | None],
    general: Callable[[bytes | None, int, int], V],
) -> V:
    """The fast path's value when it accepts the message outright; else the general path's value or reason."""
    if value is not None and len(value) <= MAX_MESSAGE_BYTES:
        try:
            usual = fast.decode(value)
        except (msgspec.MsgspecError, ValueError, RecursionError):  # the general path says what is wrong
            pass
        else:
            accepted = accept(usual, record_us, now_us)
            if accepted is not None:
                return accepted
    return general(value, record_us, now_us)


def parse_payment(value: bytes | None, record_us: int, now_us: int) -> Payment:
    """The payment in a `payments` message; `record_us` is the Kafka record timestamp."""
    return _parse(value, record_us, now_us, _USUAL_PAYMENT, _accept_usual, _parse_any_payment)


def _accept_usual(usual: _UsualPayment, record_us: int, now_us: int) -> Payment | None:
    """The payment if it passes every rule of `_parse_any_payment`; None leaves the verdict to it."""
    transaction_id = usual.transaction_id
    if isinstance(transaction_id, int):
        transaction_id = str(transaction_id)
        if len(transaction_id) > MAX_ID_LENGTH:
            return None
    currency = DEFAULT_CURRENCY if usual.currency is None else usual.currency
    timestamp = usual.timestamp
    if not _CURRENCY.fullmatch(currency) or (isinstance(timestamp, dt.datetime) and timestamp.tzinfo is None):
        return None
    try:
        if isinstance(timestamp, dt.datetime):
            event_us = _datetime_us(timestamp, "timestamp", now_us)
        else:
            event_us = _epoch_us(record_us / 1e6 if timestamp is None else timestamp, "timestamp", now_us)
    except InvalidMessage:
        return None
    terminal_id = DEFAULT_TERMINAL if usual.terminal_id is None else usual.terminal_id
    return Payment(transaction_id, usual.customer_id, terminal_id, usual.amount, currency, event_us)


def _parse_any_payment(value: bytes | None, record_us: int, now_us: int) -> Payment:
    """The general path: any message, with a reason for each rule it breaks."""
    document = decode_object(value, "payment")
    transaction_id = _identifier(document, "transaction_id", integer_from=value)
    customer_id = _identifier(document, "customer_id")

    amount = document.get("amount")
    if amount is None:
        raise InvalidMessage("amount is required")
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        raise InvalidMessage(f"amount must be a JSON number, got {type(amount).__name__}")
    amount = float(amount)
    if not math.isfinite(amount):
        raise InvalidMessage("amount must be finite")
    if not 0 <= amount <= MAX_AMOUNT:  # zero: a card check, which card testers use
        raise InvalidMessage(f"amount must be >= 0 and <= {MAX_AMOUNT:,.0f}, got {amount!r}")

    terminal_id = DEFAULT_TERMINAL if document.get("terminal_id") is None else _identifier(document, "terminal_id")

    currency = document.get("currency")
    if currency is None:
        currency = DEFAULT_CURRENCY
    elif not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise InvalidMessage(f"currency must be 3 upper-case letters, got {str(currency)[:20]!r}")

    timestamp = document.get("timestamp")
    event_us = _epoch_us(record_us / 1e6 if timestamp is None else timestamp, "timestamp", now_us)
    return Payment(transaction_id, customer_id, terminal_id, amount, currency, event_us)


class _UsualLabel(msgspec.Struct):
    """A label of the usual shape, as msgspec decodes and type-checks it."""

    transaction_id: _Id | int
    is_fraud: bool | int
    labelled_at: dt.datetime | float | None = None
    source: _Id | None = None


_USUAL_LABEL = msgspec.json.Decoder(_UsualLabel)


def parse_label(value: bytes | None, record_us: int, now_us: int) -> Label:
    """The label in a `payment-labels` message; `record_us` is the Kafka record timestamp."""
    return _parse(value, record_us, now_us, _USUAL_LABEL, _accept_usual_label, _parse_any_label)


def _accept_usual_label(usual: _UsualLabel, record_us: int, now_us: int) -> Label | None:
    """The label if it passes every rule of `_parse_any_label`; None leaves the verdict to it."""
    transaction_id = usual.transaction_id
    if isinstance(transaction_id, int):
        transaction_id = str(transaction_id)
        if len(transaction_id) > MAX_ID_LENGTH:
            return None
    flag = usual.is_fraud
    if not isinstance(flag, bool) and flag not in (0, 1):
        return None
    at = usual.labelled_at
    if isinstance(at, dt.datetime) and at.tzinfo is None:
        return None
    try:
        if isinstance(at, dt.datetime):
            labelled_us = _datetime_us(at, "labelled_at", now_us)
        else:
            labelled_us = _epoch_us(record_us / 1e6 if at is None else at, "labelled_at", now_us)
    except InvalidMessage:
        return None
    return Label(transaction_id, bool(flag), labelled_us, usual.source)


def _parse_any_label(value: bytes | None, record_us: int, now_us: int) -> Label:
    """The general path: any message, with a reason for each rule it breaks."""
    document = decode_object(value, "label")
    transaction_id = _identifier(document, "transaction_id", integer_from=value)
    is_fraud = document.get("is_fraud")
    if is_fraud is None:
        raise InvalidMessage("is_fraud is required")
    if isinstance(is_fraud, bool):
        flag = is_fraud
    elif isinstance(is_fraud, int) and is_fraud in (0, 1):
        flag = bool(is_fraud)
    else:
        raise InvalidMessage(f"is_fraud must be true, false, 0 or 1, got {str(is_fraud)[:20]!r}")
    labelled_at = document.get("labelled_at")
    labelled_us = _epoch_us(record_us / 1e6 if labelled_at is None else labelled_at, "labelled_at", now_us)
    source = None if document.get("source") is None else _identifier(document, "source")
    return Label(transaction_id, flag, labelled_us, source)
