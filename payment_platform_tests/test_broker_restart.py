"""A broker restart while the scorer runs, on the real (embedded) broker and MariaDB: it carries on by itself.

The embedded broker keeps everything in memory: its restart loses the topics, the messages and the
consumer group with its committed offsets. The running scorer's client reconnects, is told its group
membership is gone, rejoins, finds no committed offset and starts at the beginning of the new log, so every
payment sent after the restart is scored exactly once. The test starts its own broker: restarting the
session's would empty it under the other tests.
"""

from __future__ import annotations

import datetime as dt
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from payment_platform.kafka.clients import ensure_topics, payment_producer
from payment_platform.kafka.embedded_broker import start_embedded_broker, stop_embedded_broker
from payment_platform.sources.feed import PaymentFeed
from payment_platform.store.database import connect_store
from payment_platform.world import World
from payment_platform_tests.conftest import free_port, scorer_cli_env, service_missing, wait_until

pytestmark = pytest.mark.integration

DOWNTIME_S = 3.0


def send(bootstrap: str, topics: dict[str, str], payments: pd.DataFrame) -> None:
    ensure_topics(bootstrap, topics.values())  # as `payment-platform broker` does when it starts
    feed = PaymentFeed(payment_producer(bootstrap), topics["payment_topic"], topics["labels_topic"], -1)
    feed.send(payments)
    feed.flush()


def stored(engine: sa.Engine, day: str) -> tuple[int, int]:
    """Rows and distinct transaction ids of one day's payments (their ids start with the date)."""
    with engine.connect() as conn:
        rows, distinct = conn.execute(
            sa.text(
                "SELECT COUNT(*), COUNT(DISTINCT transaction_id) FROM scored_transactions "
                "WHERE transaction_id LIKE :day"
            ),
            {"day": f"{day}-%"},  # day may end in a % (a month)
        ).one()
    return int(rows), int(distinct)


@pytest.mark.parametrize(
    "backlog_days",
    [
        pytest.param(1, id="between-bursts"),
        # Mid-backlog: the event-time alignment holds partitions (paused) when the broker goes away, and the
        # client keeps a pause across the lost assignment, so the scorer must release it on revoke.
        pytest.param(30, id="mid-backlog"),
    ],
)
def test_the_scorer_carries_on_by_itself_after_the_broker_restarts(
    mysql_database: str, topic_names: dict[str, str], model_dir: Path, tmp_path: Path, backlog_days: int
) -> None:
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    broker_log = tmp_path / "broker.log"
    try:
        broker = start_embedded_broker(port=port, log_path=broker_log)
    except Exception as exc:  # noqa: BLE001
        service_missing(f"embedded Kafka broker could not start: {exc}")
    world = World(seed=29, n_cards=1_000)
    before = world.days(dt.date(2026, 7, 31) - dt.timedelta(days=backlog_days - 1), dt.date(2026, 7, 31))
    after = world.days(dt.date(2026, 8, 2), dt.date(2026, 8, 2))
    # Between bursts the broker goes once all is scored; mid-backlog, as soon as a fifth is.
    scored_before_restart = len(before) if backlog_days == 1 else len(before) // 5
    engine = connect_store(mysql_database)  # creates the tables, to watch the rows
    scorer_log = tmp_path / "scorer.log"
    process: subprocess.Popen[bytes] | None = None
    try:
        send(bootstrap, topic_names, before)
        shutil.copytree(model_dir, tmp_path / "models")
        group = f"restart-{topic_names['payment_topic']}"
        env = scorer_cli_env(tmp_path, bootstrap, mysql_database, group, topic_names)
        command = [sys.executable, "-m", "payment_platform.cli", "score", "--batch-size", "1000"]
        with open(scorer_log, "wb") as log:
            process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)

        def log_tail() -> str:
            return scorer_log.read_text(errors="replace")[-3000:]

        assert wait_until(lambda: stored(engine, "202607%")[0] >= scored_before_restart, 90), log_tail()
        stop_embedded_broker(broker, timeout_s=1)  # the embedded broker ignores SIGTERM: killed after 1 s
        time.sleep(DOWNTIME_S)
        broker = start_embedded_broker(port=port, log_path=broker_log)  # the same port, empty
        send(bootstrap, topic_names, after)

        scored_after = wait_until(lambda: stored(engine, "20260802")[0] >= len(after), 90)
        assert process.poll() is None, f"the scorer exited during the restart:\n{log_tail()}"
        assert scored_after, f"{stored(engine, '20260802')} rows of {len(after)} payments sent after:\n{log_tail()}"
        assert stored(engine, "20260802") == (len(after), len(after)), "a payment has two rows"
        rows, distinct = stored(engine, "202607%")
        assert rows == distinct <= len(before), "a payment sent before the restart has two rows"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log_tail()
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        stop_embedded_broker(broker, timeout_s=1)
        engine.dispose()
