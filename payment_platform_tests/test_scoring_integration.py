"""The streaming scorer end to end on the real broker and the real MariaDB (CONTRACTS §1, §2, §4)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from confluent_kafka import Consumer, TopicPartition

from payment_platform.kafka.clients import ensure_topics, payment_producer
from payment_platform.sources.feed import PaymentFeed
from payment_platform.stream.runner import run_scorer
from payment_platform.world import World
from payment_platform_tests.conftest import scorer_config

pytestmark = pytest.mark.integration

VALID, INVALID = 19_800, 200


def invalid_values(n: int) -> list[bytes | None]:
    """Messages that break the payment contract in varied ways."""
    now = dt.datetime.now(dt.UTC)
    variants: list[bytes | None] = [
        b"not json",
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
        b'"a string"',
        b"{}",
        orjson.dumps({"customer_id": "C1", "amount": 10.0}),
        orjson.dumps({"transaction_id": "", "customer_id": "C1", "amount": 10.0}),
        orjson.dumps({"transaction_id": "x" * 65, "customer_id": "C1", "amount": 10.0}),
        orjson.dumps({"transaction_id": True, "customer_id": "C1", "amount": 10.0}),
        orjson.dumps({"transaction_id": "bad-1", "amount": 10.0}),
        orjson.dumps({"transaction_id": "bad-2", "customer_id": 17, "amount": 10.0}),
        orjson.dumps({"transaction_id": "bad-3", "customer_id": "C1"}),
        orjson.dumps({"transaction_id": "bad-4", "customer_id": "C1", "amount": "10"}),
        orjson.dumps({"transaction_id": "bad-5", "customer_id": "C1", "amount": -5}),
        orjson.dumps({"transaction_id": "bad-6", "customer_id": "C1", "amount": -0.01}),
        orjson.dumps({"transaction_id": "bad-7", "customer_id": "C1", "amount": 2_000_000}),
        b'{"transaction_id": "bad-8", "customer_id": "C1", "amount": NaN}',
        orjson.dumps({"transaction_id": "bad-9", "customer_id": "C1", "amount": 5, "currency": "eur"}),
        orjson.dumps({"transaction_id": "bad-10", "customer_id": "C1", "amount": 5, "timestamp": "yesterday"}),
        orjson.dumps(
            {"transaction_id": "bad-11", "customer_id": "C1", "amount": 5, "timestamp": "2026-01-01T00:00:00"}
        ),
        orjson.dumps(
            {"transaction_id": "bad-12", "customer_id": "C1", "amount": 5, "timestamp": "1999-12-31T23:00:00Z"}
        ),
        orjson.dumps(
            {
                "transaction_id": "bad-13",
                "customer_id": "C1",
                "amount": 5,
                "timestamp": (now + dt.timedelta(days=3)).isoformat(),
            }
        ),
        orjson.dumps({"transaction_id": "bad-14", "customer_id": "C1", "amount": 5, "terminal_id": ""}),
        None,
    ]
    values = []
    for i in range(n):
        value = variants[i % len(variants)]
        # Keep ids unique so a valid-looking id never collides with a real payment.
        values.append(value.replace(b'"bad-', f'"bad{i}-'.encode()) if value else value)
    return values


def produce_scenario(bootstrap: str, topics: dict[str, str]) -> None:
    """19,800 valid payments of the synthetic world and 200 invalid ones, interleaved."""
    ensure_topics(bootstrap, topics.values())
    producer = payment_producer(bootstrap)
    feed = PaymentFeed(producer, topics["payment_topic"], topics["labels_topic"], label_delay_days=-1)
    payments = World(seed=5, n_cards=3_000).days(dt.date(2026, 11, 20), dt.date(2026, 11, 24)).iloc[:VALID]
    assert len(payments) == VALID
    bad = invalid_values(INVALID)
    step = VALID // INVALID
    for i in range(INVALID):
        feed.send(payments.iloc[i * step : (i + 1) * step])
        producer.produce(topics["payment_topic"], key=f"C-bad-{i}".encode(), value=bad[i])
    feed.flush()


def read_topic(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0) -> list:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"reader-{topic}", "auto.offset.reset": "earliest"}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(4)])
    messages: list = []
    deadline = dt.datetime.now() + dt.timedelta(seconds=timeout_s)
    while len(messages) < expected and dt.datetime.now() < deadline:
        messages += [m for m in consumer.consume(1000, 0.5) if not m.error()]
    extra = [m for m in consumer.consume(1000, 1.0) if not m.error()]
    consumer.close()
    return messages + extra


scorer_setup = scorer_config


def test_20k_payments_scored_exactly_once(
    kafka_bootstrap: str, mysql_database: str, topic_names: dict[str, str], model_dir: Path
) -> None:
    produce_scenario(kafka_bootstrap, topic_names)
    setup = scorer_setup(
        kafka_bootstrap, topic_names, mysql_database, model_dir, f"scorer-{topic_names['payment_topic']}"
    )

    stats = run_scorer(setup, max_messages=VALID + INVALID, idle_timeout_s=15)

    assert stats.consumed == VALID + INVALID
    assert stats.invalid == INVALID
    assert stats.decisions == VALID
    engine = sa.create_engine(mysql_database)
    with engine.connect() as conn:
        rows, distinct, bad_status, versions = conn.execute(
            sa.text(
                "SELECT COUNT(*), COUNT(DISTINCT transaction_id), "
                "SUM(status NOT IN ('APPROVED','REVIEW','DECLINED')), COUNT(DISTINCT model_version) "
                "FROM scored_transactions"
            )
        ).one()
        flagged = conn.execute(sa.text("SELECT COUNT(*) FROM scored_transactions WHERE status <> 'APPROVED'")).scalar()
        unexplained = conn.execute(
            sa.text("SELECT COUNT(*) FROM scored_transactions WHERE status <> 'APPROVED' AND reasons = ''")
        ).scalar()
    assert (rows, distinct, bad_status, versions) == (VALID, VALID, 0, 1)
    assert 0 < flagged < VALID * 0.1
    assert unexplained == 0

    dlq = read_topic(kafka_bootstrap, topic_names["dlq_topic"], INVALID)
    assert len(dlq) == INVALID
    for message in dlq:
        headers = dict(message.headers())
        assert headers["error"] and b"\n" not in headers["error"]
        assert headers["source.topic"].decode() == topic_names["payment_topic"]
        assert int(headers["source.offset"]) >= 0
    assert sum(b"amount" in dict(m.headers())["error"] for m in dlq) > 15

    # One decision per stored row, equal to it (CONTRACTS §1, Decision), keyed by customer_id.
    decisions = read_topic(kafka_bootstrap, topic_names["decisions_topic"], VALID)
    with engine.connect() as conn:
        stored = {
            row.transaction_id: row
            for row in conn.execute(
                sa.text(
                    "SELECT transaction_id, customer_id, status, score, reasons, model_version, event_time, scored_at "
                    "FROM scored_transactions"
                )
            )
        }
    assert len(decisions) == VALID
    for message in decisions:
        decision = orjson.loads(message.value())
        row = stored[decision["transaction_id"]]
        assert message.key() == row.customer_id.encode()
        assert decision == {
            "transaction_id": row.transaction_id,
            "customer_id": row.customer_id,
            "status": row.status,
            "score": row.score,
            "reasons": row.reasons.split(",") if row.reasons else [],
            "model_version": row.model_version,
            "event_time": row.event_time.isoformat(timespec="microseconds") + "Z",
            "decided_at": row.scored_at.isoformat(timespec="microseconds") + "Z",
        }

    # Every consumed offset is committed: a second run in the same group finds nothing to do.
    again = run_scorer(setup, idle_timeout_s=8)
    assert again.consumed == 0
    # Replaying the whole topic in a fresh group writes no new row: rows are idempotent, and each stored
    # decision is sent again, identical.
    replay = scorer_setup(kafka_bootstrap, topic_names, mysql_database, model_dir, "replay-" + topic_names["dlq_topic"])
    replayed = run_scorer(replay, max_messages=VALID + INVALID, idle_timeout_s=15)
    assert replayed.consumed == VALID + INVALID and replayed.scored == 0 and replayed.duplicates == VALID
    again_decisions = read_topic(kafka_bootstrap, topic_names["decisions_topic"], 2 * VALID)
    assert sorted(m.value() for m in again_decisions) == sorted([m.value() for m in decisions] * 2)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM scored_transactions")).scalar() == VALID
    engine.dispose()


def test_committed_offsets_cover_every_message(
    kafka_bootstrap: str, mysql_database: str, topic_names: dict[str, str], model_dir: Path
) -> None:
    produce_scenario(kafka_bootstrap, topic_names)
    group = f"offsets-{topic_names['payment_topic']}"
    run_scorer(
        scorer_setup(kafka_bootstrap, topic_names, mysql_database, model_dir, group),
        max_messages=VALID + INVALID,
        idle_timeout_s=15,
    )
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group, "enable.auto.commit": False})
    committed = consumer.committed([TopicPartition(topic_names["payment_topic"], p) for p in range(4)], timeout=10)
    consumer.close()
    # Counted against what was produced: this broker's watermarks may lag the real end.
    assert sum(tp.offset for tp in committed) == VALID + INVALID


def test_score_without_a_promoted_model_says_to_train(tmp_path: Path) -> None:
    env = {"PAYMENT_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "payment_platform.cli", "score", "--idle-timeout-s", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "train" in last and last.startswith("payment-platform score:")
