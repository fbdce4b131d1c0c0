"""Reliability at the edges, on the real broker and MariaDB: what a hostile or careless world does to a live
scorer (issue: reliability and security at the edges). Each test pins one finding:
- dead letters are confirmed by the broker before their offsets are committed;
- a flood of old labels does not hold payments back;
- a table lock is waited out, in log lines, and SIGTERM is still honoured within 10 s;
- a revoked privilege or a dropped column stops the scorer in one line, exit code 1, commits held;
- labels for payments that never come cost no memory, and are counted.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pymysql
import pytest
import sqlalchemy as sa
from confluent_kafka import Consumer, Message, TopicPartition

from payment_platform.kafka.clients import ensure_topics, payment_producer
from payment_platform.kafka.embedded_broker import start_embedded_broker, stop_embedded_broker
from payment_platform.settings import Settings
from payment_platform.sources.feed import PaymentFeed
from payment_platform.store.database import connect_store
from payment_platform.stream.config import ScorerConfig
from payment_platform.stream.records import PaymentBatch, decode
from payment_platform.stream.runner import build_scorer
from payment_platform.world import World
from payment_platform_tests.conftest import free_port, scorer_cli_env, scorer_config, service_missing, wait_until
from payment_platform_tests.test_security import scorer_account  # noqa: F401 - a fixture

pytestmark = pytest.mark.integration


def invalid(i: int) -> bytes:
    return orjson.dumps({"transaction_id": f"bad-{i}", "customer_id": "c", "amount": -1})


class StoppingConsumer:
    """The scorer's consumer, which freezes the broker (SIGSTOP) as soon as it hands over an invalid
    payment: the dead letters then cannot be delivered until the broker is thawed."""

    def __init__(self, inner: Consumer, broker: subprocess.Popen[bytes], topic: str, expected: int) -> None:
        self.inner, self.broker, self.topic, self.expected = inner, broker, topic, expected
        self.seen = 0
        self.frozen = threading.Event()

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        messages = self.inner.consume(num_messages, timeout)
        self.seen += sum(1 for m in messages if m.error() is None and m.topic() == self.topic)
        if self.seen >= self.expected and not self.frozen.is_set():
            os.kill(self.broker.pid, signal.SIGSTOP)
            self.frozen.set()
        return messages

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_dead_letters_are_delivered_before_their_offsets_commit(
    mysql_database: str, topic_names: dict[str, str], model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With the broker frozen right after the scorer read 50 invalid payments, their dead letters fail to
    deliver: they are sent again with backoff, offsets held; once it is back, all 50 reach the DLQ."""
    port = free_port()
    try:
        broker = start_embedded_broker(port=port, log_path=tmp_path / "broker.log")
    except Exception as exc:  # noqa: BLE001
        service_missing(f"embedded Kafka broker could not start: {exc}")
    bootstrap = f"127.0.0.1:{port}"
    try:
        ensure_topics(bootstrap, topic_names.values())
        producer = payment_producer(bootstrap)
        for i in range(50):
            producer.produce(topic_names["payment_topic"], invalid(i), f"c-{i}".encode(), partition=i % 4)
        assert producer.flush(10) == 0
        config = scorer_config(
            bootstrap,
            topic_names,
            mysql_database,
            model_dir,
            f"dlq-{topic_names['dlq_topic']}",
            delivery_timeout_ms=1_500,
        )
        scorer = build_scorer(config)
        frozen = StoppingConsumer(scorer.consumer, broker, config.payment_topic, 1)
        scorer.consumer = frozen  # type: ignore[assignment]
        caplog.set_level(logging.WARNING, logger="payment_platform.kafka.delivery")
        stop = threading.Event()
        result: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: result.update(stats=scorer.run(should_stop=stop.is_set)))
        thread.start()
        try:
            assert frozen.frozen.wait(60), "the scorer never read the invalid payments"
            assert wait_until(lambda: "not delivered" in caplog.text, 20), "no delivery failure was reported"
            time.sleep(2)  # a retry or two against the frozen broker
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        # Back: every dead letter reaches the DLQ, and only then are the offsets committed.
        # At least once: a record the frozen broker had already taken may come twice.
        expected = {f"bad-{i}" for i in range(50)}
        assert dead_lettered(bootstrap, topic_names["dlq_topic"], expected) == expected
        assert wait_until(lambda: committed(bootstrap, config.consumer_group, config.payment_topic) == 50, 30)
        stop.set()
        thread.join(60)
        assert not thread.is_alive() and result["stats"].invalid == 50
        failures = [r.getMessage() for r in caplog.records if "not delivered" in r.getMessage()]
        assert failures and all("offsets held" in line and "\n" not in line for line in failures)
    finally:
        os.kill(broker.pid, signal.SIGCONT)
        stop_embedded_broker(broker, timeout_s=1)


