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

from payment_platform.features import OnlineFeatures
from payment_platform.features.definitions import seconds
from payment_platform.kafka.clients import scorer_consumer
from payment_platform.store.rows import SCORED_COLUMNS
from payment_platform.store.tables import (
    label_events,
    scored_transactions,
    scorer_status,
    stream_progress,
    transaction_labels,
)
from payment_platform.stream.decisions import score_and_decide
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
    columns = {
        "transaction_id": frame["transaction_id"].tolist(),
        "customer_id": frame["customer_id"].tolist(),
        "terminal_id": frame["terminal_id"].tolist(),
        "amount": [round(amount, 2) for amount in frame["amount"].tolist()],
        "currency": frame["currency"].tolist(),
        "event_time": event_times,
        "score": [0.0123] * len(frame),
        "status": ["APPROVED"] * len(frame),
        "reasons": [""] * len(frame),
        "model_version": ["bench"] * len(frame),
        "scored_at": [scored_at] * len(frame),
        "kafka_partition": [0] * len(frame),
        "kafka_offset": list(range(len(frame))),
        "shard": [0] * len(frame),
    }
    return list(zip(*(columns[name] for name in SCORED_COLUMNS), strict=True))


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
    """Empty the tables the scorer reads back: a new scorer restores card state and reads terminal windows
    and labels from the store, so a run must not find the rows, labels or progress of the one before."""
    conn = connect(url)
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"TRUNCATE TABLE {scored_transactions.name}")
            cursor.execute(f"TRUNCATE TABLE {label_events.name}")
            cursor.execute(f"TRUNCATE TABLE {transaction_labels.name}")
            cursor.execute(f"TRUNCATE TABLE {stream_progress.name}")
            cursor.execute(f"TRUNCATE TABLE {scorer_status.name}")
        conn.commit()
    finally:
        conn.close()


def count_scored(url: str, like: str = "%") -> int:
    conn = connect(url)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM scored_transactions WHERE transaction_id LIKE %s", (like,))
            row = cursor.fetchone()
            return int(row[0]) if row else 0
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
    """Messages/s of the one-at-a-time consumer: poll one, featurise, score, decide, insert, commit each.

    It keeps its terminal state from the payments it reads itself (no store read-back, no shared
    watermark): the baseline is the per-message pattern the platform replaces, not its design."""
    consumer = scorer_consumer(bootstrap, f"bench-naive-{time.time_ns()}")
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    conn = connect(url)
    features = OnlineFeatures()
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
                    consumer.commit(message=message, asynchronous=False)
                    continue
                t_ms = np.array([payment.event_us // 1_000])
                amount = np.array([payment.amount])
                matrix = features.featurise([payment.customer_id], [payment.terminal_id], t_ms, amount)
                features.terminals.add_payments([payment.terminal_id], [seconds(int(t_ms[0]))])
                score, decision = score_and_decide(model, matrix, amount)
                event_time = dt.datetime.fromtimestamp(payment.event_us / 1e6, dt.UTC).replace(tzinfo=None)
                row = {
                    "transaction_id": payment.transaction_id,
                    "customer_id": payment.customer_id,
                    "terminal_id": payment.terminal_id,
                    "amount": round(payment.amount, 2),
                    "currency": payment.currency,
                    "event_time": event_time,
                    "score": float(score[0]),
                    "status": decision.status[0],
                    "reasons": decision.reasons[0],
                    "model_version": model.version,
                    "scored_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
                    "kafka_partition": message.partition(),
                    "kafka_offset": message.offset(),
                    "shard": message.partition(),
                }
                cursor.execute(_INSERT, tuple(row[name] for name in SCORED_COLUMNS))
                conn.commit()
                consumer.commit(message=message, asynchronous=False)
                progress(handled)
        elapsed = time.monotonic() - started
    finally:
        conn.close()
        consumer.close()
    return handled, handled / elapsed


def scored_at_s(url: str, id_prefix: str) -> dict[int, float]:
    """When each row of one paced run was stamped written (scored_at, epoch seconds), by payment number n
    of its transaction id `<id_prefix><n>`."""
    conn = connect(url)
    try:
        with conn.cursor() as cursor:
            cursor.execute(_SCORED_AT_US, (id_prefix + "%",))
            rows = cursor.fetchall()
    finally:
        conn.close()
    return {int(tx[len(id_prefix) :]): int(us) / 1e6 for tx, us in rows}


_SCORED_AT_US = (
    "SELECT transaction_id, TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', scored_at) "
    "FROM scored_transactions WHERE transaction_id LIKE %s"
)
