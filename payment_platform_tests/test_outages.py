"""Outages mid-stream, on the real broker and MariaDB: the scorer waits them out and loses nothing.

The database outage is a TCP proxy in front of MariaDB that cuts every connection and refuses new ones
for 20 s, as a server restart or a network partition would look to the scorer. The graceful stop sends
SIGTERM, as terminating the run from the UI does.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from confluent_kafka import Consumer, TopicPartition

from payment_platform.kafka.clients import ensure_topics, payment_producer
from payment_platform.settings import Settings
from payment_platform.sources.feed import PaymentFeed
from payment_platform.store.database import connect_store
from payment_platform.stream.config import ScorerConfig
from payment_platform.stream.records import PaymentBatch, decode
from payment_platform.stream.runner import run_scorer
from payment_platform.world import World
from payment_platform_tests.conftest import scorer_cli_env, wait_until

pytestmark = pytest.mark.integration

OUTAGE_S = 20.0


class FlakyProxy:
    """Forwards TCP connections to a server until `cut()`: then every connection is closed and new ones
    are refused until `mend()`."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            self.up = False
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def mend(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            server = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.close()


def test_a_20_second_database_outage_is_waited_out_without_loss(
    kafka_bootstrap: str,
    mysql_database: str,
    topic_names: dict[str, str],
    model_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    payments = World(seed=17, n_cards=4_000).days(dt.date(2026, 8, 1), dt.date(2026, 8, 6))
    before = payments["event_time"] < pd.Timestamp("2026-08-04", tz="UTC")
    ensure_topics(kafka_bootstrap, topic_names.values())
    feed = PaymentFeed(payment_producer(kafka_bootstrap), topic_names["payment_topic"], topic_names["labels_topic"], -1)
    feed.send(payments[before])  # the rest comes during the outage: it falls mid-stream whatever the batches
    feed.flush()

    direct = connect_store(mysql_database)  # creates the tables; watches the rows without the proxy
    url = sa.make_url(mysql_database)
    proxy = FlakyProxy(url.host or "127.0.0.1", url.port or 3306)
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    group = f"outage-{topic_names['payment_topic']}"
    setup = ScorerConfig(
        bootstrap=kafka_bootstrap,
        consumer_group=group,
        db_url=through_proxy,
        model_dir=model_dir,
        batch_size=1_000,
        **topic_names,
    )
    result: dict[str, object] = {}
    caplog.set_level(logging.WARNING, logger="payment_platform.store.errors")
    scorer = threading.Thread(target=lambda: result.update(stats=run_scorer(setup, idle_timeout_s=10)))
    scorer.start()

    def stored() -> int:
        with direct.connect() as conn:
            return int(conn.execute(sa.text("SELECT COUNT(*) FROM scored_transactions")).scalar() or 0)

    deadline = time.monotonic() + 60
    while stored() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    proxy.cut()
    during = stored()
    feed.send(payments[~before])
    feed.flush()
    time.sleep(OUTAGE_S)
    assert stored() == during, "rows were written while the database was unreachable"
    proxy.mend()
    scorer.join(timeout=180)
    proxy.close()

    assert not scorer.is_alive()
    assert 0 < during < len(payments), "the outage did not fall mid-stream"
    with direct.connect() as conn:
        rows, distinct = conn.execute(
            sa.text("SELECT COUNT(*), COUNT(DISTINCT transaction_id) FROM scored_transactions")
        ).one()
    direct.dispose()
    assert rows == distinct == len(payments)
    retries = [r.getMessage() for r in caplog.records if "score store unavailable" in r.getMessage()]
    assert len(retries) >= 3 and all("offsets held" in line for line in retries)
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group, "enable.auto.commit": False})
    committed = consumer.committed([TopicPartition(topic_names["payment_topic"], p) for p in range(4)], timeout=10)
    consumer.close()
    assert sum(tp.offset for tp in committed) == len(payments)


def produce_days(bootstrap: str, topics: dict[str, str], start: dt.date, end: dt.date, seed: int) -> int:
    payments = World(seed=seed, n_cards=3_000).days(start, end)
    ensure_topics(bootstrap, topics.values())
    feed = PaymentFeed(payment_producer(bootstrap), topics["payment_topic"], topics["labels_topic"], -1)
    feed.send(payments)
    feed.flush()
    return len(payments)


def payments_committed(bootstrap: str, group: str, topic: str) -> set[str]:
    """The transactions of the payment records a group has committed in a card-keyed stream."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    committed = {
        tp.partition: tp.offset for tp in consumer.committed([TopicPartition(topic, p) for p in range(4)], timeout=10)
    }
    consumer.assign([TopicPartition(topic, p, 0) for p in committed if committed[p] > 0])
    covered: set[str] = set()
    left = {p: offset for p, offset in committed.items() if offset > 0}
    deadline = time.monotonic() + 30
    while left and time.monotonic() < deadline:
        for message in consumer.consume(1000, 0.5):
            if message.error() or message.offset() >= left.get(message.partition(), -1):
                continue
            record = decode(message.value())
            if isinstance(record, PaymentBatch):
                covered |= {payment.transaction_id for payment in record.payments}
            if message.offset() == left[message.partition()] - 1:
                del left[message.partition()]
    consumer.close()
    return covered


def stored_ids(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {row[0] for row in conn.execute(sa.text("SELECT transaction_id FROM scored_transactions"))}
    finally:
        engine.dispose()


def count_rows(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT COUNT(*) FROM scored_transactions")).scalar() or 0)
    finally:
        engine.dispose()


def test_sigterm_writes_the_batch_in_hand_commits_and_exits_within_10_s(
    kafka_bootstrap: str, mysql_database: str, topic_names: dict[str, str], model_dir: Path, tmp_path: Path
) -> None:
    """What terminating the run from the Dagster UI does to the scorer process."""
    produced = produce_days(kafka_bootstrap, topic_names, dt.date(2026, 8, 1), dt.date(2026, 8, 20), seed=23)
    shutil.copytree(model_dir, tmp_path / "models")
    group = f"sigterm-{topic_names['payment_topic']}"
    env = scorer_cli_env(tmp_path, kafka_bootstrap, mysql_database, group, topic_names)
    command = [sys.executable, "-m", "payment_platform.cli", "score", "--batch-size", "1000"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    connect_store(mysql_database).dispose()  # the tables, to watch the rows
    assert wait_until(lambda: count_rows(mysql_database) > 0, 90), "the scorer never wrote a row"
    process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    _, stderr = process.communicate(timeout=60)
    took = time.monotonic() - sent

    assert process.returncode == 0, stderr[-2000:]
    assert took <= 10, f"took {took:.1f}s to stop"
    rows = count_rows(mysql_database)
    assert 0 < rows < produced, "the stop did not fall mid-stream"
    # Nothing committed is unwritten: the batch in hand was finished before the commit. (Payments still held
    # for event time keep their offsets uncommitted: stored or not, they are read again and absorbed.)
    shards = ScorerConfig.from_settings(Settings.from_env(env)).by_card_topic
    committed = payments_committed(kafka_bootstrap, group, shards)
    assert len(committed) > 0 and committed <= stored_ids(mysql_database)
    assert "finishing the batch in hand" in stderr
