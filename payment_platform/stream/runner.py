"""Builds a scorer from its configuration and runs it until stopped: shared by the CLI and the Dagster job."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from confluent_kafka import Consumer

from payment_platform.kafka.clients import (
    check_broker,
    ensure_topics,
    partition_count,
    payment_producer,
    scorer_consumer,
)
from payment_platform.kafka.delivery import DeliveryTracker
from payment_platform.model import ModelRegistry
from payment_platform.store.database import connect_store
from payment_platform.store.writer import ScoreWriter
from payment_platform.stream.config import ScorerConfig
from payment_platform.stream.model_source import ModelSource
from payment_platform.stream.repartition import Repartitioner
from payment_platform.stream.scorer import PaymentScorer
from payment_platform.stream.sink import ScoreSink
from payment_platform.stream.stats import ScorerStats

logger = logging.getLogger(__name__)

DLQ_MAX_MESSAGE_BYTES = 100 * 1024 * 1024  # a topic that let a message in has room for it in its DLQ


def build_scorer(config: ScorerConfig, consumer: Consumer | None = None) -> PaymentScorer:
    """Connect to everything and fail fast, with what to fix, when something is missing."""
    models = ModelSource(ModelRegistry(config.model_dir))
    models.current()  # raises NoPromotedModel before any connection is opened
    check_broker(config.bootstrap)
    engine = connect_store(config.db_url, lock_wait_timeout_s=5)
    inputs = partition_count(config.bootstrap, config.payment_topic)
    ensure_topics(config.bootstrap, config.topics(), partitions_of={config.by_card_topic: inputs})
    shards = partition_count(config.bootstrap, config.shard_topic)
    label_partitions = partition_count(config.bootstrap, config.labels_topic)
    sink = ScoreSink(
        ScoreWriter(engine),
        payment_producer(
            config.bootstrap,
            **{
                "message.max.bytes": DLQ_MAX_MESSAGE_BYTES,
                "linger.ms": 0,
                "message.timeout.ms": config.delivery_timeout_ms,
            },
        ),
        config.decisions_topic,
        config.dlq_topic,
        config.payment_topic,
        config.consumer_group,
    )
    repartitioner = None
    if config.repartition:
        forward = payment_producer(
            config.bootstrap,
            **{
                "message.max.bytes": DLQ_MAX_MESSAGE_BYTES,
                # One request in flight keeps each partition's records in order across retries: watermarks come
                # after the payments they cover. (Not the idempotent producer: a broker that loses its state,
                # as the embedded one does on a restart, makes its sequence numbers fatal.)
                "max.in.flight.requests.per.connection": 1,
                "message.timeout.ms": config.delivery_timeout_ms,
                "partitioner": "murmur2_random",  # Java's: a producer keying by card lands where we do
                "linger.ms": 1,
            },
        )
        repartitioner = Repartitioner(
            DeliveryTracker(forward, "repartition/DLQ"),
            config.payment_topic,
            config.by_card_topic,
            config.dlq_topic,
            shards,
            config.max_idle_ms,
            config.heartbeat_s,
            config.max_input_skew_ms,
        )
    return PaymentScorer(
        config,
        consumer or scorer_consumer(config.bootstrap, config.consumer_group),
        sink,
        models,
        repartitioner,
        inputs,
        shards,
        label_partitions,
        ensure_internal_topic=(
            (lambda: ensure_topics(config.bootstrap, [config.by_card_topic], partitions=shards))
            if config.repartition
            else lambda: None
        ),
    )


@contextmanager
def stop_on_signals() -> Iterator[Callable[[], bool]]:
    """SIGINT/SIGTERM ask the loop to stop after the batch in hand, instead of interrupting it.

    Dagster terminates a run by interrupting its process; the scorer then writes and commits
    what it holds, closes the consumer and returns. A second signal interrupts at once.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    requested = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handle(signum: int, frame: object) -> None:
        if requested.is_set():
            raise KeyboardInterrupt
        logger.info("received %s: finishing the batch in hand, then stopping", signal.Signals(signum).name)
        requested.set()

    for sig in previous:
        signal.signal(sig, handle)
    try:
        yield requested.is_set
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_scorer(
    config: ScorerConfig,
    *,
    max_messages: int | None = None,
    idle_timeout_s: float | None = None,
    on_progress: Callable[[ScorerStats], None] | None = None,
) -> ScorerStats:
    with stop_on_signals() as should_stop:  # a stop while connecting or restoring is honoured too
        scorer = build_scorer(config)
        stats = scorer.run(
            max_messages=max_messages,
            idle_timeout_s=idle_timeout_s,
            should_stop=should_stop,
            on_progress=on_progress,
        )
        stats.interrupted = should_stop()
    return stats
