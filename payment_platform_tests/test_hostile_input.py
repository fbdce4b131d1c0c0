"""Hostile input: whatever arrives on the topics, the scorer either stores it exactly or dead-letters it.

Property-based tests drive `parse_payment`/`parse_label` with arbitrary bytes and arbitrary JSON;
one end-to-end run pushes a corpus of nasty messages through the real scorer, broker and MariaDB.
The end-to-end helpers are shared with test_security.py.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

from payment_platform.features import FEATURE_NAMES
from payment_platform.kafka.clients import ensure_topics, payment_producer
from payment_platform.model import ModelRegistry
from payment_platform.stream import validation
from payment_platform.stream.config import ScorerConfig
from payment_platform.stream.json_document import MAX_ID_LENGTH, MAX_MESSAGE_BYTES
from payment_platform.stream.runner import run_scorer
from payment_platform.stream.stats import ScorerStats
from payment_platform.stream.validation import (
    EARLIEST_EVENT_US,
    MAX_AMOUNT,
    MAX_FUTURE_US,
    InvalidMessage,
    Label,
    Payment,
    parse_label,
    parse_payment,
)

NOW_US = 1_772_409_600_000_000  # 2026-03-02T00:00:00Z
RECORD_US = NOW_US - 3_600_000_000
PROPERTY = settings(
    max_examples=400, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)


# --- properties of the parsers -------------------------------------------------------------------


def check_reason(exc: InvalidMessage) -> None:
    """A DLQ `error` header: one short, non-empty line."""
    reason = str(exc)
    assert reason and len(reason) <= 250
    assert "\n" not in reason and "\r" not in reason


def check_id(value: str) -> None:
    assert isinstance(value, str) and 1 <= len(value) <= MAX_ID_LENGTH
    value.encode("utf-8")  # no lone surrogates: the database could not store it


def check_payment(payment: Payment, document: object = None) -> None:
    """Every CONTRACTS rule holds; given the source document, the values are exactly its own."""
    for value in (payment.transaction_id, payment.customer_id, payment.terminal_id):
        check_id(value)
    assert math.isfinite(payment.amount) and 0 <= payment.amount <= MAX_AMOUNT
    assert len(payment.currency) == 3 and payment.currency.isascii() and payment.currency.isupper()
    assert EARLIEST_EVENT_US <= payment.event_us <= NOW_US + MAX_FUTURE_US
    if isinstance(document, dict):
        tx = document["transaction_id"]
        assert payment.transaction_id == (tx if isinstance(tx, str) else str(tx))
        assert payment.customer_id == document["customer_id"]
        assert payment.terminal_id == (document.get("terminal_id") or "unknown")
        assert payment.currency == (document.get("currency") or "EUR")
        assert payment.amount == float(document["amount"])


def check_label(label: Label, document: object = None) -> None:
    check_id(label.transaction_id)
    assert isinstance(label.is_fraud, bool)
    assert EARLIEST_EVENT_US <= label.labelled_us <= NOW_US + MAX_FUTURE_US
    if isinstance(document, dict):
        tx = document["transaction_id"]
        assert label.transaction_id == (tx if isinstance(tx, str) else str(tx))
        assert label.is_fraud == bool(document["is_fraud"])


def parse_both(value: bytes, document: object = None) -> None:
    """Parse as a payment and as a label: a valid value or InvalidMessage, never another exception."""
    try:
        check_payment(parse_payment(value, RECORD_US, NOW_US), document)
    except InvalidMessage as exc:
        check_reason(exc)
    try:
        check_label(parse_label(value, RECORD_US, NOW_US), document)
    except InvalidMessage as exc:
        check_reason(exc)


# Strings with what breaks naive code: NUL and control characters, 4-byte UTF-8, lone surrogates.
nasty_text = st.text(
    st.characters(codec=None, categories=None) | st.sampled_from(["\x00", "\n", " ", "'", "\\", "💳", "\ud800"]),
    max_size=70,
)
big_ints = st.integers(min_value=-(2**300), max_value=2**300) | st.sampled_from([2**63, 2**64, -(2**63) - 1, 10**63])
numbers = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.floats(min_value=-1e12, max_value=1e12)
    | big_ints
    | st.decimals(min_value=-2, max_value=2, places=3).map(float)
)
timestamps = st.datetimes(
    min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=st.just(None)
).flatmap(
    lambda moment: st.sampled_from(
        [
            moment.isoformat(),
            moment.isoformat() + "Z",
            moment.isoformat() + "+14:00",
            moment.isoformat() + "-23:59",
        ]
    )
)
scalars = st.none() | st.booleans() | numbers | nasty_text | timestamps
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(nasty_text, inner, max_size=3), max_leaves=8
)
plausible_ids = st.text(min_size=1, max_size=66) | st.integers(min_value=-(10**70), max_value=10**70)
recent_times = (
    st.integers(min_value=EARLIEST_EVENT_US, max_value=NOW_US)
    | st.integers(min_value=EARLIEST_EVENT_US - 10**12, max_value=NOW_US + 2 * MAX_FUTURE_US)
).flatmap(lambda us: st.sampled_from([us / 1e6, dt.datetime.fromtimestamp(us / 1e6, dt.UTC).isoformat()]))


MISSING = object()


def mostly(plausible: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """Usually a value close to valid (so valid messages are common), sometimes anything or nothing."""
    return st.integers(0, 19).flatmap(
        lambda roll: plausible if roll < 17 else json_values if roll < 19 else st.just(MISSING)
    )


documents = st.fixed_dictionaries(
    {
        "transaction_id": mostly(plausible_ids),
        "customer_id": mostly(st.text(min_size=1, max_size=66)),
        "amount": mostly(st.floats(min_value=-1, max_value=MAX_AMOUNT * 1.01) | st.integers(-1, 10**7)),
        "terminal_id": mostly(st.text(min_size=1, max_size=66)),
        "currency": mostly(st.sampled_from(["EUR", "USD", "JPY", "GBP", "eur", "EURO", "€UR", ""])),
        "timestamp": mostly(recent_times),
        "is_fraud": mostly(st.sampled_from([True, False, 0, 1, 2, -1, 1.0, "true"])),
        "labelled_at": mostly(recent_times),
        "extra": mostly(json_values),
    }
).map(lambda document: {key: value for key, value in document.items() if value is not MISSING})


def encode(document: object, ascii_only: bool) -> bytes:
    """JSON as a foreign producer may write it: exact big integers, NaN/Infinity, raw or escaped text."""
    return json.dumps(document, ensure_ascii=ascii_only, allow_nan=True).encode("utf-8", "surrogatepass")


@PROPERTY
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_parsed_or_rejected_with_one_line(value: bytes) -> None:
    parse_both(value)


@PROPERTY
@given(documents, st.booleans())
def test_arbitrary_json_objects_are_parsed_exactly_or_rejected_with_one_line(
    document: dict[str, object], ascii_only: bool
) -> None:
    parse_both(encode(document, ascii_only), document)


def verdict(parse: Callable[[bytes, int, int], object], value: bytes) -> object:
    try:
        return parse(value, RECORD_US, NOW_US)
    except InvalidMessage as exc:
        return f"invalid: {exc}"


@PROPERTY
@given(documents, st.booleans())
def test_the_fast_path_and_the_general_path_give_the_same_verdict(document: dict[str, object], ascii: bool) -> None:
    """parse_payment's msgspec fast path accepts only what the general path accepts, with the same values;
    everything else gets the general path's reason."""
    value = encode(document, ascii)
    assert verdict(parse_payment, value) == verdict(validation._parse_any_payment, value)


