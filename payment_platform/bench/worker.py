"""Work the benchmark runs in child processes: a scorer (for memory, latency and scaling) and a state probe.

Children report on stdout as JSON lines (`assigned`, `progress`, `done`), so the parent can wait for a
consumer group to settle, print progress and collect peak memory (ru_maxrss) per process.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from confluent_kafka import Consumer, Message, TopicPartition

from payment_platform.bench.cpu import cpu_per_payment_us, cpu_snapshot, service_pids
from payment_platform.features import FeatureState


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def peak_rss_mib() -> float:
    """Peak RSS of this process since it started. Not `getrusage`'s ru_maxrss: Linux carries that over
    exec, so a worker would report the benchmark parent's size at the moment it was forked."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class TimedConsumer:
    """Wraps the scorer's consumer: reports its assignment and times the span from the first batch received
    to the end of the last batch's processing, so group joins and idle waits are not counted."""

    def __init__(self, inner: Consumer) -> None:
        self.inner = inner
        self.partitions: set[tuple[str, int]] = set()
        self.consumed = 0
        self.first: float | None = None
        self.done: float | None = None
        self._holding = False
        self._last_progress = 0.0
        self._services = service_pids()
        self.cpu_first: dict[str, float] = {}
        self.cpu_done: dict[str, float] = {}

    def subscribe(self, topics: list[str], on_assign: Any = None, on_revoke: Any = None, **_: Any) -> None:
        def assigned(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            if on_assign:  # the scorer's own: state restored before the bench is told it is ready
                on_assign(consumer, partitions)
            self.partitions |= {(tp.topic, tp.partition) for tp in partitions}
            emit("assigned", partitions=len(self.partitions))

        def revoked(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            self.partitions -= {(tp.topic, tp.partition) for tp in partitions}
            emit("assigned", partitions=len(self.partitions))
            if on_revoke:
                on_revoke(consumer, partitions)

        self.inner.subscribe(topics, on_assign=assigned, on_revoke=revoked, on_lost=revoked)

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        called = time.time()
        if self._holding:
            self.done = called
        messages = self.inner.consume(num_messages, timeout)
        if self._holding and not messages:  # a busy stretch ended: read /proc once, not on every batch
            self.cpu_done = cpu_snapshot(self._services)
        self._holding = bool(messages)
        if messages:
            if self.first is None:
                self.first = time.time()
                self.cpu_first = cpu_snapshot(self._services)
            self.consumed += len(messages)
        if called - self._last_progress >= 1.0:
            self._last_progress = called
            emit("progress", consumed=self.consumed)
        return messages

    def close(self) -> None:
        if self._holding:
            self.done = time.time()
            self.cpu_done = cpu_snapshot(self._services)
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def run_score(args: argparse.Namespace) -> None:
    from payment_platform.stream.runner import ScorerSetup, build_scorer

    payment_topic, labels_topic, dlq_topic = args.topics.split(",")
    setup = ScorerSetup(
        bootstrap=args.bootstrap,
        consumer_group=args.group,
        payment_topic=payment_topic,
        labels_topic=labels_topic,
        dlq_topic=dlq_topic,
        db_url=args.db_url,
        model_dir=Path(args.model_dir),
        batch_size=args.batch_size,
    )
    scorer = build_scorer(setup)
    timed = TimedConsumer(scorer.consumer)
    scorer.consumer = timed  # type: ignore[assignment]
    stats = scorer.run(max_messages=args.max_messages, idle_timeout_s=args.idle_timeout_s)
    span = (timed.done or time.time()) - (timed.first or time.time())
    emit(
        "done",
        consumed=stats.consumed,
        scored=stats.scored,
        invalid=stats.invalid,
        duplicates=stats.duplicates,
        batches=stats.batches,
        first=timed.first,
        last=timed.done,
        span_s=span,
        payments_per_s=stats.consumed / span if span > 0 else 0.0,
        cpu_us_per_payment=cpu_per_payment_us(timed.cpu_first, timed.cpu_done, stats.consumed)
        if timed.cpu_first and timed.cpu_done
        else {},
        peak_rss_mib=peak_rss_mib(),
        state_bytes=scorer.features.approx_bytes(),
        active_cards=scorer.features.active_cards,
        active_terminals=scorer.features.active_terminals,
    )


def state_probe_batches(cards: int, payments_per_card_day: float, days: float, seed: int) -> Any:
    """Payment batches of `cards` cards over `days` days, in time order, generated lazily (not held)."""
    rng = np.random.default_rng(seed)
    total = int(cards * payments_per_card_day * days)
    start_ms = int((time.time() - days * 86_400) * 1000)
    span_ms = int(days * 86_400_000)
    batch = 10_000
    for first in range(0, total, batch):
        n = min(batch, total - first)
        card = (np.arange(first, first + n) * 7_919) % cards  # every card pays in turn, interleaved
        t_ms = start_ms + (np.arange(first, first + n) * span_ms) // total
        yield (
            pd.DataFrame(
                {
                    "transaction_id": [f"probe-{i}" for i in range(first, first + n)],
                    "customer_id": [f"C{c:07d}" for c in card.tolist()],
                    "terminal_id": [f"T{t:07d}" for t in rng.integers(0, 2 * cards, n).tolist()],
                    "amount": np.round(rng.lognormal(3.5, 1.0, n), 2),
                    "currency": "EUR",
                    "event_time": pd.to_datetime(t_ms, unit="ms", utc=True),
                }
            ),
            first + n,
            total,
        )


def run_state_probe(args: argparse.Namespace) -> None:
    """Memory of the online feature state for a number of active cards: RSS before and after feeding it."""
    before = current_rss_bytes()
    state = FeatureState()
    fed = 0
    for batch, fed, total in state_probe_batches(args.cards, args.payments_per_card_day, args.days, args.seed):
        state.featurise(batch)
        del batch
        emit("progress", consumed=fed, total=total)
    after = current_rss_bytes()
    emit(
        "done",
        cards=state.active_cards,
        terminals=state.active_terminals,
        payments=fed,
        rss_delta_bytes=after - before,
        state_bytes=state.approx_bytes(),
        peak_rss_mib=peak_rss_mib(),
    )


def worker_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="payment_platform.bench worker")
    modes = parser.add_subparsers(dest="mode", required=True)
    score = modes.add_parser("score")
    score.add_argument("--bootstrap", required=True)
    score.add_argument("--db-url", required=True)
    score.add_argument("--model-dir", required=True)
    score.add_argument("--group", required=True)
    score.add_argument("--topics", required=True, help="payments,labels,dlq")
    score.add_argument("--max-messages", type=int, default=None)
    score.add_argument("--idle-timeout-s", type=float, default=5.0)
    score.add_argument("--batch-size", type=int, default=5_000)
    probe = modes.add_parser("state")
    probe.add_argument("--cards", type=int, required=True)
    probe.add_argument("--payments-per-card-day", type=float, default=2.0)
    probe.add_argument("--days", type=float, default=1.0)
    probe.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("payment_platform.stream").setLevel(logging.INFO)  # why a scorer stopped, in the bench's log
    {"score": run_score, "state": run_state_probe}[args.mode](args)
    return 0


class Worker:
    """A child process of the benchmark, its JSON-line events read in a thread."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "payment_platform.bench", "worker", *argv],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.partitions = 0
        self.consumed = 0
        self.result: dict[str, Any] | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if event["event"] == "assigned":
                self.partitions = event["partitions"]
            elif event["event"] == "progress":
                self.consumed = event["consumed"]
            elif event["event"] == "done":
                self.result = event

    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout_s: float) -> dict[str, Any]:
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise RuntimeError(f"benchmark worker did not finish within {timeout_s:.0f}s") from None
        self._reader.join(5)
        if code != 0 or self.result is None:
            raise RuntimeError(f"benchmark worker failed (exit code {code})")
        return self.result

    def stop(self) -> None:
        if self.running():
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
