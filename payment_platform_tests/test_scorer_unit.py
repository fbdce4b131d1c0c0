"""The scorer's loop against an in-memory Kafka (kafka_double.py) and a SQLite store: quick checks of what
it does in which order — rows, then decisions and dead letters, then commits — of the model's hot swap, and
of offsets held while a record is undelivered. The same code runs against the real broker and MariaDB in
the integration tests."""

from __future__ import annotations

import datetime as dt
import time
import zlib
from pathlib import Path

import orjson
import pandas as pd
import pytest
import sqlalchemy as sa
from confluent_kafka import TopicPartition

from payment_platform.kafka.delivery import DeliveryTracker
from payment_platform.model import ModelRegistry
from payment_platform.sources.feed import PaymentFeed, payment_values
from payment_platform.store.database import connect_store
from payment_platform.store.stream_state import read_progress
from payment_platform.store.writer import ScoreWriter
from payment_platform.stream.config import ScorerConfig
from payment_platform.stream.model_source import ModelSource
from payment_platform.stream.records import PaymentBatch, decode
from payment_platform.stream.repartition import Repartitioner
from payment_platform.stream.scorer import PaymentScorer
from payment_platform.stream.sink import ScoreSink
from payment_platform.world import World
from payment_platform_tests.kafka_double import FakeBroker, FakeConsumer, FakeProducer
from payment_platform_tests.test_crash_recovery import assert_scored_as_if_uninterrupted, stored_decisions
from payment_platform_tests.test_hostile_input import small_model_dir


@pytest.fixture()
def model_root(tmp_path: Path) -> Path:
    return small_model_dir(tmp_path / "models")


def build(
    broker: FakeBroker, tmp_path: Path, model_root: Path, repartition: bool = True, batch_size: int = 5_000
) -> PaymentScorer:
    config = ScorerConfig(
        bootstrap="in-memory",
        consumer_group="g",
        payment_topic="payments",
        labels_topic="labels",
        dlq_topic="dlq",
        decisions_topic="decisions",
        db_url=f"sqlite:///{tmp_path / 'store.db'}",
        model_dir=model_root,
        repartition=repartition,
        poll_timeout_s=0.0,
        max_idle_ms=0,
        heartbeat_s=0.05,
        batch_size=batch_size,
    )
    engine = connect_store(config.db_url)
    sink = ScoreSink(ScoreWriter(engine), FakeProducer(broker), "decisions", "dlq", "payments", "g")
    repartitioner = None
    if repartition:
        records = DeliveryTracker(FakeProducer(broker), "repartition")
        repartitioner = Repartitioner(records, "payments", config.by_card_topic, "dlq", 4, 0, 1.0, 3_600_000)
    models = ModelSource(ModelRegistry(model_root), refresh_s=0.0)
    return PaymentScorer(config, FakeConsumer(broker), sink, models, repartitioner, 4, 4, 4)


def send(broker: FakeBroker, frame_days: int = 3, cards: int = 100, invalid: int = 0) -> int:
    payments = World(seed=5, n_cards=cards).days(dt.date(2026, 4, 1), dt.date(2026, 4, frame_days))
    for card, value in zip(payments["customer_id"].tolist(), payment_values(payments), strict=True):
        broker.append("payments", value, card.encode(), None)
    for i in range(invalid):
        broker.append("payments", orjson.dumps({"transaction_id": f"bad-{i}", "amount": 1}), None, i % 4)
    return len(payments)


def rows(scorer: PaymentScorer) -> dict[str, tuple[str, str]]:
    with scorer.sink.engine.connect() as conn:
        return {
            r[0]: (r[1], r[2])
            for r in conn.execute(sa.text("SELECT transaction_id, model_version, status FROM scored_transactions"))
        }


@pytest.mark.parametrize("repartition", [True, False], ids=["repartitioned", "keyed-input"])
def test_rows_then_decisions_and_dead_letters_then_commits(tmp_path: Path, model_root: Path, repartition: bool) -> None:
    broker = FakeBroker()
    sent = send(broker, invalid=7)
    scorer = build(broker, tmp_path, model_root, repartition)
    shard_topic = scorer.config.shard_topic
    commit = scorer.consumer.commit

    def checked_commit(offsets: list, asynchronous: bool = False) -> None:
        """At every commit, each payment the commit covers is stored and its decision published."""
        stored = rows(scorer)
        published = {orjson.loads(m.value())["transaction_id"] for m in broker.messages("decisions")}
        for tp in offsets:
            if tp.topic != shard_topic:
                continue
            for message in broker.log(shard_topic)[tp.partition][: tp.offset]:
                if repartition:
                    record = decode(message.value())
                    ids = [p.transaction_id for p in record.payments] if isinstance(record, PaymentBatch) else []
                else:
                    ids = [orjson.loads(message.value()).get("transaction_id")]
                for tx in ids:
                    if tx is not None and not str(tx).startswith("bad-"):
                        assert tx in stored and tx in published, f"committed before {tx} was stored and published"
        commit(offsets, asynchronous)

    scorer.consumer.commit = checked_commit  # type: ignore[method-assign]
    stats = scorer.run(max_messages=sent + 7, idle_timeout_s=5)

    assert stats.scored == sent and stats.invalid == 7
    assert len(rows(scorer)) == sent
    decisions = [orjson.loads(m.value()) for m in broker.messages("decisions")]
    assert sorted(d["transaction_id"] for d in decisions) == sorted(rows(scorer))
    assert {m.key() for m in broker.messages("dlq")} == {None} and len(broker.messages("dlq")) == 7
    assert broker.commits and scorer.consumer.closed