def test_a_usual_payment_takes_the_fast_path() -> None:
    value = b'{"transaction_id":"t-1","customer_id":"C1","terminal_id":"T1","amount":22.86,"currency":"EUR",'
    value += b'"timestamp":"2026-03-01T00:00:24.401052Z"}'
    usual = validation._accept_usual(validation._USUAL_PAYMENT.decode(value), RECORD_US, NOW_US)
    assert usual == Payment("t-1", "C1", "T1", 22.86, "EUR", 1_772_323_224_401_052)
    assert usual == validation._parse_any_payment(value, RECORD_US, NOW_US) == parse_payment(value, RECORD_US, NOW_US)


@PROPERTY
@given(json_values, st.booleans())
def test_arbitrary_json_values_are_parsed_or_rejected_with_one_line(document: object, ascii_only: bool) -> None:
    parse_both(encode(document, ascii_only))


@PROPERTY
@given(st.integers(min_value=-(10**80), max_value=10**80))
def test_an_integer_transaction_id_of_any_size_is_its_decimal_string_or_too_long(tx: int) -> None:
    value = json.dumps({"transaction_id": tx, "customer_id": "c", "amount": 1, "is_fraud": 1}).encode()
    if len(str(tx)) <= MAX_ID_LENGTH:
        assert parse_payment(value, RECORD_US, NOW_US).transaction_id == str(tx)
        assert parse_label(value, RECORD_US, NOW_US).transaction_id == str(tx)
    else:
        for parse in (parse_payment, parse_label):
            with pytest.raises(InvalidMessage, match=f"transaction_id must have 1-64 characters, got {len(str(tx))}"):
                parse(value, RECORD_US, NOW_US)


