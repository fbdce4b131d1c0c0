"""The reference measurements: the consume and insert ceilings, the naive per-message consumer, latencies."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pymysql
import sqlalchemy as sa
from confluent_kafka import TopicPartition

from payment_platform.features import FEATURE_NAMES, FeatureState
from payment_platform.kafka.clients import scorer_consumer
from payment_platform.store.rows import SCORED_COLUMNS
from payment_platform.stream.decisions import DecisionPolicy, decide, evaluate_rules
from payment_platform.stream.model_source import ScoringModel
from payment_platform.stream.validation import InvalidMessage, parse_payment

INSERT_BATCH = 5_000
_COLUMNS = ", ".join(SCORED_COLUMNS)
_INSERT = f"INSERT IGNORE INTO scored_transactions ({_COLUMNS}) VALUES ({', '.join(['%s'] * len(SCORED_COLUMNS))})"


def connect(url: str, **options: Any) -> pymysql.Connection:
    """A plain PyMySQL connection to the database of a SQLAlchemy URL (no pool, no ORM)."""
    parsed = sa.make_url(url)
    return pymysql.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 3306,
        user=parsed.username or "root",
        password=parsed.password or "",
        database=parsed.database,
        charset="utf8mb4",
        autocommit=False,
        **options,
    )


def consume_ceiling(bootstrap: str, topic: str, partitions: int, total: int, progress: Callable[[int], None]) -> float:
    """Messages/s of consuming the topic with the scorer's client settings, doing nothing with them."""
    consumer = scorer_consumer(bootstrap, f"bench-ceiling-{time.time_ns()}")
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    received = uncounted = 0
    first = 0.0
    try:
        called = time.monotonic()
        deadline = called + 300
        while received < total and time.monotonic() < deadline:
            received += sum(1 for m in consumer.consume(10_000, 1.0) if m.error() is None)
            if received and not first:  # the first fetch's round trip is not throughput
                first, uncounted = time.monotonic(), received
            progress(received)
        ended = time.monotonic()
    finally:
        consumer.close()
    if received > uncounted:
        return (received - uncounted) / (ended - first)
    return received / (ended - called)  # all of it came in the first fetch


