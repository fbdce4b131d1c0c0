"""Crashes mid-stream: the scorer is SIGKILLed five times and restarted, on the real broker and MariaDB.

At the end every valid payment has exactly one row, the DLQ holds the invalid messages, and every row
carries exactly the score and decision an uninterrupted scorer gives it: the offline features of the whole
stream and its label history, scored by the same model.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from payment_platform.features import compute_features
from payment_platform.kafka.clients import ensure_topics, payment_producer
from payment_platform.model import ModelRegistry
from payment_platform.sources.feed import PaymentFeed
from payment_platform.store.database import connect_store
from payment_platform.stream.decisions import score_and_decide
from payment_platform.stream.model_source import bind
from payment_platform.world import World
from payment_platform_tests.conftest import scorer_cli_env
from payment_platform_tests.test_scoring_integration import invalid_values, read_topic

pytestmark = pytest.mark.integration

INVALID = 100
# Where each run dies: named points of the batch cycle (PAYMENT_CRASH_AT), then a kill from outside at
# a moment chosen by how many rows are stored.
CRASHES = ["consumed:6000", "scored:3", "written:2", "written:1", None]


def produce_stream(bootstrap: str, topics: dict[str, str]) -> int:
    """~40,000 payments of 40 days, their labels 2 days later in event time, and invalid messages."""
    ensure_topics(bootstrap, topics.values())
    producer = payment_producer(bootstrap)
    feed = PaymentFeed(producer, topics["payment_topic"], topics["labels_topic"], label_delay_days=2)
    payments = World(seed=13, n_cards=500).days(dt.date(2026, 6, 1), dt.date(2026, 7, 10))
    step = len(payments) // INVALID
    for i, value in enumerate(invalid_values(INVALID)):
        feed.send(payments.iloc[i * step : (i + 1) * step])
        producer.produce(topics["payment_topic"], key=f"C-bad-{i}".encode(), value=value)
    feed.send(payments.iloc[INVALID * step :])
    feed.send_pending_labels()
    feed.flush()
    return len(payments)


def stored_rows(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT COUNT(*) FROM scored_transactions")).scalar() or 0)


def run_scorer_process(env: dict[str, str], crash: str | None, engine: sa.Engine, kill_at_rows: int) -> int:
    """One scorer process until it crashes (or is killed once `kill_at_rows` rows are stored)."""
    command = [sys.executable, "-m", "payment_platform.cli", "score", "--batch-size", "1000", "--idle-timeout-s", "6"]
    process_env = env | ({"PAYMENT_CRASH_AT": crash} if crash else {})
    process = subprocess.Popen(command, env=process_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if crash is None:
        while process.poll() is None and stored_rows(engine) < kill_at_rows:
            time.sleep(0.02)
        process.kill()
    _, stderr = process.communicate(timeout=180)
    assert process.returncode != 0 or crash is None, stderr.decode()[-2000:]
    return process.returncode


def stored_decisions(engine: sa.Engine) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the scored rows in partition and offset order, the label events) as stored."""
    with engine.connect() as conn:
        rows = pd.DataFrame(
            conn.execute(
                sa.text(
                    "SELECT transaction_id, customer_id, terminal_id, amount, event_time, score, status, reasons "
                    "FROM scored_transactions ORDER BY kafka_partition, kafka_offset"
                )
            ).all()
        )
        labels = pd.DataFrame(
            conn.execute(sa.text("SELECT transaction_id, is_fraud, labelled_at, id AS seq FROM label_events")).all()
        )
    return rows, labels


def assert_scored_as_if_uninterrupted(rows: pd.DataFrame, labels: pd.DataFrame, models: Path) -> None:
    """Every stored row carries the score and decision of the uninterrupted reference: the offline features
    of every stored payment and every stored label, scored by the production model."""
    rows = rows.assign(
        amount=rows["amount"].astype(float), event_time=pd.to_datetime(rows["event_time"]).dt.tz_localize("UTC")
    )
    labels = labels.assign(
        labelled_us=pd.to_datetime(labels["labelled_at"]).astype("datetime64[us]").astype("int64"),
        is_fraud=labels["is_fraud"].astype(bool),
    )
    features = compute_features(rows, labels).to_numpy()
    loaded = ModelRegistry(models).load_production()
    assert loaded is not None
    score, decisions = score_and_decide(bind(loaded), features, rows["amount"].to_numpy())
    assert features[:, -1].max() > 0  # terminal fraud shares are in play
    np.testing.assert_array_equal(rows["score"].to_numpy(), score)
    assert (rows["status"].to_numpy() == decisions.status).all()
    assert (rows["reasons"].to_numpy() == decisions.reasons).all()


def test_five_kills_lose_nothing_and_score_as_if_uninterrupted(
    kafka_bootstrap: str, mysql_database: str, topic_names: dict[str, str], model_dir: Path, tmp_path: Path
) -> None:
    valid = produce_stream(kafka_bootstrap, topic_names)
    shutil.copytree(model_dir, tmp_path / "models")
    group = f"crash-{topic_names['payment_topic']}"
    env = scorer_cli_env(tmp_path, kafka_bootstrap, mysql_database, group, topic_names)
    engine = connect_store(mysql_database)  # creates the tables, as the scorer would
    rng = np.random.default_rng(5)
    progress = []
    for crash in CRASHES:
        code = run_scorer_process(
            env, crash, engine, kill_at_rows=stored_rows(engine) + int(rng.integers(1_000, 4_000))
        )
        assert code == -9, f"the scorer should have been killed at {crash}, it exited {code}"
        progress.append(stored_rows(engine))
    assert max(progress) > 0 and progress[-1] < valid, f"the kills fell outside the stream: {progress}"
    final = subprocess.run(
        [sys.executable, "-m", "payment_platform.cli", "score", "--idle-timeout-s", "4"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert final.returncode == 0, final.stderr[-2000:]

    rows, labels = stored_decisions(engine)
    engine.dispose()
    assert len(rows) == valid and rows["transaction_id"].nunique() == valid

    dlq = read_topic(kafka_bootstrap, topic_names["dlq_topic"], INVALID)
    sources = {(dict(m.headers())["source.partition"], dict(m.headers())["source.offset"]) for m in dlq}
    assert len(sources) == INVALID  # at least once: a batch replayed after a crash may forward it again

    assert_scored_as_if_uninterrupted(rows, labels, tmp_path / "models")