@pytest.mark.parametrize(
    ("token", "words"),
    [
        (b"1e20", "got float"),
        (b"18446744073709551616.0", "got float"),
        (b"-0", None),
        (b"1" * 100, "must have 1-64 characters, got 100"),
        (b"1" * 400, "payment has a number beyond the range of a double"),
    ],
)
def test_integer_like_transaction_ids(token: bytes, words: str | None) -> None:
    value = b'{"transaction_id": ' + token + b', "customer_id": "c", "amount": 1}'
    if words is None:
        assert parse_payment(value, RECORD_US, NOW_US).transaction_id == "0"
        return
    with pytest.raises(InvalidMessage, match=words):
        parse_payment(value, RECORD_US, NOW_US)


def test_a_deeply_nested_message_with_a_big_integer_id_is_parsed_or_rejected() -> None:
    for depth in (10, 500, 1_000, 1_023, 5_000):
        value = b'{"transaction_id": %d, "customer_id": "c", "amount": 1, "x": %s%s}' % (
            2**70,
            b"[" * depth,
            b"]" * depth,
        )
        parse_both(value)


def test_the_size_limit_is_checked_before_parsing() -> None:
    head = b'{"transaction_id": "t", "customer_id": "c", "amount": 1, "pad": "'
    fitting = head + b"x" * (MAX_MESSAGE_BYTES - len(head) - 2) + b'"}'
    assert len(fitting) == MAX_MESSAGE_BYTES
    assert parse_payment(fitting, RECORD_US, NOW_US).transaction_id == "t"
    for value in (fitting[:-2] + b'x"}', b"\xff" * 10_000_000):  # too large whatever it holds
        for parse, what in ((parse_payment, "payment"), (parse_label, "label")):
            with pytest.raises(
                InvalidMessage, match=f"^{what} value too large: [0-9,]+ bytes, at most {MAX_MESSAGE_BYTES:,}$"
            ):
                parse(value, RECORD_US, NOW_US)


# --- end to end: a corpus of nasty messages through the real scorer -------------------------------


@dataclass(frozen=True)
class Case:
    """One message of a corpus: where it goes, and what must come of it.

    `error` holds words the DLQ `error` header must contain; `row` the exact stored row of a valid
    message (None for a duplicate, which leaves no trace). `record_ms` sets the Kafka record time.
    """

    topic: str  # "payment" or "label"
    value: bytes | None
    error: str | None = None
    row: dict[str, object] | None = None
    record_ms: int | None = None


@dataclass
class CorpusRun:
    """What a scorer run over a corpus left behind."""

    stats: ScorerStats | None
    dlq: dict[bytes, Message]
    payment_rows: dict[str, dict[str, object]]
    label_rows: dict[str, dict[str, object]]
    other_rows: dict[str, int] = field(default_factory=dict)
    label_history: set[str] = field(default_factory=set)  # transactions in label_events (HEX of the id)
    committed: dict[str, int] = field(default_factory=dict)


# The contract tables and the platform's own bookkeeping of the stream (label history, progress, status).
DUPLICATE = "duplicate transaction_id with different content"
PLATFORM_TABLES = ("scored_transactions", "transaction_labels", "label_events", "stream_progress", "scorer_status")


