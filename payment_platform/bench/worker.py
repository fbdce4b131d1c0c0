"""Work the benchmark runs in child processes: scorers, a reader of the decisions topic, state probes.

Children report on stdout as JSON lines (`assigned`, `progress`, `done`), so the parent can wait for a
consumer group to settle, print progress, and collect each process's own figures. A scorer child is the
platform's scorer, built by `build_scorer` from a `ScorerConfig`, with three things added from outside:
its consumer reports assignments, its `should_stop` callable (called once per loop turn) notes when the
scorer last made progress, and the score-store reads of the shared watermark, the terminal feed and the
duplicate lookup are counted and timed by wrapping the callables they go through.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Message, TopicPartition

from payment_platform.features import OnlineFeatures
from payment_platform.stream.stats import ScorerStats

PROGRESS_EVERY_S = 0.5
# State probes: freed numpy temporaries (the generated payments) go back to the OS at once, so RSS counts
# the state. The state's own allocations (arrays of a few KB, strings, dicts) are made the same either way.
PROBE_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


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


def stop_on_sigterm() -> threading.Event:
    """SIGTERM asks the child to finish what it holds and report (the parent's way to end a run)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    return stop


# --- the scorer child -------------------------------------------------------------------------------


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
    if watermark is not None and hasattr(watermark, "read"):
        found["progress"] = TimedCalls()
        watermark.read = found["progress"].wrap(watermark.read)
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


# --- the decisions reader ---------------------------------------------------------------------------


def run_decisions(args: argparse.Namespace) -> None:
    """Read the decisions topic as the system that authorises payments would, and note when each decision
    of a run (transaction ids `<prefix><n>`) became readable here."""
    from payment_platform.kafka.clients import partition_count

    stop = stop_on_sigterm()
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": f"bench-decisions-{os.getpid()}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": args.fetch_wait_ms,
        }
    )
    partitions = partition_count(args.bootstrap, args.topic)
    consumer.assign([TopicPartition(args.topic, p, 0) for p in range(partitions)])
    consumer.consume(1, 0.5)  # the first fetch: connection and offsets ready before the parent sends
    emit("assigned", partitions=partitions)
    arrived: dict[int, float] = {}
    prefix = args.prefix
    reported = 0.0
    try:
        while not stop.is_set():
            # poll() returns as soon as one decision is there; consume(n, timeout) would wait out its
            # timeout for n. What came with it is drained without waiting.
            first = consumer.poll(0.1)
            now = time.time()
            messages = [] if first is None else [first, *consumer.consume(10_000, 0)]
            for message in messages:
                if message.error() is not None:
                    continue
                tx = orjson.loads(message.value() or b"{}").get("transaction_id", "")
                if tx.startswith(prefix):
                    arrived.setdefault(int(tx[len(prefix) :]), now)
            if now - reported >= PROGRESS_EVERY_S:
                reported = now
                emit("progress", consumed=len(arrived), handled=len(arrived))
    finally:
        consumer.close()
    emit("done", n=list(arrived), t=list(arrived.values()))


# --- state probes -----------------------------------------------------------------------------------


def run_state(args: argparse.Namespace) -> None:
    """Build the feature state of a scorer that owns `--own` of `--shards` shards (and every terminal)."""
    from payment_platform.bench.state import Population, build

    population = Population(
        cards=args.cards,
        payments_per_card=args.payments_per_card,
        days=args.days,
        terminals_per_card=args.terminals_per_card,
        shards=args.shards,
        seed=args.seed,
    )
    owned = {int(s) for s in args.own.split(",")}
    started = time.monotonic()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.monotonic() - last[0] >= PROGRESS_EVERY_S:
            last[0] = time.monotonic()
            emit("progress", consumed=done, handled=done, total=total)

    features, report = build(population, owned, current_rss_bytes, progress)
    emit(
        "done",
        **vars(report),
        owned=sorted(owned),
        seconds_total=time.monotonic() - started,
        peak_rss_mib=peak_rss_mib(),
    )
    del features


def run_growth(args: argparse.Namespace) -> None:
    """Check the direct build against CardState.add / TerminalState.add_payments, then measure on a sample
    what growing the state batch by batch, as a live scorer does, costs in RSS against the direct build."""
    from payment_platform.bench.state import Population, build, check_layout, incremental

    check_layout(Population(cards=2_000, chunk_cards=700, seed=args.seed + 1))
    population = Population(cards=args.cards, payments_per_card=args.payments_per_card, seed=args.seed)
    before = current_rss_bytes()
    direct, report = build(population, set(range(population.shards)), current_rss_bytes)
    direct_bytes = current_rss_bytes() - before
    before = current_rss_bytes()
    started = time.monotonic()
    fed = incremental(population)
    fed_seconds = time.monotonic() - started
    fed_bytes = current_rss_bytes() - before
    emit(
        "done",
        cards=report.cards,
        payments=report.payments,
        direct_rss_bytes=direct_bytes,
        fed_rss_bytes=fed_bytes,
        fed_seconds=fed_seconds,
        direct_approx_bytes=direct.approx_bytes(),
        fed_approx_bytes=fed.approx_bytes(),
    )


def worker_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="payment_platform.bench worker")
    modes = parser.add_subparsers(dest="mode", required=True)
    score = modes.add_parser("score")
    score.add_argument("--config", required=True, help="ScorerConfig fields as JSON")
    score.add_argument("--max-messages", type=int, default=None)
    score.add_argument("--idle-timeout-s", type=float, default=None)
    decisions = modes.add_parser("decisions")
    decisions.add_argument("--bootstrap", required=True)
    decisions.add_argument("--topic", required=True)
    decisions.add_argument("--prefix", required=True)
    decisions.add_argument("--fetch-wait-ms", type=int, default=10)
    state = modes.add_parser("state")
    state.add_argument("--cards", type=int, required=True)
    state.add_argument("--payments-per-card", type=float, default=74.0)
    state.add_argument("--days", type=float, default=30.0)
    state.add_argument("--terminals-per-card", type=float, default=2.0)
    state.add_argument("--shards", type=int, default=4)
    state.add_argument("--own", default="0,1,2,3")
    state.add_argument("--seed", type=int, default=1)
    growth = modes.add_parser("growth")
    growth.add_argument("--cards", type=int, required=True)
    growth.add_argument("--payments-per-card", type=float, default=74.0)
    growth.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("payment_platform.stream").setLevel(logging.INFO)  # why a scorer stopped, in the bench's log
    {"score": run_score, "decisions": run_decisions, "state": run_state, "growth": run_growth}[args.mode](args)
    return 0


class Worker:
    """A child process of the benchmark, its JSON-line events read in a thread."""

    def __init__(self, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "payment_platform.bench", "worker", *argv],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.partitions = 0
        self.consumed = 0
        self.handled = 0
        self.labels = 0
        self.result: dict[str, Any] | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

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
                self.handled = event["handled"]
                self.labels = event.get("labels", 0)
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

    def finish(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Ask the child to stop (SIGTERM: it finishes the batch in hand and reports), then wait for it."""
        self.ask_to_stop()
        return self.wait(timeout_s)

    def ask_to_stop(self) -> None:
        if self.running():
            self.process.terminate()

    def stop(self) -> None:
        """End the child whatever it is doing (cleanup after a failure)."""
        if self.running():
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
