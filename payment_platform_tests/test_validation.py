"""Validation of payment and label messages against CONTRACTS §1: what is accepted, and why not."""

from __future__ import annotations

import datetime as dt
import json
import time

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payment_platform.stream.json_document import MAX_DECODER_DEPTH, MAX_DEEP_BYTES
from payment_platform.stream.validation import (
    InvalidMessage,
    Label,
    Payment,
    parse_label,
    parse_payment,
)


def epoch_us(moment: dt.datetime) -> int:
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


NOW = dt.datetime(2026, 3, 2, 0, 0, tzinfo=dt.UTC)
NOW_US = epoch_us(NOW)
RECORD_US = epoch_us(dt.datetime(2026, 3, 1, 23, 59, 58, 123_456, tzinfo=dt.UTC))
NOON_US = epoch_us(dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC))

VALID = {"transaction_id": "tx-1", "customer_id": "card-1", "amount": 12.5, "timestamp": "2026-03-01T12:00:00Z"}


def encode(document: object) -> bytes:
    return orjson.dumps(document)


def payment(**fields: object) -> Payment:
    """A valid payment with some fields replaced (None removes a field)."""
    document = {k: v for k, v in {**VALID, **fields}.items() if v is not None}
    return parse_payment(encode(document), RECORD_US, NOW_US)


# --- valid payments ------------------------------------------------------------------------------


def test_a_full_payment_is_parsed() -> None:
    document = {**VALID, "terminal_id": "term-9", "currency": "USD", "ignored": [1, 2]}
    assert parse_payment(encode(document), RECORD_US, NOW_US) == Payment(
        transaction_id="tx-1",
        customer_id="card-1",
        terminal_id="term-9",
        amount=12.5,
        currency="USD",
        event_us=NOON_US,
    )


def test_an_integer_transaction_id_becomes_its_decimal_string() -> None:
    assert payment(transaction_id=1234567890123).transaction_id == "1234567890123"
    assert payment(transaction_id=0).transaction_id == "0"


def test_defaults_for_terminal_and_currency() -> None:
    parsed = payment()
    assert parsed.terminal_id == "unknown"
    assert parsed.currency == "EUR"


def test_explicit_nulls_take_the_defaults() -> None:
    document = {**VALID, "terminal_id": None, "currency": None, "timestamp": None}
    parsed = parse_payment(encode(document), RECORD_US, NOW_US)
    assert (parsed.terminal_id, parsed.currency, parsed.event_us) == ("unknown", "EUR", RECORD_US)


def test_missing_timestamp_is_the_kafka_record_time() -> None:
    assert payment(timestamp=None).event_us == RECORD_US


@pytest.mark.parametrize(
    "timestamp",
    [
        "2026-03-01T12:00:00Z",
        "2026-03-01T12:00:00+00:00",
        "2026-03-01T14:00:00+02:00",
        "2026-03-01T07:00:00-05:00",
        "2026-03-01T12:00:00.000000Z",
        NOON_US / 1e6,
        NOON_US // 1_000_000,
    ],
)
def test_timestamps_with_offsets_and_epoch_seconds(timestamp: object) -> None:
    assert payment(timestamp=timestamp).event_us == NOON_US


def test_timestamp_keeps_microseconds() -> None:
    assert payment(timestamp="2026-03-01T12:00:00.123456+02:00").event_us == NOON_US - 2 * 3600 * 10**6 + 123_456
    assert payment(timestamp=NOON_US / 1e6 + 0.25).event_us == NOON_US + 250_000


@pytest.mark.parametrize("amount", [0, 0.0, -0.0, 0.001, 0.01, 1, 1_000_000, 999_999.99])
def test_amount_bounds_accepted(amount: float) -> None:
    """Zero is a card check, and card testers use it: scored, not dead-lettered (CONTRACTS §1)."""
    assert payment(amount=amount).amount == float(amount)


def test_ids_of_64_characters_are_accepted() -> None:
    parsed = payment(transaction_id="t" * 64, customer_id="c" * 64, terminal_id="x" * 64)
    assert (len(parsed.transaction_id), len(parsed.customer_id), len(parsed.terminal_id)) == (64, 64, 64)


