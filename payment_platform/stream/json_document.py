"""Reading a message value as a JSON object, whatever a client sends (CONTRACTS §1).

orjson decodes almost every message; this module adds what it cannot do alone, so that validation sees
one dict of top-level members and words one reason for every refusal:
- a value larger than MAX_MESSAGE_BYTES is refused before it is parsed: a payment is ~200 bytes, and a
  multi-megabyte value (which a permissive broker may still deliver) must cost the scorer no parsing time;
- a document nested deeper than the decoders go (orjson stops at 1,024 levels) may still be a valid
  payment with a deep field the contract ignores. It is read by an iterative scanner (no recursion,
  memory in proportion to the depth) that checks it is JSON and keeps only the top-level members. It is
  pure Python (~0.4 µs a byte), so it reads at most MAX_DEEP_BYTES;
- an integer beyond 64 bits, which orjson turns into a float, is re-read as its exact text.
"""

from __future__ import annotations

import json
import re
from typing import cast

import orjson

MAX_ID_LENGTH = 64
MAX_MESSAGE_BYTES = 1024 * 1024  # Apache Kafka's default message size limit: larger is not a payment
MAX_DECODER_DEPTH = 1024  # orjson's nesting limit
MAX_DEEP_BYTES = 64 * 1024  # ~25 ms for the scanner at worst; a payment is ~200 bytes


class InvalidMessage(ValueError):
    """A message that breaks the contract; its text is the DLQ reason."""


class _IntegerToken(str):
    """The text of a JSON integer, as written: orjson turns integers beyond 64 bits into floats."""


def decode_object(value: bytes | None, what: str) -> dict[str, object]:
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


def exact_integer(value: bytes, field: str) -> object:
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