def dead_lettered(bootstrap: str, topic: str, expected: set[str], timeout_s: float = 60) -> set[str]:
    """The transactions in a DLQ topic, read until all expected ones are there (or the time is up)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"dlq-reader-{time.time_ns()}"})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(4)])
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while not expected <= seen and time.monotonic() < deadline:
            seen |= {orjson.loads(m.value())["transaction_id"] for m in consumer.consume(1000, 0.5) if not m.error()}
    finally:
        consumer.close()
    return seen


def committed(bootstrap: str, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        offsets = consumer.committed([TopicPartition(topic, p) for p in range(4)], timeout=10)
    finally:
        consumer.close()
    return sum(max(tp.offset, 0) for tp in offsets)


def payments_committed(bootstrap: str, group: str, topic: str) -> int:
    """Payments of the card-keyed topic that the group's committed offsets cover (its watermark records
    carry none: committing past one loses nothing)."""
    owner = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        ends = owner.committed([TopicPartition(topic, p) for p in range(4)], timeout=10)
    finally:
        owner.close()
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{group}-reader", "enable.auto.commit": False})
    try:
        covered = 0
        for end in ends:
            if end.offset <= 0:
                continue
            consumer.assign([TopicPartition(topic, end.partition, 0)])
            read = 0
            while read < end.offset:
                message = consumer.poll(5)
                assert message is not None and message.error() is None
                read += 1
                record = decode(message.value())
                if isinstance(record, PaymentBatch):
                    covered += len(record.payments)
        return covered
    finally:
        consumer.close()


def test_a_flood_of_old_labels_does_not_hold_payments_back(
    kafka_bootstrap: str, mysql_database: str, topic_names: dict[str, str], model_dir: Path
) -> None:
    """Live payments at 20/s beside 200 labels/s dated 10 days back, for transactions never seen: payments
    are decided as fast as without the flood (it took 30 s at p99 when labels held the event time)."""
    ensure_topics(kafka_bootstrap, topic_names.values())
    config = scorer_config(
        kafka_bootstrap, topic_names, mysql_database, model_dir, f"flood-{topic_names['labels_topic']}"
    )
    scorer = build_scorer(config)
    stop = threading.Event()
    thread = threading.Thread(target=lambda: scorer.run(should_stop=stop.is_set))
    thread.start()
    try:
        assert wait_until(lambda: scorer._assigned_at is not None, 60)
        producer = payment_producer(kafka_bootstrap)
        sent_at: dict[str, float] = {}
        old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=10)).isoformat()
        started = time.monotonic()
        for tick in range(200):  # 10 s: 20 payments/s and 200 labels/s
            now = time.time()
            if tick % 10 == 0:
                for k in range(20):
                    tx = f"live-{tick}-{k}"
                    stamp = dt.datetime.fromtimestamp(now, dt.UTC).isoformat()
                    value = orjson.dumps(
                        {"transaction_id": tx, "customer_id": f"c{k}", "amount": 12.5, "timestamp": stamp}
                    )
                    producer.produce(config.payment_topic, value, f"c{k}".encode())
                    sent_at[tx] = now
            for k in range(20):
                label = {"transaction_id": f"ghost-{tick}-{k}", "is_fraud": True, "labelled_at": old}
                producer.produce(config.labels_topic, orjson.dumps(label), f"ghost-{tick}-{k}".encode())
            producer.poll(0)
            time.sleep(max(0.0, started + (tick + 1) * 0.05 - time.monotonic()))
        producer.flush(10)
        assert wait_until(lambda: scorer.stats.scored >= len(sent_at), 60)
    finally:
        stop.set()
        thread.join(60)
    engine = sa.create_engine(mysql_database)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT transaction_id, scored_at FROM scored_transactions")).all()
    engine.dispose()
    latencies = np.array([(at.replace(tzinfo=dt.UTC).timestamp() - sent_at[tx]) * 1000 for tx, at in rows])
    assert len(latencies) == len(sent_at)
    assert np.percentile(latencies, 99) < 1_000, f"p99 {np.percentile(latencies, 99):.0f} ms with the flood"


def least_privilege_url(account: dict[str, str], server_url: str) -> str:
    server = sa.make_url(server_url)
    return sa.URL.create(
        "mysql+pymysql",
        username=account["PAYMENT_DB_USER"],
        password=account["PAYMENT_DB_PASSWORD"],
        host=server.host,
        port=server.port,
        database=account["PAYMENT_DB_NAME"],
    ).render_as_string(hide_password=False)


def admin_connection(server_url: str, database: str) -> pymysql.Connection:
    server = sa.make_url(server_url)
    return pymysql.connect(
        host=server.host or "127.0.0.1",
        port=server.port or 3306,
        user=server.username or "root",
        password=server.password or "",
        database=database,
        autocommit=True,
    )


def start_cli_scorer(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "payment_platform.cli", "score", "--batch-size", "500"]
    with open(log, "ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def send_day(bootstrap: str, topics: dict[str, str], day: dt.date, seed: int) -> int:
    payments = World(seed=seed, n_cards=500).day(day)
    ensure_topics(bootstrap, topics.values())
    feed = PaymentFeed(payment_producer(bootstrap), topics["payment_topic"], topics["labels_topic"], -1)
    feed.send(payments)
    feed.flush()
    return len(payments)


def count_rows(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT COUNT(*) FROM scored_transactions")).scalar() or 0)
    finally:
        engine.dispose()


def test_a_locked_table_is_waited_out_in_log_lines_and_sigterm_still_stops_within_10_s(
    kafka_bootstrap: str,
    mysql_server_url: str,
    scorer_account: dict[str, str],  # noqa: F811
    topic_names: dict[str, str],
    model_dir: Path,
    tmp_path: Path,
) -> None:
    url = least_privilege_url(scorer_account, mysql_server_url)
    admin = admin_connection(mysql_server_url, scorer_account["PAYMENT_DB_NAME"])
    connect_store(admin_url(mysql_server_url, scorer_account)).dispose()  # the tables
    (tmp_path / "models").symlink_to(model_dir)
    env = scorer_cli_env(tmp_path, kafka_bootstrap, url, f"lock-{topic_names['payment_topic']}", topic_names)
    sent = send_day(kafka_bootstrap, topic_names, dt.date(2026, 9, 1), seed=41)
    log = tmp_path / "scorer.log"
    with admin.cursor() as cursor:
        cursor.execute("LOCK TABLES scored_transactions WRITE")
        process = start_cli_scorer(env, log)
        try:
            assert wait_until(lambda: "Lock wait timeout" in log.read_text(errors="replace"), 90), log.read_text()
            process.send_signal(signal.SIGTERM)
            began = time.monotonic()
            process.wait(30)
            took = time.monotonic() - began
        finally:
            cursor.execute("UNLOCK TABLES")
            if process.poll() is None:
                process.kill()
    admin.close()
    text = log.read_text(errors="replace")
    assert took <= 10, f"SIGTERM took {took:.1f}s with the table locked"
    retries = [line for line in text.splitlines() if "score store unavailable" in line]
    assert retries and all("retrying" in line or "stopping" in line for line in retries)
    assert process.returncode == 1 and "payment-platform score:" in text.strip().splitlines()[-1]
    assert "Traceback" not in text
    assert sent > 0


def admin_url(server_url: str, account: dict[str, str]) -> str:
    return sa.make_url(server_url).set(database=account["PAYMENT_DB_NAME"]).render_as_string(hide_password=False)


@pytest.mark.parametrize("harm", ["revoke insert", "drop column"])
def test_a_revoked_privilege_or_a_dropped_column_stops_the_scorer_in_one_line(
    kafka_bootstrap: str,
    mysql_server_url: str,
    scorer_account: dict[str, str],  # noqa: F811
    topic_names: dict[str, str],
    model_dir: Path,
    tmp_path: Path,
    harm: str,
) -> None:
    url = least_privilege_url(scorer_account, mysql_server_url)
    database = scorer_account["PAYMENT_DB_NAME"]
    connect_store(admin_url(mysql_server_url, scorer_account)).dispose()  # the tables
    admin = admin_connection(mysql_server_url, database)
    with admin.cursor() as cursor:
        if harm == "revoke insert":
            user = scorer_account["PAYMENT_DB_USER"]
            escaped = database.replace("_", "\\_")  # as the deployment's init script granted it
            cursor.execute(f"REVOKE INSERT ON `{escaped}`.* FROM '{user}'@'%'")
        else:
            cursor.execute("ALTER TABLE scored_transactions DROP COLUMN reasons")
    admin.close()
    (tmp_path / "models").symlink_to(model_dir)
    env = scorer_cli_env(tmp_path, kafka_bootstrap, url, f"harm-{topic_names['payment_topic']}", topic_names)
    send_day(kafka_bootstrap, topic_names, dt.date(2026, 9, 2), seed=43)
    log = tmp_path / "scorer.log"
    process = start_cli_scorer(env, log)
    try:
        process.wait(120)
    finally:
        if process.poll() is None:
            process.kill()
    text = log.read_text(errors="replace")
    last = text.strip().splitlines()[-1]
    assert process.returncode == 1, text[-3000:]
    assert last.startswith("payment-platform score: the score store refuses the scorer"), last
    assert ("1142" in last or "denied" in last) if harm == "revoke insert" else ("1054" in last or "reasons" in last)
    assert "Traceback" not in text and scorer_account["PAYMENT_DB_PASSWORD"] not in text
    shards = ScorerConfig.from_settings(Settings.from_env(env)).by_card_topic
    assert payments_committed(kafka_bootstrap, f"harm-{topic_names['payment_topic']}", shards) == 0  # commits held


def test_labels_for_payments_that_never_come_cost_no_memory_and_are_counted(
    kafka_bootstrap: str, mysql_database: str, topic_names: dict[str, str], model_dir: Path
) -> None:
    """100,000 labels for transactions never seen, dated two weeks back: the scorer keeps none of them
    in memory (its terminal state does not grow) and counts them for operators."""
    ensure_topics(kafka_bootstrap, topic_names.values())
    producer = payment_producer(kafka_bootstrap)
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=14)).isoformat()
    for i in range(100_000):
        value = orjson.dumps({"transaction_id": f"orphan-{i}", "is_fraud": i % 3 == 0, "labelled_at": old})
        while True:
            try:
                producer.produce(topic_names["labels_topic"], value, f"orphan-{i}".encode())
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(30) == 0
    config = scorer_config(
        kafka_bootstrap,
        topic_names,
        mysql_database,
        model_dir,
        f"orphans-{topic_names['labels_topic']}",
        orphan_check_s=1.0,
    )
    scorer = build_scorer(config)
    stop = threading.Event()
    thread = threading.Thread(target=lambda: scorer.run(should_stop=stop.is_set))
    thread.start()
    try:
        assert wait_until(lambda: scorer.stats.labels >= 100_000, 120)
        assert wait_until(lambda: scorer.stats.orphan_labels == 100_000, 60)
        assert scorer.features.terminals.tracked_frauds == 0 and scorer.features.approx_bytes() < 1_000_000
    finally:
        stop.set()
        thread.join(60)
    engine = sa.create_engine(mysql_database)
    with engine.connect() as conn:
        status = conn.execute(sa.text("SELECT orphan_labels, running FROM scorer_status")).one()
    engine.dispose()
    assert tuple(status) == (100_000, False)