def scored_rows(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """The rows the scorer would store for a payment frame (decision fields fixed), as tuples in column order."""
    event_times = frame["event_time"].dt.tz_convert("UTC").dt.tz_localize(None).dt.to_pydatetime().tolist()
    scored_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return [
        (tx, card, terminal, round(amount, 2), currency, event_time, 0.0123, "APPROVED", "", "bench", scored_at, 0, i)
        for i, (tx, card, terminal, amount, currency, event_time) in enumerate(
            zip(
                frame["transaction_id"].tolist(),
                frame["customer_id"].tolist(),
                frame["terminal_id"].tolist(),
                frame["amount"].tolist(),
                frame["currency"].tolist(),
                event_times,
                strict=True,
            )
        )
    ]


def insert_executemany(url: str, rows: Sequence[tuple[Any, ...]], progress: Callable[[int], None]) -> float:
    """Rows/s of PyMySQL executemany (rewritten into multi-row INSERTs), one commit per 5,000 rows."""
    conn = connect(url)
    try:
        started = time.monotonic()
        with conn.cursor() as cursor:
            for first in range(0, len(rows), INSERT_BATCH):
                cursor.executemany(_INSERT, rows[first : first + INSERT_BATCH])
                conn.commit()
                progress(first + INSERT_BATCH)
        return len(rows) / (time.monotonic() - started)
    finally:
        conn.close()


def _tsv_field(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat(" ")
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def insert_load_data(url: str, rows: Sequence[tuple[Any, ...]], progress: Callable[[int], None]) -> float:
    """Rows/s of LOAD DATA LOCAL INFILE, 5,000 rows per file and commit. The files' text is made before
    the clock starts (as the consume ceiling parses nothing): this is the database's rate, not Python's."""
    conn = connect(url, local_infile=True)
    chunks = [
        "".join("\t".join(map(_tsv_field, row)) + "\n" for row in rows[first : first + INSERT_BATCH]).encode()
        for first in range(0, len(rows), INSERT_BATCH)
    ]
    directory = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    fd, path = tempfile.mkstemp(suffix=".tsv", dir=directory)
    os.close(fd)
    statement = f"LOAD DATA LOCAL INFILE %s IGNORE INTO TABLE scored_transactions ({_COLUMNS})"
    try:
        started = time.monotonic()
        with conn.cursor() as cursor:
            for index, chunk in enumerate(chunks):
                with open(path, "wb") as out:
                    out.write(chunk)
                cursor.execute(statement, (path,))
                conn.commit()
                progress((index + 1) * INSERT_BATCH)
        return len(rows) / (time.monotonic() - started)
    finally:
        conn.close()
        os.unlink(path)


def truncate_scored(url: str) -> None:
    conn = connect(url)
    try:
        with conn.cursor() as cursor:
            cursor.execute("TRUNCATE TABLE scored_transactions")
        conn.commit()
    finally:
        conn.close()


def count_scored(url: str, like: str = "%") -> int:
    conn = connect(url)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM scored_transactions WHERE transaction_id LIKE %s", (like,))
            return int(cursor.fetchone()[0])
    finally:
        conn.close()


def naive_consumer(
    bootstrap: str,
    topic: str,
    partitions: int,
    url: str,
    model: ScoringModel,
    *,
    max_messages: int,
    max_seconds: float,
    progress: Callable[[int], None],
) -> tuple[int, float]:
    """Messages/s of the one-at-a-time consumer: poll one, featurise, score, decide, insert, commit each."""
    consumer = scorer_consumer(bootstrap, f"bench-naive-{time.time_ns()}")
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    conn = connect(url)
    state = FeatureState()
    policy = DecisionPolicy(model.review_threshold, model.decline_threshold)
    index = {name: i for i, name in enumerate(FEATURE_NAMES)}
    handled = 0
    try:
        started = time.monotonic()
        with conn.cursor() as cursor:
            while handled < max_messages and time.monotonic() - started < max_seconds:
                message = consumer.poll(1.0)
                if message is None or message.error() is not None:
                    continue
                handled += 1
                try:
                    payment = parse_payment(message.value(), message.timestamp()[1] * 1_000, time.time_ns() // 1_000)
                except InvalidMessage:
                    consumer.commit(message, asynchronous=False)
                    continue
                event_time = pd.Timestamp(payment.event_us, unit="us", tz="UTC")
                features = state.featurise(
                    pd.DataFrame(
                        {
                            "transaction_id": [payment.transaction_id],
                            "customer_id": [payment.customer_id],
                            "terminal_id": [payment.terminal_id],
                            "amount": [payment.amount],
                            "currency": [payment.currency],
                            "event_time": [event_time],
                        }
                    )
                )
                score = model.predict_proba(features[:, model.feature_index])
                rules = evaluate_rules(
                    policy,
                    score,
                    np.array([payment.amount]),
                    *(
                        features[:, index[name]]
                        for name in ("card_count_10m", "card_count_1h", "card_count_30d", "amount_to_card_mean_30d")
                    ),
                )
                decision = decide(rules, 1)
                cursor.execute(
                    _INSERT,
                    (
                        payment.transaction_id,
                        payment.customer_id,
                        payment.terminal_id,
                        round(payment.amount, 2),
                        payment.currency,
                        event_time.tz_localize(None).to_pydatetime(),
                        float(score[0]),
                        decision.status[0],
                        decision.reasons[0],
                        model.version,
                        dt.datetime.now(dt.UTC).replace(tzinfo=None),
                        message.partition(),
                        message.offset(),
                    ),
                )
                conn.commit()
                consumer.commit(message, asynchronous=False)
                progress(handled)
        elapsed = time.monotonic() - started
    finally:
        conn.close()
        consumer.close()
    return handled, handled / elapsed


def latencies_ms(url: str, id_prefix: str) -> np.ndarray:
    """scored_at − event time of the rows of one paced run, in milliseconds."""
    rows = _run_rows(url, _LATENCIES, id_prefix)
    return np.array([row[0] for row in rows], dtype=np.float64) / 1_000


def delays_after_due(url: str, id_prefix: str, started_s: float, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """scored_at − due time (ms) of the rows of a paced run whose payment n was due at started_s + n / rate,
    with the minute of the run each was due in: the wait a payment had, whatever its event time."""
    rows = _run_rows(url, _SCORED_AT_US, id_prefix)
    n = np.array([int(row[0][len(id_prefix) :]) for row in rows], dtype=np.float64)
    scored_s = np.array([row[1] for row in rows], dtype=np.float64) / 1e6
    due_s = n / rate
    return (scored_s - started_s - due_s) * 1_000, (due_s // 60).astype(np.int64)


_LATENCIES = (
    "SELECT TIMESTAMPDIFF(MICROSECOND, event_time, scored_at) FROM scored_transactions WHERE transaction_id LIKE %s"
)
_SCORED_AT_US = (
    "SELECT transaction_id, TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', scored_at) "
    "FROM scored_transactions WHERE transaction_id LIKE %s"
)


def _run_rows(url: str, query: str, id_prefix: str) -> list[tuple[Any, ...]]:
    """The rows a query (one of the constants above) selects from one run's rows, told apart by id prefix."""
    conn = connect(url)
    try:
        with conn.cursor() as cursor:
            cursor.execute(query, (id_prefix + "%",))
            return list(cursor.fetchall())
    finally:
        conn.close()
