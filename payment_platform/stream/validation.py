"""Validation of payment and label messages against the contract (CONTRACTS §1).

Each function returns either the parsed value or a one-line reason that says which rule was broken;
the reason travels to the DLQ in the `error` header. Parsing is per message and feeds column lists, so
the rest of the pipeline works on whole batches.

A payment of the usual shape is decoded and type-checked in C by msgspec (~1 µs, a third of the general
path); anything that fast path does not accept outright goes through the general path, which alone
words the reasons, so a message gets the same verdict and the same reason whichever path saw it first.

A value larger than MAX_MESSAGE_BYTES is refused before it is parsed: a payment is ~200 bytes, and
a multi-megabyte value (which Kafka clients refuse to produce above `message.max.bytes`, ~1 MB by
default, but a permissive broker may still deliver) must cost the scorer no parsing time.

Both decoders stop at a nesting depth (orjson at 1,024 levels, msgspec sooner), but a field the contract
ignores may be nested deeper and the payment is still valid. Such a document is read by an iterative
scanner (no recursion, memory in proportion to the depth) that checks it is JSON and keeps only the
top-level members. It is pure Python (~0.4 µs a byte), so it reads at most MAX_DEEP_BYTES; a deeper,
larger document is refused with that reason.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass
from typing import Annotated, NamedTuple, cast

import msgspec
import orjson

MAX_ID_LENGTH = 64
MAX_MESSAGE_BYTES = 1024 * 1024  # Apache Kafka's default message size limit: larger is not a payment
MAX_DECODER_DEPTH = 1024  # orjson's nesting limit
MAX_DEEP_BYTES = 64 * 1024  # ~25 ms for the scanner at worst; a payment is ~200 bytes
MAX_AMOUNT = 1_000_000.0
DEFAULT_TERMINAL = "unknown"
DEFAULT_CURRENCY = "EUR"
EARLIEST_EVENT_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z
MAX_FUTURE_US = 24 * 3600 * 1_000_000  # 24 h ahead of the scorer's clock
_CURRENCY = re.compile(r"[A-Z]{3}")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class InvalidMessage(ValueError):
    """A message that breaks the contract; its text is the DLQ reason."""


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


class _IntegerToken(str):
    """The text of a JSON integer, as written: orjson turns integers beyond 64 bits into floats."""


def _decode_object(value: bytes | None, what: str) -> dict[str, object]:
    if value is None:
        raise InvalidMessage(f"{what} has no value")
    if len(value) > MAX_MESSAGE_BYTES:
        raise InvalidMessage(f"{what} value too large: {len(value):,} bytes, at most {MAX_MESSAGE_BYTES:,}")
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        if _too_deep(exc):
            return _decode_deep_object(value, what)
        raise _json_error(exc, what) from None
    if not isinstance(document, dict):
        raise InvalidMessage(f"{what} must be a JSON object, got {type(document).__name__}")
    return document


def _too_deep(exc: orjson.JSONDecodeError) -> bool:
    return str(exc).startswith("depth limit exceeded")


def _json_error(exc: orjson.JSONDecodeError, what: str) -> InvalidMessage:
    detail = str(exc).splitlines()[0][:120]
    if "number is infinity" in detail:  # valid JSON, but no double holds it (e.g. a 400-digit integer)
        return InvalidMessage(f"{what} has a number beyond the range of a double: {detail}")
    return InvalidMessage(f"{what} is not valid UTF-8 JSON: {detail}")


def _decode_deep_object(value: bytes, what: str) -> dict[str, object]:
    """A document nested deeper than the decoders go: its top-level members, with the verdict orjson would give.

    Members are decoded by orjson one by one; one still too deep becomes an empty container of its
    kind, which is all the rules can ask of it (an ignored field, or a type error on a contract field).
    """
    if len(value) > MAX_DEEP_BYTES:
        raise InvalidMessage(
            f"{what} is nested deeper than {MAX_DECODER_DEPTH:,} levels and larger than {MAX_DEEP_BYTES:,} "
            f"bytes ({len(value):,}): too costly to read"
        )
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMessage(f"{what} is not valid UTF-8 JSON: {exc.reason} at byte {exc.start}") from None
    document: dict[str, object] = {}
    for key, member in _top_level_members(value, what):
        try:
            document[orjson.loads(key)] = orjson.loads(member)
        except orjson.JSONDecodeError as exc:
            if not _too_deep(exc):
                raise _json_error(exc, what) from None
            document[orjson.loads(key)] = [] if member.startswith(b"[") else {}
    return document


_JSON_TOKEN = re.compile(
    rb"[ \t\n\r]*(?:(?P<open>[\[{])|(?P<close>[\]}])|(?P<colon>:)|(?P<comma>,)"
    rb'|(?P<string>"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*")'
    rb"|(?P<number>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)"
    rb"|(?P<literal>true|false|null))"
)
_VALUE, _FIRST_ITEM, _FIRST_KEY, _KEY, _COLON, _AFTER_VALUE = range(6)
_MAY_CLOSE = (_AFTER_VALUE, _FIRST_ITEM, _FIRST_KEY)  # the closer must match the open container
_OPENER_OF = {ord("]"): ord("["), ord("}"): ord("{")}


def _top_level_members(value: bytes, what: str) -> list[tuple[bytes, bytes]]:
    """(key token, value bytes) of each top-level member in order, once the whole document is checked to be JSON.

    A state machine over regex tokens with an explicit stack of open containers: no recursion, however
    deep. Strings and numbers are checked as orjson checks them (escaped surrogates, doubles' range),
    so a document gets the verdict it would get if it were shallow. Raises InvalidMessage.
    """
    stack = bytearray()
    members: list[tuple[bytes, bytes]] = []
    state, position, key, start = _VALUE, 0, b"", 0
    while token := _JSON_TOKEN.match(value, position):
        kind = cast(str, token.lastgroup)  # every alternative of the pattern is a named group
        begin, position = token.start(kind), token.end()
        depth = len(stack)
        if state == _AFTER_VALUE and kind == "comma" and depth:
            state = _KEY if stack[-1] == ord("{") else _VALUE
        elif kind == "close" and depth and _OPENER_OF[value[begin]] == stack[-1] and state in _MAY_CLOSE:
            stack.pop()
            state = _AFTER_VALUE
            if depth == 2:
                members.append((key, value[start:position]))
        elif state in (_FIRST_KEY, _KEY) and kind == "string":
            _check_scalar(token.group(kind), kind, what)
            key = token.group(kind) if depth == 1 else key
            state = _COLON
        elif state == _COLON and kind == "colon":
            state = _VALUE
        elif state in (_VALUE, _FIRST_ITEM) and kind == "open":
            start = begin if depth == 1 else start
            stack.append(value[begin])
            state = _FIRST_KEY if value[begin] == ord("{") else _FIRST_ITEM
        elif state in (_VALUE, _FIRST_ITEM) and kind in ("string", "number", "literal") and depth:
            _check_scalar(token.group(kind), kind, what)
            if depth == 1:
                members.append((key, value[begin:position]))
            state = _AFTER_VALUE
        else:
            raise InvalidMessage(f"{what} is not valid UTF-8 JSON: unexpected {kind} at byte {begin}")
    if stack or state != _AFTER_VALUE or value[position:].strip(b" \t\n\r"):
        raise InvalidMessage(f"{what} is not valid UTF-8 JSON: unexpected character or end at byte {position}")
    if not value.lstrip(b" \t\n\r").startswith(b"{"):  # valid, and deep: an array
        raise InvalidMessage(f"{what} must be a JSON object, got list")
    return members


def _check_scalar(token: bytes, kind: str | None, what: str) -> None:
    """What orjson refuses in a well-formed token: lone escaped surrogates, numbers beyond a double."""
    if (kind == "string" and b"\\u" in token) or (kind == "number" and (len(token) > 300 or b"e" in token.lower())):
        try:
            orjson.loads(token)
        except orjson.JSONDecodeError as exc:
            raise _json_error(exc, what) from None


def _exact_integer(value: bytes, field: str) -> object:
    """The field re-read with every JSON integer kept as its text; only after orjson gave a float."""
    try:
        document = json.loads(value, parse_int=_IntegerToken)
    except RecursionError:  # nested deeper than Python's json goes: read the field's own text
        if len(value) > MAX_DEEP_BYTES:
            raise InvalidMessage(f"{field} cannot be read: the message is nested too deeply") from None
        members = {orjson.loads(key): member for key, member in _top_level_members(value, field)}
        member = members.get(field)
        document = {} if member is None else {field: json.loads(member, parse_int=_IntegerToken)}
    token = document.get(field)
    if not isinstance(token, _IntegerToken):
        return token
    if len(token.lstrip("-")) > MAX_ID_LENGTH:
        raise InvalidMessage(f"{field} must have 1-{MAX_ID_LENGTH} characters, got {len(token)}")
    return int(token)


def _identifier(document: dict[str, object], field: str, *, integer_from: bytes | None = None) -> str:
    """A 1-64 character id; given the message bytes `integer_from`, a JSON integer is its decimal string."""
    value = document.get(field)
    if value is None:
        raise InvalidMessage(f"{field} is required")
    if integer_from is not None:
        if isinstance(value, float):
            value = _exact_integer(integer_from, field)
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


def parse_payment(value: bytes | None, record_us: int, now_us: int) -> Payment:
    """The payment in a `payments` message; `record_us` is the Kafka record timestamp."""
    if value is not None and len(value) <= MAX_MESSAGE_BYTES:
        try:
            usual = _USUAL_PAYMENT.decode(value)
        except (msgspec.MsgspecError, ValueError, RecursionError):  # the general path says what is wrong
            pass
        else:
            payment = _accept_usual(usual, record_us, now_us)
            if payment is not None:
                return payment
    return _parse_any_payment(value, record_us, now_us)


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
    document = _decode_object(value, "payment")
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
    if value is not None and len(value) <= MAX_MESSAGE_BYTES:
        try:
            usual = _USUAL_LABEL.decode(value)
        except (msgspec.MsgspecError, ValueError, RecursionError):  # the general path says what is wrong
            pass
        else:
            label = _accept_usual_label(usual, record_us, now_us)
            if label is not None:
                return label
    return _parse_any_label(value, record_us, now_us)


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
    document = _decode_object(value, "label")
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