def small_model_dir(root: Path) -> Path:
    """A promoted model on the platform's features: the corpus tests storage, not scores."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, len(FEATURE_NAMES)))
    model = LogisticRegression().fit(X, (X[:, 0] + rng.normal(size=400) > 1.5).astype(int))
    registry = ModelRegistry(root)
    registry.promote(registry.save(model, FEATURE_NAMES, {"review_threshold": 0.5, "decline_threshold": 0.9}))
    return root


def payment_value(**fields: object) -> bytes:
    """A payment as JSON, with exact big integers; fields set to MISSING are left out."""
    document = {"transaction_id": "t", "customer_id": "c", "amount": 10.0, "timestamp": "2026-01-15T10:00:00Z"}
    document.update(fields)
    return json.dumps({k: v for k, v in document.items() if v is not MISSING}, ensure_ascii=False).encode()


def naive_utc(iso: str) -> dt.datetime:
    return dt.datetime.fromisoformat(iso).astimezone(dt.UTC).replace(tzinfo=None)


def stored_payment(
    transaction_id: str,
    customer_id: str = "c",
    amount: str = "10.00",
    *,
    terminal_id: str = "unknown",
    currency: str = "EUR",
    event_time: dt.datetime | None = None,
) -> dict[str, object]:
    return {
        "transaction_id": transaction_id,
        "customer_id": customer_id,
        "terminal_id": terminal_id,
        "amount": Decimal(amount),
        "currency": currency,
        "event_time": event_time or naive_utc("2026-01-15T10:00:00Z"),
    }


def nested_member(value: bytes, depth: int) -> bytes:
    """A JSON object with one more member, an array nested `depth` deep."""
    return value[:-1] + b', "ignored": ' + b"[" * depth + b"]" * depth + b"}"


def valid_payment(transaction_id: str | int, customer_id: str = "c") -> Case:
    """A payment that must be stored exactly (an integer id as its decimal string)."""
    value = payment_value(transaction_id=transaction_id, customer_id=customer_id)
    return Case("payment", value, row=stored_payment(str(transaction_id), customer_id))


def run_corpus(
    cases: list[Case],
    bootstrap: str,
    topics: dict[str, str],
    db_url: str,
    model_dir: Path,
    score: Callable[[ScorerConfig], ScorerStats | None] = lambda setup: run_scorer(setup, idle_timeout_s=3),
) -> CorpusRun:
    """Produce the corpus (keys `case-<i>`, partition 0, in order), score it once, read back what is left.

    `score` runs the scorer (in process by default); `db_url` is also used to read the tables back.
    """
    topic_of = {"payment": topics["payment_topic"], "label": topics["labels_topic"]}
    ensure_topics(bootstrap, topics.values())
    producer = payment_producer(bootstrap, **{"message.max.bytes": 4 * MAX_MESSAGE_BYTES})  # room for the too-large
    for i, case in enumerate(cases):
        extra = {} if case.record_ms is None else {"timestamp": case.record_ms}
        producer.produce(topic_of[case.topic], key=f"case-{i}".encode(), value=case.value, partition=0, **extra)
    assert producer.flush(30) == 0

    group = f"corpus-{topics['payment_topic']}"
    setup = ScorerConfig(bootstrap=bootstrap, consumer_group=group, db_url=db_url, model_dir=model_dir, **topics)
    stats = score(setup)

    expected_dlq = sum(case.error is not None for case in cases)
    dlq = {m.key(): m for m in read_topic(bootstrap, topics["dlq_topic"], expected_dlq)}
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    committed = consumer.committed([TopicPartition(topic, 0) for topic in topic_of.values()], timeout=10)
    consumer.close()

    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            payments = conn.execute(
                sa.text(
                    "SELECT transaction_id, HEX(transaction_id) AS tx_hex, customer_id, HEX(customer_id) AS c_hex, "
                    "terminal_id, HEX(terminal_id) AS t_hex, amount, currency, event_time FROM scored_transactions"
                )
            ).mappings()
            payment_rows = {row["tx_hex"]: dict(row) for row in payments}
            labels = conn.execute(
                sa.text(
                    "SELECT transaction_id, HEX(transaction_id) AS tx_hex, is_fraud, labelled_at "
                    "FROM transaction_labels"
                )
            ).mappings()
            label_rows = {row["tx_hex"]: dict(row) for row in labels}
            label_history = {
                row[0] for row in conn.execute(sa.text("SELECT DISTINCT HEX(transaction_id) FROM label_events")).all()
            }
            others = {
                name: conn.execute(sa.text(f"SELECT COUNT(*) FROM `{name}`")).scalar_one()
                for name in sa.inspect(conn).get_table_names()
                if name not in PLATFORM_TABLES
            }
    finally:
        engine.dispose()
    return CorpusRun(
        stats=stats,
        dlq=dlq,
        payment_rows=payment_rows,
        label_rows=label_rows,
        other_rows=others,
        label_history=label_history,
        committed={tp.topic: tp.offset for tp in committed},
    )


def read_topic(bootstrap: str, topic: str, expected: int, timeout_s: float = 20.0) -> list[Message]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{topic}", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(4)])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while len(messages) < expected and time.monotonic() < deadline:
        messages += [m for m in consumer.consume(1000, 0.5) if not m.error()]
    messages += [m for m in consumer.consume(1000, 1.0) if not m.error()]  # nothing more may come
    consumer.close()
    return messages


def assert_corpus_outcome(cases: list[Case], run: CorpusRun, topics: dict[str, str]) -> None:
    """Invalid → DLQ with its rule, unchanged; valid → exactly its row; nothing else; everything consumed."""
    topic_of = {"payment": topics["payment_topic"], "label": topics["labels_topic"]}
    expected_payments: dict[str, dict[str, object]] = {}
    expected_labels: dict[str, dict[str, object]] = {}
    for i, case in enumerate(cases):
        key = f"case-{i}".encode()
        if case.error is not None:
            assert key in run.dlq, f"case {i} ({case.value!r:.80}) is not in the DLQ"
            message = run.dlq[key]
            headers = dict(message.headers() or [])
            error = headers["error"].decode()
            assert case.error in error, f"case {i}: DLQ error {error!r} does not name {case.error!r}"
            assert "\n" not in error and len(error) <= 250
            assert message.value() == case.value, f"case {i}: the DLQ value is not the original"
            assert headers["source.topic"].decode() == topic_of[case.topic]
            assert int(headers["source.partition"]) == 0 and int(headers["source.offset"]) >= 0
        elif case.row is not None:
            assert key not in run.dlq, f"case {i} is valid but went to the DLQ: {dict(run.dlq[key].headers())}"
            expected = expected_payments if case.topic == "payment" else expected_labels
            tx_hex = str(case.row["transaction_id"]).encode().hex().upper()
            assert tx_hex not in expected, f"case {i} repeats a transaction_id; mark the later one row=None"
            expected[tx_hex] = case.row
    assert len(run.dlq) == sum(case.error is not None for case in cases), "the DLQ holds more than the invalid cases"

    assert set(run.payment_rows) == set(expected_payments), "stored payments differ from the valid ones"
    for tx_hex, row in expected_payments.items():
        stored = run.payment_rows[tx_hex]
        assert stored["c_hex"] == str(row["customer_id"]).encode().hex().upper(), row
        assert stored["t_hex"] == str(row["terminal_id"]).encode().hex().upper(), row
        assert {k: stored[k] for k in row} == row
    assert set(run.label_rows) == set(expected_labels), "stored labels differ from the valid ones"
    for tx_hex, row in expected_labels.items():
        stored = run.label_rows[tx_hex]
        assert (stored["transaction_id"], bool(stored["is_fraud"]), stored["labelled_at"]) == (
            row["transaction_id"],
            row["is_fraud"],
            row["labelled_at"],
        )
    assert run.label_history == set(expected_labels), "the label history holds other labels than the valid ones"
    assert not any(run.other_rows.values()), f"rows written outside the platform's tables: {run.other_rows}"

    # The scorer read everything and did not stop early: every offset is committed.
    payments = sum(case.topic == "payment" for case in cases)
    assert run.committed == {topic_of["payment"]: payments, topic_of["label"]: len(cases) - payments}
    if run.stats is not None:
        assert run.stats.consumed == payments


@pytest.fixture(scope="module")
def corpus_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_model_dir(tmp_path_factory.mktemp("models"))


def hostile_corpus(now: dt.datetime) -> list[Case]:
    """Every kind of message the scorer must survive, with its expected fate."""
    future = (now + dt.timedelta(days=3)).isoformat()
    soon = now + dt.timedelta(hours=23)
    record_ms = 1_768_471_200_123  # 2026-01-15T10:00:00.123Z
    label_time = "2026-02-01T08:30:00.000001+01:00"

    def label(tx: object, is_fraud: object = True, **fields: object) -> bytes:
        document = {"transaction_id": tx, "is_fraud": is_fraud, "labelled_at": label_time, **fields}
        return json.dumps({k: v for k, v in document.items() if v is not MISSING}, ensure_ascii=False).encode()

    def stored_label(tx: str, is_fraud: bool) -> dict[str, object]:
        return {"transaction_id": tx, "is_fraud": is_fraud, "labelled_at": naive_utc(label_time)}

    bad = "payment"
    return [
        # Not JSON, not an object.
        Case(bad, None, "payment has no value"),
        Case(bad, b"", "not valid UTF-8 JSON"),
        Case(bad, b"not json", "not valid UTF-8 JSON"),
        Case(bad, b"{", "not valid UTF-8 JSON"),
        Case(bad, b"\x00", "not valid UTF-8 JSON"),
        Case(bad, b"\xef\xbb\xbf{}", "not valid UTF-8 JSON"),
        Case(bad, b"[]", "must be a JSON object, got list"),
        Case(bad, b"null", "must be a JSON object, got NoneType"),
        Case(bad, b"42", "must be a JSON object, got int"),
        Case(bad, b'"a payment"', "must be a JSON object, got str"),
        # Missing fields and wrong types.
        Case(bad, payment_value(transaction_id=MISSING), "transaction_id is required"),
        Case(bad, payment_value(transaction_id="m1", customer_id=MISSING), "customer_id is required"),
        Case(bad, payment_value(transaction_id="m2", amount=MISSING), "amount is required"),
        Case(bad, payment_value(transaction_id={}), "transaction_id must be a string or an integer, got dict"),
        Case(bad, payment_value(transaction_id=True), "transaction_id must be a string or an integer, got bool"),
        Case(bad, payment_value(transaction_id="w1", customer_id=["c"]), "customer_id must be a string, got list"),
        Case(bad, payment_value(transaction_id="w2", terminal_id=5), "terminal_id must be a string, got int"),
        Case(bad, payment_value(transaction_id="w3", amount="12.50"), "amount must be a JSON number, got str"),
        Case(bad, payment_value(transaction_id="w4", amount=True), "amount must be a JSON number, got bool"),
        Case(bad, payment_value(transaction_id="w5", currency=978), "currency must be 3 upper-case letters"),
        Case(bad, payment_value(transaction_id="w6", currency="€UR"), "currency must be 3 upper-case letters"),
        Case(bad, payment_value(transaction_id="w7", timestamp=[]), "timestamp must be an ISO-8601 string"),
        # Amounts.
        Case(bad, b'{"transaction_id": "a1", "customer_id": "c", "amount": NaN}', "not valid UTF-8 JSON"),
        Case(bad, b'{"transaction_id": "a2", "customer_id": "c", "amount": Infinity}', "not valid UTF-8 JSON"),
        Case(bad, b'{"transaction_id": "a3", "customer_id": "c", "amount": -Infinity}', "not valid UTF-8 JSON"),
        Case(bad, b'{"transaction_id": "a4", "customer_id": "c", "amount": 1e400}', "beyond the range of a double"),
        Case(bad, payment_value(transaction_id="a5", amount=-1), "amount must be >= 0"),
        # A zero amount is a card check (card testers use them): scored, stored as 0.00.
        Case("payment", payment_value(transaction_id="a6", amount=0), row=stored_payment("a6", amount="0.00")),
        Case("payment", payment_value(transaction_id="a7", amount=-0.0), row=stored_payment("a7", amount="0.00")),
        Case("payment", payment_value(transaction_id="a8", amount=1e-9), row=stored_payment("a8", amount="0.00")),
        Case(bad, payment_value(transaction_id="a9", amount=1_000_000.01), "amount must be >= 0 and <= 1,000,000"),
        Case(bad, payment_value(transaction_id="a10", amount=1e308), "amount must be >= 0 and <= 1,000,000"),
        Case(bad, payment_value(transaction_id="a11", amount=2**70), "amount must be >= 0 and <= 1,000,000"),
        # Oversized values and ids.
        Case(bad, payment_value(transaction_id="big", pad="x" * (MAX_MESSAGE_BYTES + 1)), "payment value too large"),
        Case(bad, payment_value(transaction_id="t" * 65), "transaction_id must have 1-64 characters, got 65"),
        Case(bad, payment_value(transaction_id="💳" * 65), "transaction_id must have 1-64 characters, got 65"),
        Case(bad, payment_value(transaction_id="o1", customer_id="c" * 65), "customer_id must have 1-64"),
        Case(bad, payment_value(transaction_id="o2", terminal_id=""), "terminal_id must have 1-64"),
        Case(bad, payment_value(transaction_id=""), "transaction_id must have 1-64 characters, got 0"),
        # An ignored field nested deeper than the JSON decoders go: ignored, or refused for the size read when deep.
        Case("payment", nested_member(payment_value(transaction_id="deep-1"), 2_000), row=stored_payment("deep-1")),
        Case(bad, nested_member(payment_value(transaction_id="deep-2"), 100_000), "nested deeper than 1,024 levels"),
        # Not UTF-8: invalid bytes, an overlong encoding, an encoded surrogate, an escaped lone surrogate.
        Case(bad, b'{"transaction_id": "\xff\xfe", "customer_id": "c", "amount": 1}', "not valid UTF-8 JSON"),
        Case(bad, b'{"transaction_id": "\xc0\xaf", "customer_id": "c", "amount": 1}', "not valid UTF-8 JSON"),
        Case(bad, b'{"transaction_id": "\xed\xa0\x80", "customer_id": "c", "amount": 1}', "not valid UTF-8 JSON"),
        Case(bad, b'{"transaction_id": "\\ud800", "customer_id": "c", "amount": 1}', "not valid UTF-8 JSON"),
        # Integer transaction ids: any size, as the decimal string, while it has at most 64 digits.
        Case(bad, payment_value(transaction_id=10**64), "transaction_id must have 1-64 characters, got 65"),
        Case(bad, payment_value(transaction_id=1e3), "transaction_id must be a string or an integer, got float"),
        Case(bad, payment_value(transaction_id=int("9" * 400)), "beyond the range of a double"),
        valid_payment(42),
        valid_payment(2**64 + 1),
        valid_payment(-(2**70)),
        valid_payment(10**63),
        # Timestamps far away.
        Case(bad, payment_value(transaction_id="ts1", timestamp="1999-12-31T23:59:59.999999Z"), "before 2000-01-01"),
        Case(bad, payment_value(transaction_id="ts2", timestamp="0001-01-01T00:00:00+00:00"), "before 2000-01-01"),
        Case(bad, payment_value(transaction_id="ts3", timestamp="9999-12-31T23:59:59Z"), "24 h in the future"),
        Case(bad, payment_value(transaction_id="ts4", timestamp=future), "24 h in the future"),
        Case(bad, payment_value(transaction_id="ts5", timestamp=1e12), "timestamp is out of range"),
        Case(bad, payment_value(transaction_id="ts6", timestamp=-1), "before 2000-01-01"),
        Case(bad, payment_value(transaction_id="ts7", timestamp="2026-01-15T10:00:00"), "needs a UTC offset or Z"),
        Case(bad, payment_value(transaction_id="ts8", timestamp="now"), "timestamp is not ISO-8601"),
        # Valid, and stored exactly: amounts and times at the edges, every optional field.
        Case(
            "payment",
            payment_value(transaction_id="edge-1", amount=0.01, timestamp="2000-01-01T00:00:00Z"),
            row=stored_payment("edge-1", amount="0.01", event_time=dt.datetime(2000, 1, 1)),
        ),
        Case(
            "payment",
            payment_value(transaction_id="edge-2", amount=1_000_000, timestamp=soon.isoformat()),
            row=stored_payment("edge-2", amount="1000000.00", event_time=soon.astimezone(dt.UTC).replace(tzinfo=None)),
        ),
        Case(
            "payment",
            payment_value(
                transaction_id="edge-3",
                amount=123.45,
                terminal_id="T-9",
                currency="JPY",
                timestamp="2026-01-16T00:20:30.123456+14:00",
            ),
            row=stored_payment(
                "edge-3",
                amount="123.45",
                terminal_id="T-9",
                currency="JPY",
                event_time=dt.datetime(2026, 1, 15, 10, 20, 30, 123456),
            ),
        ),
        Case(
            "payment",
            payment_value(transaction_id="edge-4", amount=7, timestamp=1_768_471_200.25),
            row=stored_payment("edge-4", amount="7.00", event_time=dt.datetime(2026, 1, 15, 10, 0, 0, 250000)),
        ),
        Case(
            "payment",
            payment_value(transaction_id="edge-5", timestamp=MISSING, terminal_id=None, currency=None),
            row=stored_payment("edge-5", event_time=dt.datetime(2026, 1, 15, 10, 0, 0, 123000)),
            record_ms=record_ms,
        ),
        # Ids that collide under PAD SPACE or a case/accent-insensitive collation: all distinct.
        valid_payment("tx-pad"),
        valid_payment("tx-pad "),
        valid_payment("tx-pad  "),
        valid_payment(" tx-pad"),
        valid_payment("   "),
        valid_payment("TX-PAD"),
        valid_payment("tx-é"),
        valid_payment("tx-e\u0301"),
        # 4-byte UTF-8, control characters, NUL and SQL in every text field: stored verbatim.
        valid_payment("tx-💳-𝄞", "🏦-card-😀"),
        valid_payment("💳" * 64, "🏦" * 64),
        valid_payment("tx-\x00-nul", "c\x00\x01\x1b[31m\x7f"),
        valid_payment("tx-ctl-\t\r\n\u2028", "c\\"),
        valid_payment("tx-sql-' OR 1=1 --", "'; DROP TABLE scored_transactions; --"),
        Case(
            "payment",
            payment_value(transaction_id="tx-term", terminal_id="t\x00'; DROP TABLE transaction_labels; --"),
            row=stored_payment("tx-term", terminal_id="t\x00'; DROP TABLE transaction_labels; --"),
        ),
        # The same transaction_id twice with different content: the one first in event time stands, the other
        # goes to the DLQ, whichever was read first; the same content again is silently ignored.
        valid_payment("tx-dup", "c-first"),
        Case(
            "payment",
            payment_value(
                transaction_id="tx-dup", customer_id="c-second", amount=99.0, timestamp="2026-01-15T10:00:01Z"
            ),
            DUPLICATE,
        ),
        Case("payment", payment_value(transaction_id="tx-dup2", timestamp="2026-01-15T10:00:05Z"), DUPLICATE),
        Case(
            "payment",
            payment_value(transaction_id="tx-dup2", amount=5.0),
            row=stored_payment("tx-dup2", amount="5.00"),
        ),
        Case("payment", payment_value(transaction_id="tx-dup2", amount=5.0)),
        # Labels: for unknown payments (stored: a label may come first), exotic ids, invalid ones.
        Case("label", label("ghost-1"), row=stored_label("ghost-1", True)),
        Case("label", label("tx-pad", 0), row=stored_label("tx-pad", False)),
        Case("label", label("tx-pad ", 1), row=stored_label("tx-pad ", True)),
        Case("label", label(2**65, False), row=stored_label(str(2**65), False)),
        Case("label", label("🏦\x00'--"), row=stored_label("🏦\x00'--", True)),
        Case("label", None, "label has no value"),
        Case("label", b"[1]", "label must be a JSON object"),
        Case("label", label("l1", 2), "is_fraud must be true, false, 0 or 1"),
        Case("label", label("l2", "yes"), "is_fraud must be true, false, 0 or 1"),
        Case("label", label("l3", MISSING), "is_fraud is required"),
        Case("label", label(10**64), "transaction_id must have 1-64 characters, got 65"),
        Case("label", label("l4", labelled_at="2026-01-01 00:00"), "labelled_at needs a UTC offset or Z"),
        Case("label", label("l5", labelled_at=future), "labelled_at is more than 24 h in the future"),
        Case("label", label("l6", pad="x" * (MAX_MESSAGE_BYTES + 1)), "label value too large"),
    ]


@pytest.mark.integration
def test_a_hostile_corpus_is_stored_exactly_or_dead_lettered(
    kafka_bootstrap: str, mysql_database: str, topic_names: dict[str, str], corpus_model_dir: Path
) -> None:
    cases = hostile_corpus(dt.datetime.now(dt.UTC))
    run = run_corpus(cases, kafka_bootstrap, topic_names, mysql_database, corpus_model_dir)
    assert_corpus_outcome(cases, run, topic_names)


TEN_MB = 10 * 1024 * 1024


@pytest.mark.integration
def test_the_platform_producer_refuses_a_10_mb_payment(kafka_bootstrap: str, topic_names: dict[str, str]) -> None:
    """Kafka clients cap a message at `message.max.bytes` (~1 MB): the sender gets the error, at once."""
    ensure_topics(kafka_bootstrap, topic_names.values())
    producer = payment_producer(kafka_bootstrap)
    with pytest.raises(KafkaException, match="MSG_SIZE_TOO_LARGE"):
        producer.produce(topic_names["payment_topic"], key=b"c", value=payment_value(pad="x" * TEN_MB))
    assert producer.flush(10) == 0


@pytest.mark.integration
def test_a_10_mb_payment_past_a_permissive_broker_is_dead_lettered(
    kafka_bootstrap: str, mysql_database: str, topic_names: dict[str, str], corpus_model_dir: Path
) -> None:
    """The embedded broker has no size limit: a producer with a raised limit gets 10 MB through."""
    ensure_topics(kafka_bootstrap, topic_names.values())
    producer = payment_producer(kafka_bootstrap, **{"message.max.bytes": 2 * TEN_MB})
    topic = topic_names["payment_topic"]
    producer.produce(topic, key=b"huge", value=payment_value(transaction_id="huge", pad="x" * TEN_MB), partition=0)
    producer.produce(topic, key=b"after", value=payment_value(transaction_id="after"), partition=0)
    assert producer.flush(30) == 0

    group = f"huge-{topic}"
    setup = ScorerConfig(
        bootstrap=kafka_bootstrap,
        consumer_group=group,
        db_url=mysql_database,
        model_dir=corpus_model_dir,
        **topic_names,
    )
    stats = run_scorer(setup, idle_timeout_s=3)

    assert (stats.consumed, stats.invalid, stats.scored) == (2, 1, 1)
    (dead,) = read_topic(kafka_bootstrap, topic_names["dlq_topic"], 1)
    assert dead.key() == b"huge"
    assert dict(dead.headers() or [])["error"].startswith(b"payment value too large")