def test_unicode_ids_are_accepted_verbatim() -> None:
    assert payment(customer_id="kärtchen-💳").customer_id == "kärtchen-💳"


def test_timestamp_exactly_24_hours_ahead_is_accepted() -> None:
    ahead = NOW + dt.timedelta(hours=24)
    assert payment(timestamp=ahead.isoformat()).event_us == NOW_US + 24 * 3600 * 10**6


# --- invalid payments ----------------------------------------------------------------------------

MISSING = object()  # removes the field

INVALID_PAYMENTS = [
    # (id, raw bytes or field overrides, words the reason must contain)
    ("not-json", b"{not json", ["not valid UTF-8 JSON"]),
    ("truncated-json", b'{"transaction_id": "t"', ["not valid UTF-8 JSON"]),
    ("empty-bytes", b"", ["not valid UTF-8 JSON"]),
    ("non-utf8", b'{"transaction_id": "\xff\xfe", "customer_id": "c", "amount": 1}', ["UTF-8"]),
    ("nan-literal", b'{"transaction_id": "t", "customer_id": "c", "amount": NaN}', ["not valid UTF-8 JSON"]),
    ("array", b"[1, 2]", ["JSON object", "list"]),
    ("string", b'"payment"', ["JSON object", "str"]),
    ("number", b"42", ["JSON object", "int"]),
    ("null", b"null", ["JSON object"]),
    ("missing-transaction-id", {"transaction_id": MISSING}, ["transaction_id", "required"]),
    ("null-transaction-id", {"transaction_id": None}, ["transaction_id", "required"]),
    ("empty-transaction-id", {"transaction_id": ""}, ["transaction_id", "1-64"]),
    ("65-char-transaction-id", {"transaction_id": "t" * 65}, ["transaction_id", "1-64", "65"]),
    ("float-transaction-id", {"transaction_id": 1.5}, ["transaction_id", "string or an integer"]),
    ("bool-transaction-id", {"transaction_id": True}, ["transaction_id", "string or an integer", "bool"]),
    ("missing-customer-id", {"customer_id": MISSING}, ["customer_id", "required"]),
    ("empty-customer-id", {"customer_id": ""}, ["customer_id", "1-64"]),
    ("65-char-customer-id", {"customer_id": "c" * 65}, ["customer_id", "1-64"]),
    ("int-customer-id", {"customer_id": 17}, ["customer_id", "must be a string", "int"]),
    ("empty-terminal-id", {"terminal_id": ""}, ["terminal_id", "1-64"]),
    ("65-char-terminal-id", {"terminal_id": "x" * 65}, ["terminal_id", "1-64"]),
    ("missing-amount", {"amount": MISSING}, ["amount", "required"]),
    ("nan-as-null-amount", {"amount": None}, ["amount", "required"]),
    ("bool-amount", {"amount": True}, ["amount", "JSON number", "bool"]),
    ("string-amount", {"amount": "12.50"}, ["amount", "JSON number", "str"]),
    ("object-amount", {"amount": {"value": 1}}, ["amount", "JSON number", "dict"]),
    ("negative-amount", {"amount": -5}, ["amount", ">= 0", "-5"]),
    ("negative-zero-point", {"amount": -0.01}, ["amount", ">= 0"]),
    ("over-max-amount", {"amount": 1_000_000.01}, ["amount", "<= 1,000,000"]),
    ("huge-amount", {"amount": 1e300}, ["amount", "<= 1,000,000"]),
    ("lower-case-currency", {"currency": "eur"}, ["currency", "3 upper-case letters", "'eur'"]),
    ("four-letter-currency", {"currency": "EURO"}, ["currency", "3 upper-case letters", "'EURO'"]),
    ("empty-currency", {"currency": ""}, ["currency", "3 upper-case letters"]),
    ("numeric-currency", {"currency": 978}, ["currency", "3 upper-case letters"]),
    ("naive-timestamp", {"timestamp": "2026-03-01T12:00:00"}, ["timestamp", "UTC offset or Z"]),
    ("garbage-timestamp", {"timestamp": "yesterday"}, ["timestamp", "not ISO-8601"]),
    ("before-2000", {"timestamp": "1999-12-31T23:59:59Z"}, ["timestamp", "before 2000-01-01"]),
    ("epoch-before-2000", {"timestamp": 0}, ["timestamp", "before 2000-01-01"]),
    ("epoch-milliseconds", {"timestamp": NOON_US // 1000}, ["timestamp", "out of range"]),
    ("more-than-24h-ahead", {"timestamp": "2026-03-03T00:00:01Z"}, ["timestamp", "24 h in the future"]),
    ("bool-timestamp", {"timestamp": True}, ["timestamp", "ISO-8601 string or epoch seconds", "bool"]),
    ("list-timestamp", {"timestamp": [2026, 3, 1]}, ["timestamp", "ISO-8601 string or epoch seconds", "list"]),
]


@pytest.mark.parametrize(
    ("message", "words"), [(m, w) for _, m, w in INVALID_PAYMENTS], ids=[i for i, _, _ in INVALID_PAYMENTS]
)
def test_invalid_payments_say_which_rule(message: bytes | dict[str, object], words: list[str]) -> None:
    if isinstance(message, dict):
        document = {**VALID, **message}
        message = encode({k: v for k, v in document.items() if v is not MISSING})
    with pytest.raises(InvalidMessage) as caught:
        parse_payment(message, RECORD_US, NOW_US)
    reason = str(caught.value)
    assert "\n" not in reason
    assert len(reason) < 250
    for word in words:
        assert word in reason


def test_a_message_without_value_is_invalid() -> None:
    with pytest.raises(InvalidMessage, match="payment has no value"):
        parse_payment(None, RECORD_US, NOW_US)


def test_invalid_message_is_a_value_error() -> None:
    assert issubclass(InvalidMessage, ValueError)


def test_missing_timestamp_with_an_old_record_time_is_invalid() -> None:
    old_record_us = epoch_us(dt.datetime(1999, 1, 1, tzinfo=dt.UTC))
    with pytest.raises(InvalidMessage, match="before 2000-01-01"):
        parse_payment(encode({**VALID, "timestamp": None}), old_record_us, NOW_US)


# --- labels --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("is_fraud", "expected"),
    [(True, True), (False, False), (1, True), (0, False)],
)
def test_valid_labels(is_fraud: object, expected: bool) -> None:
    message = encode({"transaction_id": "tx-1", "is_fraud": is_fraud, "labelled_at": "2026-03-01T14:00:00+02:00"})
    assert parse_label(message, RECORD_US, NOW_US) == Label("tx-1", expected, NOON_US)


def test_label_defaults_to_the_record_time_and_accepts_integer_ids() -> None:
    label = parse_label(encode({"transaction_id": 77, "is_fraud": 1}), RECORD_US, NOW_US)
    assert label == Label("77", True, RECORD_US)


def test_label_accepts_epoch_seconds() -> None:
    label = parse_label(encode({"transaction_id": "t", "is_fraud": False, "labelled_at": NOON_US / 1e6}), 0, NOW_US)
    assert label.labelled_us == NOON_US


INVALID_LABELS = [
    ("is-fraud-2", {"is_fraud": 2}, ["is_fraud", "true, false, 0 or 1", "'2'"]),
    ("is-fraud-yes", {"is_fraud": "yes"}, ["is_fraud", "true, false, 0 or 1", "'yes'"]),
    ("is-fraud-float", {"is_fraud": 1.0}, ["is_fraud", "true, false, 0 or 1"]),
    ("is-fraud-missing", {"is_fraud": MISSING}, ["is_fraud", "required"]),
    ("is-fraud-null", {"is_fraud": None}, ["is_fraud", "required"]),
    ("transaction-id-missing", {"transaction_id": MISSING}, ["transaction_id", "required"]),
    ("transaction-id-65", {"transaction_id": "t" * 65}, ["transaction_id", "1-64"]),
    ("naive-labelled-at", {"labelled_at": "2026-03-01 12:00"}, ["labelled_at", "UTC offset or Z"]),
    ("future-labelled-at", {"labelled_at": "2026-03-04T00:00:00Z"}, ["labelled_at", "24 h in the future"]),
    ("bool-labelled-at", {"labelled_at": False}, ["labelled_at", "bool"]),
]


@pytest.mark.parametrize(
    ("fields", "words"), [(f, w) for _, f, w in INVALID_LABELS], ids=[i for i, _, _ in INVALID_LABELS]
)
def test_invalid_labels_say_which_rule(fields: dict[str, object], words: list[str]) -> None:
    document = {"transaction_id": "tx-1", "is_fraud": True, **fields}
    with pytest.raises(InvalidMessage) as caught:
        parse_label(encode({k: v for k, v in document.items() if v is not MISSING}), RECORD_US, NOW_US)
    reason = str(caught.value)
    assert "\n" not in reason
    for word in words:
        assert word in reason


@pytest.mark.parametrize(
    ("value", "words"), [(b"[]", ["label", "JSON object"]), (b"{", ["label", "JSON"]), (None, ["label", "no value"])]
)
def test_labels_that_are_not_objects(value: bytes | None, words: list[str]) -> None:
    with pytest.raises(InvalidMessage) as caught:
        parse_label(value, RECORD_US, NOW_US)
    for word in words:
        assert word in str(caught.value)


# --- ignored fields nested deeper than the decoders go (issue 14) --------------------------------


def nested(depth: int, kind: str) -> bytes:
    """A JSON value `depth` levels deep: arrays, objects, or both in turn."""
    if kind == "arrays":
        return b"[" * depth + b"]" * depth
    if kind == "objects":
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b'[{"a":' * (depth // 2) + b"[]" + b"}]" * (depth // 2)


def with_member(document: bytes, name: bytes, member: bytes) -> bytes:
    """The JSON object `document` with one more member at its end, as raw bytes."""
    return document[:-1] + b',"' + name + b'":' + member + b"}"


@pytest.mark.parametrize("depth", [1_025, 2_000, 10_000])
@pytest.mark.parametrize("kind", ["arrays", "objects", "mixed"])
def test_a_valid_payment_with_a_deeply_nested_ignored_field_is_accepted(depth: int, kind: str) -> None:
    value = with_member(encode(VALID), b"ignored", nested(depth, kind))
    with pytest.raises(orjson.JSONDecodeError, match="depth limit exceeded"):
        orjson.loads(value)  # what sent it to the DLQ before
    assert parse_payment(value, RECORD_US, NOW_US) == payment()
    label = with_member(encode({"transaction_id": 7, "is_fraud": 1}), b"ignored", nested(depth, kind))
    assert parse_label(label, RECORD_US, NOW_US) == Label("7", True, RECORD_US)


def test_a_deep_document_too_large_to_read_is_refused_with_the_reason() -> None:
    value = with_member(encode(VALID), b"ignored", nested(100_000, "arrays"))
    started = time.perf_counter()
    with pytest.raises(InvalidMessage) as caught:
        parse_payment(value, RECORD_US, NOW_US)
    assert time.perf_counter() - started < 0.05  # refused on its size, nothing scanned
    assert str(caught.value) == (
        f"payment is nested deeper than {MAX_DECODER_DEPTH:,} levels and larger than {MAX_DEEP_BYTES:,} "
        f"bytes ({len(value):,}): too costly to read"
    )


def test_the_costliest_deep_document_read_stays_cheap() -> None:
    """Tokens as short as JSON allows, all the way to the size limit: the scanner's worst case."""
    head = with_member(encode(VALID), b"ignored", b'[{"":' * 600 + b"[")
    items = (MAX_DEEP_BYTES - len(head) - 2 * 600 - 4) // 2
    value = head[:-1] + b"0," * items + b"0]" + b"}]" * 600 + b"}"
    assert MAX_DEEP_BYTES - 8 <= len(value) <= MAX_DEEP_BYTES
    started = time.perf_counter()
    assert parse_payment(value, RECORD_US, NOW_US) == payment()
    assert time.perf_counter() - started < 0.5  # ~30 ms measured; generous for a shared machine


def test_a_contract_field_nested_deeply_is_refused_for_its_type() -> None:
    deep = nested(2_000, "arrays")
    for field, words in [("transaction_id", "a string or an integer, got list"), ("amount", "a JSON number, got list")]:
        value = with_member(encode({k: v for k, v in VALID.items() if k != field}), field.encode(), deep)
        with pytest.raises(InvalidMessage, match=f"^{field} must be {words}$"):
            parse_payment(value, RECORD_US, NOW_US)


def test_a_big_integer_id_beside_a_deep_field_keeps_every_digit() -> None:
    value = with_member(json.dumps({**VALID, "transaction_id": 2**70}).encode(), b"ignored", nested(2_000, "objects"))
    assert parse_payment(value, RECORD_US, NOW_US).transaction_id == str(2**70)


def test_the_last_of_duplicate_keys_wins_beside_a_deep_field_as_in_a_shallow_document() -> None:
    value = with_member(with_member(encode(VALID), b"ignored", nested(2_000, "arrays")), b"amount", b"7")
    assert parse_payment(value, RECORD_US, NOW_US) == payment(amount=7.0)


@pytest.mark.parametrize(
    ("inner", "words"),
    [
        (b"[" * 2_000 + b"]" * 1_999, "not valid UTF-8 JSON"),
        (b"[" * 2_000 + b"}" * 2_000, "not valid UTF-8 JSON"),
        (b"[" * 2_000 + b"1," + b"]" * 2_000, "not valid UTF-8 JSON"),
        (b"[" * 2_000 + b"tru" + b"]" * 2_000, "not valid UTF-8 JSON"),
        (b"[" * 2_000 + b'"\xff"' + b"]" * 2_000, "not valid UTF-8 JSON"),
        (b"[" * 2_000 + b'"\\ud800"' + b"]" * 2_000, "not valid UTF-8 JSON"),
        (b"[" * 2_000 + b"1e400" + b"]" * 2_000, "beyond the range of a double"),
        (b"[" * 2_000 + b"]" * 2_000 + b" x", "not valid UTF-8 JSON"),
    ],
    ids=["unclosed", "mismatched", "trailing comma", "bad literal", "not UTF-8", "lone surrogate", "inf", "garbage"],
)
def test_a_deep_document_that_is_not_json_is_refused_as_a_shallow_one_would_be(inner: bytes, words: str) -> None:
    value = with_member(encode(VALID), b"ignored", inner)
    with pytest.raises(InvalidMessage, match=words) as caught:
        parse_payment(value, RECORD_US, NOW_US)
    assert "\n" not in str(caught.value)


json_scalars = st.none() | st.booleans() | st.integers(-(2**80), 2**80) | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
)
OUT_OF_RANGE = "<1e400>"  # written as the number 1e400, which no double holds
contract_values = st.sampled_from([*VALID.values(), "EUR", "t" * 65, 0, -1, 2**70, OUT_OF_RANGE]) | json_values


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fields=st.dictionaries(
        st.sampled_from([*VALID, "currency", "terminal_id", "is_fraud", "labelled_at", "other"]), contract_values
    ),
    cut=st.integers(0, 400),
    insert=st.sampled_from([b"", b",", b"]", b"}", b"[", b'"', b":", b"1", b"\\", b" "]),
    kind=st.sampled_from(["arrays", "objects", "mixed"]),
)
def test_a_deep_document_gets_the_verdict_of_its_shallow_twin(
    fields: dict[str, object], cut: int, insert: bytes, kind: str
) -> None:
    """The same document with the deep field as an empty container: same payment or label, or same rule broken."""
    document = json.dumps({**VALID, **fields}).replace(f'"{OUT_OF_RANGE}"', "1e400").encode()
    cut = min(cut, len(document) - 1)
    mangled = document[:cut] + insert + document[cut:]  # sometimes broken on purpose
    shallow = with_member(mangled, b"deep", b"{}" if kind == "objects" else b"[]")
    deep = with_member(mangled, b"deep", nested(1_500, kind))
    for parse in (parse_payment, parse_label):
        assert outcome(parse, deep) == outcome(parse, shallow)


def outcome(parse, value: bytes) -> object:
    """The parsed message, or the rule the reason names (what comes before its first colon)."""
    try:
        return parse(value, RECORD_US, NOW_US)
    except InvalidMessage as exc:
        return str(exc).split(":")[0]
