"""A payment's decision is a function of the stream's event-time content, never of delivery accidents.

One labelled stream of eight weeks (compromised terminals, so terminal fraud shares matter; labels 7 days
after each payment) is delivered in every way a user's setup may deliver it: labels on time, all before
the payments, all after; keyed by card or with no key on random partitions; to one scorer, two scorers
started together, or two scorers one of which is SIGKILLed mid-backlog and restarted. On the real broker
and MariaDB, every case must store the same score and status for every payment, and those must equal the
offline rescoring of the stored rows with the same model (issue: online = offline, whatever the
interleaving; one stream, one set of decisions).
"""

from __future__ import annotations

import datetime as dt
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
import sqlalchemy as sa

from payment_platform.features import compute_features
from payment_platform.kafka.clients import ensure_topics, payment_producer
from payment_platform.model import ModelRegistry
from payment_platform.sources.feed import PaymentFeed, payment_values
from payment_platform.store.database import connect_store
from payment_platform.stream.decisions import score_and_decide
from payment_platform.stream.model_source import bind
from payment_platform.stream.runner import run_scorer
from payment_platform.world import World
from payment_platform_tests.conftest import scorer_cli_env, scorer_config, wait_until

pytestmark = pytest.mark.integration

LABEL_DELAY_DAYS = 7.0


@pytest.fixture(scope="module")
def stream() -> pd.DataFrame:
    """Eight weeks of a 250-card world, its fraud labelled."""
    frame = World(seed=31, n_cards=250).days(dt.date(2026, 5, 4), dt.date(2026, 6, 28))
    assert frame["event_time"].dt.normalize().nunique() == 56
    return frame


@pytest.fixture(scope="module")
def reference(stream: pd.DataFrame, model_dir: Path) -> pd.DataFrame:
    """The offline scores and statuses of the stream: what every delivery must store."""
    features = compute_features(stream)
    loaded = ModelRegistry(model_dir).load_production()
    assert loaded is not None
    score, decisions = score_and_decide(bind(loaded), features.to_numpy(), stream["amount"].to_numpy())
    fraud_share = features["terminal_fraud_share_30d"].to_numpy()
    assert (fraud_share > 0).mean() > 0.01  # terminal fraud shares are in play
    return pd.DataFrame(
        {"score": score, "status": decisions.status, "reasons": decisions.reasons},
        index=stream["transaction_id"].to_numpy(),
    )


def send_payments(bootstrap: str, topics: dict[str, str], frame: pd.DataFrame, keyed: bool, with_labels: bool) -> None:
    """The payments in event-time order, keyed by card (with their labels on time if asked), or with no
    key, each to a random partition."""
    ensure_topics(bootstrap, topics.values())
    producer = payment_producer(bootstrap, **({} if keyed else {"partitioner": "random"}))
    if keyed:
        feed = PaymentFeed(producer, topics["payment_topic"], topics["labels_topic"], LABEL_DELAY_DAYS)
        for start in range(0, len(frame), 5_000):
            part = frame.iloc[start : start + 5_000]
            feed.send(part if with_labels else part.drop(columns="is_fraud"))
        if with_labels:
            feed.send_pending_labels()
        feed.flush()
        return
    rng = np.random.default_rng(0)
    for value, partition in zip(payment_values(frame), rng.integers(0, 4, len(frame)).tolist(), strict=True):
        produce(producer, topics["payment_topic"], None, value, partition)
    assert producer.flush(60) == 0


def send_labels(bootstrap: str, topics: dict[str, str], frame: pd.DataFrame) -> None:
    """Every label at once, each dated a week after its payment (event time), keyed by transaction."""
    producer = payment_producer(bootstrap)
    due = frame["event_time"] + pd.Timedelta(days=LABEL_DELAY_DAYS)
    stamps = due.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").tolist()
    order = np.argsort(due.to_numpy(), kind="stable")
    ids, flags = frame["transaction_id"].to_numpy(), frame["is_fraud"].to_numpy().astype(bool)
    for i in order.tolist():
        value = orjson.dumps({"transaction_id": ids[i], "is_fraud": bool(flags[i]), "labelled_at": stamps[i]})
        produce(producer, topics["labels_topic"], ids[i].encode(), value, None)
    assert producer.flush(60) == 0


def produce(producer, topic: str, key: bytes | None, value: bytes, partition: int | None) -> None:  # type: ignore[no-untyped-def]
    while True:
        try:
            if partition is None:
                producer.produce(topic, value, key)
            else:
                producer.produce(topic, value, key, partition=partition)
            return
        except BufferError:
            producer.poll(0.05)


def stored(db_url: str) -> pd.DataFrame:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT transaction_id, score, status, reasons FROM scored_transactions")).all()
    finally:
        engine.dispose()
    return pd.DataFrame(rows, columns=["transaction_id", "score", "status", "reasons"]).set_index("transaction_id")


def assert_same_decisions(got: pd.DataFrame, reference: pd.DataFrame) -> None:
    assert len(got) == len(reference) and set(got.index) == set(reference.index)
    got = got.loc[reference.index]
    different = got["score"].to_numpy() != reference["score"].to_numpy()
    assert not different.any(), f"{different.sum():,} of {len(got):,} scores differ, e.g. {got[different].head(3)}"
    assert (got["status"].to_numpy() == reference["status"].to_numpy()).all()
    assert (got["reasons"].to_numpy() == reference["reasons"].to_numpy()).all()