def test_a_new_model_is_swapped_in_without_a_restart(tmp_path: Path, model_root: Path) -> None:
    broker = FakeBroker()
    first = send(broker, frame_days=2)
    scorer = build(broker, tmp_path, model_root)
    scorer.run(max_messages=first, idle_timeout_s=5)
    old = {version for version, _ in rows(scorer).values()}

    registry = ModelRegistry(model_root)
    newer = small_model_dir(tmp_path / "newer")
    loaded = ModelRegistry(newer).load_production()
    assert loaded is not None
    version = registry.save(loaded.model, loaded.feature_names, loaded.metadata)
    registry.promote(version)
    payments = World(seed=5, n_cards=100).days(dt.date(2026, 4, 3), dt.date(2026, 4, 3))
    for card, value in zip(payments["customer_id"].tolist(), payment_values(payments), strict=True):
        broker.append("payments", value, card.encode(), None)
    again = build(broker, tmp_path, model_root)  # the same store and log, as after a run with a swap
    again.models = scorer.models  # the model source that already serves the old version
    again.run(max_messages=len(payments), idle_timeout_s=5)

    versions = rows(again)
    assert len(old) == 1 and version not in old
    assert {versions[tx][0] for tx in payments["transaction_id"]} == {version}


def test_an_undelivered_dead_letter_holds_the_commit_of_its_offset(tmp_path: Path, model_root: Path) -> None:
    broker = FakeBroker()
    for i in range(5):
        broker.append("payments", orjson.dumps({"transaction_id": f"bad-{i}", "amount": 1}), None, 0)
    scorer = build(broker, tmp_path, model_root)
    assert scorer.repartitioner is not None
    scorer.repartitioner.records.producer.failing = True  # type: ignore[attr-defined]
    started = time.monotonic()

    def should_stop() -> bool:
        elapsed = time.monotonic() - started
        if elapsed > 2:  # the broker takes the dead letters again: the next retry gets through
            scorer.repartitioner.records.producer.failing = False  # type: ignore[union-attr]
        return elapsed > 5

    committed_while_failing = []
    commit = scorer.consumer.commit

    def watch(offsets: list, asynchronous: bool = False) -> None:
        if scorer.repartitioner.records.producer.failing:  # type: ignore[union-attr]
            committed_while_failing.extend(tp for tp in offsets if tp.topic == "payments" and tp.offset > 0)
        commit(offsets, asynchronous)

    scorer.consumer.commit = watch  # type: ignore[method-assign]
    scorer.run(should_stop=should_stop)
    assert not committed_while_failing
    assert len(broker.messages("dlq")) == 5
    assert broker.committed[("payments", 0)] == 5


def test_a_scorer_taking_over_shards_days_apart_scores_as_if_uninterrupted(tmp_path: Path, model_dir: Path) -> None:
    """Shards move through event time at their own pace, up to a label delay apart. A scorer taking them over
    may first release the payments of the shard furthest ahead: the terminal state it reads from the store
    must still reach back as far as the slowest shard's windows (it once started from that first batch, and
    evicted by the shards that had released something).
    The model is a real one (trees: its scores do not depend on how rows are batched)."""
    broker = FakeBroker()
    world = World(seed=13, n_cards=200).days(dt.date(2026, 5, 10), dt.date(2026, 7, 12))
    shard = world["customer_id"].map(lambda card: zlib.crc32(card.encode()) % broker.partitions).to_numpy()
    day = world["event_time"].dt.date.to_numpy()
    feed = PaymentFeed(FakeProducer(broker), "payments", "labels", label_delay_days=7)
    ahead_part = (day >= dt.date(2026, 7, 1)) & (day < dt.date(2026, 7, 6)) & (shard == 0)

    feed.send(world[day < dt.date(2026, 7, 1)])  # every shard, up to the same day
    feed.flush()
    build(broker, tmp_path, model_dir, repartition=False).run(idle_timeout_s=1)
    feed.send(world[ahead_part])  # shard 0 runs five days ahead, and labels further still
    feed.send_due_labels(int(pd.Timestamp("2026-07-08", tz="UTC").value // 1_000))
    feed.flush()
    ahead = build(broker, tmp_path, model_dir, repartition=False)
    ahead.consumer.pause([TopicPartition("payments", p) for p in (1, 2, 3)])  # the others wait on their fetches
    ahead.run(idle_timeout_s=1)
    progress = read_progress(ahead.sink.engine, "g")
    lead_us = progress["payments", 0] - max(progress["payments", p] for p in (1, 2, 3))
    assert lead_us > 4 * 86_400_000_000, f"shard 0 should be days ahead: {progress}"
    feed.send(world[(day >= dt.date(2026, 7, 1)) & ~ahead_part])
    feed.send_pending_labels()
    feed.flush()
    # Shard 0 is read first, 500 at a time: the first batch is its payments alone, days after the others'.
    resumed = build(broker, tmp_path, model_dir, repartition=False, batch_size=500)
    resumed.run(idle_timeout_s=1)

    rows, labels = stored_decisions(resumed.sink.engine)
    assert len(rows) == len(world)
    assert_scored_as_if_uninterrupted(rows, labels, model_dir)
