"""Builds a scorer from configuration and runs it until stopped: shared by the CLI and the Dagster job."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from payment_platform.kafka.clients import check_broker, ensure_topics, payment_producer, scorer_consumer
from payment_platform.model import ModelRegistry
from payment_platform.store.database import connect_store
from payment_platform.store.writer import ScoreWriter
from payment_platform.stream.model_source import ModelSource
from payment_platform.stream.scorer import PaymentScorer, ScorerConfig, ScorerStats

logger = logging.getLogger(__name__)

DLQ_MAX_MESSAGE_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class ScorerSetup:
    """Everything a scorer process needs to know."""

    bootstrap: str
    consumer_group: str
    payment_topic: str
    labels_topic: str
    dlq_topic: str
    db_url: str
    model_dir: Path
    batch_size: int = 5_000


def build_scorer(setup: ScorerSetup) -> PaymentScorer:
    """Connect to everything and fail fast, with what to fix, when something is missing."""
    models = ModelSource(ModelRegistry(setup.model_dir))
    models.current()  # raises NoPromotedModel before any connection is opened
    check_broker(setup.bootstrap)
    engine = connect_store(setup.db_url)
    ensure_topics(setup.bootstrap, [setup.payment_topic, setup.labels_topic, setup.dlq_topic])
    config = ScorerConfig(
        payment_topic=setup.payment_topic,
        labels_topic=setup.labels_topic,
        dlq_topic=setup.dlq_topic,
        batch_size=setup.batch_size,
    )
    return PaymentScorer(
        config,
        scorer_consumer(setup.bootstrap, setup.consumer_group),
        # Forwards a dead letter whatever its size: a topic that let it in has room for it in its DLQ.
        payment_producer(setup.bootstrap, **{"message.max.bytes": DLQ_MAX_MESSAGE_BYTES}),
        ScoreWriter(engine),
        models,
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
    setup: ScorerSetup,
    *,
    max_messages: int | None = None,
    idle_timeout_s: float | None = None,
    on_progress: Callable[[ScorerStats], None] | None = None,
) -> ScorerStats:
    scorer = build_scorer(setup)
    with stop_on_signals() as should_stop:
        stats = scorer.run(
            max_messages=max_messages,
            idle_timeout_s=idle_timeout_s,
            should_stop=should_stop,
            on_progress=on_progress,
        )
        stats.interrupted = should_stop()
    return stats