@pytest.fixture()
def case(
    kafka_bootstrap: str, mysql_database: str, topic_names: dict[str, str]
) -> Iterator[tuple[str, str, dict[str, str]]]:
    yield kafka_bootstrap, mysql_database, topic_names


# --- one scorer: when labels arrive, how payments are keyed ---------------------------------------


@pytest.mark.parametrize(
    ("labels", "keyed"),
    [
        pytest.param("on time", True, id="labels-on-time"),
        pytest.param("all before", True, id="labels-all-before"),
        pytest.param("all after", True, id="labels-all-after"),
        pytest.param("all after", False, id="no-key-random-partitions"),
    ],
)
def test_one_scorer_stores_the_offline_decisions_however_the_stream_is_delivered(
    case: tuple[str, str, dict[str, str]],
    stream: pd.DataFrame,
    reference: pd.DataFrame,
    model_dir: Path,
    labels: str,
    keyed: bool,
) -> None:
    bootstrap, db_url, topics = case
    if labels == "all before":
        ensure_topics(bootstrap, topics.values())
        send_labels(bootstrap, topics, stream)
    if keyed:
        send_payments(bootstrap, topics, stream, keyed=True, with_labels=labels == "on time")
    else:
        send_payments(bootstrap, topics, stream, keyed=False, with_labels=False)
        send_labels(bootstrap, topics, stream)
    if labels == "all after":
        send_labels(bootstrap, topics, stream)

    config = scorer_config(bootstrap, topics, db_url, model_dir, f"promise-{topics['payment_topic']}")
    stats = run_scorer(config, max_messages=len(stream), idle_timeout_s=30)

    assert stats.scored == len(stream)
    assert stats.mis_keyed == (0 if keyed else len(stream))
    assert_same_decisions(stored(db_url), reference)


def test_a_replay_stopped_between_two_files_stores_the_offline_decisions(
    case: tuple[str, str, dict[str, str]], stream: pd.DataFrame, reference: pd.DataFrame, model_dir: Path
) -> None:
    """History loaded file by file, the scorer stopped once each file is drained: the second run must wait
    for the second file's labels as one uninterrupted run would. A label partition at its end once claimed
    "caught up to the wall clock" and stored that claim; the next run took it over and featurised last
    month's payments without their labels."""
    bootstrap, db_url, topics = case
    ensure_topics(bootstrap, topics.values())
    middle = stream["event_time"].min().normalize() + pd.Timedelta(days=28)
    config = scorer_config(bootstrap, topics, db_url, model_dir, f"files-{topics['payment_topic']}")
    for part in (stream[stream["event_time"] < middle], stream[stream["event_time"] >= middle]):
        feed = PaymentFeed(
            payment_producer(bootstrap), topics["payment_topic"], topics["labels_topic"], LABEL_DELAY_DAYS
        )
        feed.send(part)
        feed.send_pending_labels()  # what `replay` does at the end of a file
        feed.flush()
        run_scorer(config, idle_timeout_s=3)  # drained: every partition, labels included, at its end

    assert_same_decisions(stored(db_url), reference)


# --- several scorers in one group -----------------------------------------------------------------


def start_scorer(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "payment_platform.cli", "score", "--batch-size", "2000"]
    with open(log, "ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def count_rows(db_url: str) -> int:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT COUNT(*) FROM scored_transactions")).scalar() or 0)
    finally:
        engine.dispose()


@pytest.mark.parametrize("kill_one", [False, True], ids=["two-scorers", "two-scorers-one-killed-and-restarted"])
def test_two_scorers_in_one_group_store_the_offline_decisions(
    case: tuple[str, str, dict[str, str]],
    stream: pd.DataFrame,
    reference: pd.DataFrame,
    model_dir: Path,
    tmp_path: Path,
    kill_one: bool,
) -> None:
    bootstrap, db_url, topics = case
    send_payments(bootstrap, topics, stream, keyed=True, with_labels=True)
    shutil.copytree(model_dir, tmp_path / "models")
    connect_store(db_url).dispose()  # the tables, to watch the rows
    env = scorer_cli_env(tmp_path, bootstrap, db_url, f"pair-{topics['payment_topic']}", topics)
    log = tmp_path / "scorers.log"
    scorers = [start_scorer(env, log), start_scorer(env, log)]
    try:
        if kill_one:
            assert wait_until(lambda: count_rows(db_url) > len(stream) // 4, 120), log.read_text()[-3000:]
            scorers[0].send_signal(signal.SIGKILL)
            scorers[0].wait()
            time.sleep(2)
            scorers[0] = start_scorer(env, log)
        assert wait_until(lambda: count_rows(db_url) >= len(stream), 240, every_s=0.5), log.read_text()[-3000:]
        for process in scorers:
            assert process.poll() is None, log.read_text()[-3000:]
    finally:
        for process in scorers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in scorers:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
    assert all(process.returncode == 0 for process in scorers[1:])
    assert_same_decisions(stored(db_url), reference)
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        scored_by = conn.execute(sa.text("SELECT scored FROM scorer_status WHERE NOT running")).scalars().all()
    engine.dispose()
    assert len([n for n in scored_by if n > 0]) >= 2, f"both scorers must have scored part of the stream: {scored_by}"
