"""The scorer child of the benchmark: the platform's scorer, instrumented from outside.

A scorer child is the platform's scorer, built by `build_scorer` from a `ScorerConfig`, with three things
added from outside: its consumer reports assignments, its `should_stop` callable (called once per loop turn)
notes when the scorer last made progress, and the score-store reads of the shared watermark, the terminal
feed and the duplicate lookup are counted and timed by wrapping the callables they go through.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from payment_platform.bench.child import PROGRESS_EVERY_S, emit, peak_rss_mib, stop_on_sigterm
from payment_platform.features import OnlineFeatures
from payment_platform.stream.stats import ScorerStats


class ReportingConsumer:
    """The scorer's consumer, reporting its assignment and when each consume call returned."""

    def __init__(self, inner: Consumer) -> None:
        self.inner = inner
        self.partitions: set[tuple[str, int]] = set()
        self.returned_at = 0.0

    def subscribe(self, topics: list[str], on_assign: Any = None, on_revoke: Any = None, **more: Any) -> None:
        def assigned(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            if on_assign:  # the scorer's own first: state restored before the bench is told it is ready
                on_assign(consumer, partitions)
            self.partitions |= {(tp.topic, tp.partition) for tp in partitions}
            emit("assigned", partitions=len(self.partitions))

        def revoked(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            self.partitions -= {(tp.topic, tp.partition) for tp in partitions}
            emit("assigned", partitions=len(self.partitions))
            if on_revoke:
                on_revoke(consumer, partitions)

        self.inner.subscribe(topics, on_assign=assigned, on_revoke=revoked, **more)

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        messages = self.inner.consume(num_messages, timeout)
        self.returned_at = time.time()
        return messages

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class RunClock:
    """The scorer's `should_stop`: notes when its counters first and last moved, reports progress, and
    says stop once SIGTERM came. Called at the top of every loop turn, so "last" is when the last write
    was collected; "first" is when the consume call that brought the first work returned.

    The stop is the bench's end of a run, not an operator's: it waits for the write in flight (and never
    cuts short the sink's retries, e.g. of a deadlock between scorers), so every run ends with everything
    written. On the stop it sizes the feature state, which the scorer drops with its partitions as it
    closes."""

    def __init__(self, scorer: Any, consumer: ReportingConsumer, stop: threading.Event) -> None:
        self.stats: ScorerStats = scorer.stats
        self.sink = scorer.sink
        self.consumer = consumer
        self.stop = stop
        self.features: OnlineFeatures = scorer.features
        self.state: dict[str, int] = {}
        self.first: float | None = None
        self.last: float | None = None
        self._mark = (0, 0, 0)
        self._loop = threading.get_ident()
        self._reported = 0.0

    def __call__(self) -> bool:
        if threading.get_ident() != self._loop:  # the sink's thread, retrying a write or awaiting a delivery
            return False
        stats = self.stats
        mark = (stats.consumed, stats.handled, stats.labels)
        if mark != self._mark:
            self._mark = mark
            self.last = time.time()
            if self.first is None:
                self.first = self.consumer.returned_at
        now = time.monotonic()
        if now - self._reported >= PROGRESS_EVERY_S:
            self._reported = now
            emit("progress", consumed=stats.consumed, handled=stats.handled, labels=stats.labels)
        if not self.stop.is_set() or self.sink.busy:
            return False
        if not self.state:
            self.state = {
                "state_bytes": self.features.approx_bytes(),
                "active_cards": self.features.active_cards,
                "active_terminals": len(self.features.terminals),
            }
        return True


class TimedCalls:
    """Number and total duration of the calls through one callable."""

    def __init__(self) -> None:
        self.calls = 0
        self.seconds = 0.0

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args)
            finally:
                self.calls += 1
                self.seconds += time.perf_counter() - started

        return timed

    def report(self) -> dict[str, float]:
        return {"calls": self.calls, "seconds": self.seconds}


class RetryCounter(logging.Handler):
    """Counts the score store's retried failures (warnings of `store.errors`), deadlocks apart: several
    scorers writing labels at once can deadlock in InnoDB, and each is a retried transaction."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.deadlocks = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        self.deadlocks += "Deadlock" in record.getMessage()


def instrument(scorer: Any) -> dict[str, TimedCalls]:
    """Time the scorer's reads of the score store by kind, where its internals are as this bench knows
    them (a kind missing from the report means the scorer changed: see the README's list of hooks)."""
    found: dict[str, TimedCalls] = {}
    watermark = getattr(scorer, "watermark", None)
    if watermark is not None and hasattr(watermark, "read_progress"):
        found["progress"] = TimedCalls()
        watermark.read_progress = found["progress"].wrap(watermark.read_progress)
    source = getattr(getattr(getattr(scorer, "batches", None), "feed", None), "source", None)
    if source is not None and hasattr(source, "retry"):
        found["terminal_feed"] = TimedCalls()
        source.retry = found["terminal_feed"].wrap(source.retry)
    batches = getattr(scorer, "batches", None)
    if batches is not None and hasattr(batches, "lookup"):
        found["duplicate_lookup"] = TimedCalls()
        batches.lookup = found["duplicate_lookup"].wrap(batches.lookup)
    return found


def run_score(args: argparse.Namespace) -> None:
    from payment_platform.kafka.clients import scorer_consumer
    from payment_platform.stream.config import ScorerConfig
    from payment_platform.stream.runner import build_scorer

    fields = json.loads(args.config)
    config = ScorerConfig(**{**fields, "model_dir": Path(fields["model_dir"])})
    stop = stop_on_sigterm()
    consumer = ReportingConsumer(scorer_consumer(config.bootstrap, config.consumer_group))
    scorer = build_scorer(config, consumer=consumer)  # type: ignore[arg-type]
    reads = instrument(scorer)
    retries = RetryCounter()
    logging.getLogger("payment_platform.store.errors").addHandler(retries)
    clock = RunClock(scorer, consumer, stop)
    stats = scorer.run(max_messages=args.max_messages, idle_timeout_s=args.idle_timeout_s, should_stop=clock)
    source = getattr(getattr(getattr(scorer, "batches", None), "feed", None), "source", None)
    repartitioner = getattr(scorer, "repartitioner", None)
    emit(
        "done",
        pid=os.getpid(),
        consumed=stats.consumed,
        scored=stats.scored,
        handled=stats.handled,
        invalid=stats.invalid,
        duplicates=stats.duplicates,
        conflicts=stats.conflicts,
        labels=stats.labels,
        mis_keyed=stats.mis_keyed,
        decisions=stats.decisions,
        batches=stats.batches,
        forwarded=repartitioner.counts.forwarded if repartitioner is not None else 0,
        first=clock.first,
        last=clock.last,
        store_reads={kind: timed.report() for kind, timed in reads.items()},
        store_retries=retries.count,
        deadlocks=retries.deadlocks,
        terminal_rows_read=getattr(source, "rows_read", None),
        peak_rss_mib=peak_rss_mib(),
        **(clock.state or {"state_bytes": 0, "active_cards": 0, "active_terminals": 0}),
    )
