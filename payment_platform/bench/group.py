"""Scorer processes in one consumer group on one load: the harness of the end-to-end and scaling runs.

Each run starts from an empty score store (a scorer restores cards and reads terminal windows from it).
The span of a run is from the first moment any scorer had work (its consume call returned it) to the last
moment any scorer's counters moved (its last write collected), so group joins, idle waits and the stop
are not counted. CPU is sampled from /proc for every scorer process, MariaDB and the broker, and read
off the samples at those two moments.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from payment_platform.bench import load, measure
from payment_platform.bench.cpu import CpuSampler, cpu_per_payment_us, process_cpu_s, service_pids
from payment_platform.bench.report import Progress, say
from payment_platform.bench.worker import Worker
from payment_platform.kafka.clients import admin_client, ensure_topics, partition_count, payment_producer
from payment_platform.stream.config import ScorerConfig


@dataclass(frozen=True)
class Topics:
    payments: str
    labels: str
    dlq: str
    decisions: str

    def all(self) -> list[str]:
        return [self.payments, self.labels, self.dlq, self.decisions]


@dataclass(frozen=True)
class Platform:
    """Where a benchmark run's scorers connect."""

    bootstrap: str
    db_url: str
    model_dir: Path
    run_id: str
    broker_pid: int | None = None  # the embedded broker this run started; else any local one is counted

    def services(self) -> dict[str, list[str]]:
        """The pids of MariaDB and of the broker, whose CPU a run counts. Other sessions on this machine
        may run brokers of their own: only this run's is counted when the bench started it."""
        found = service_pids()
        if self.broker_pid is not None:
            found["broker"] = [str(self.broker_pid)]
        return found

    def topics(self, phase: str, *, payments: str | None = None, labels: str | None = None) -> Topics:
        """The phase's topics, created; `payments` and `labels` may name topics shared between phases."""
        prefix = f"bench-{self.run_id}-{phase}"
        topics = Topics(payments or prefix, labels or f"{prefix}-labels", f"{prefix}.dlq", f"{prefix}.decisions")
        ensure_topics(self.bootstrap, topics.all())
        return topics

    def config(self, group: str, topics: Topics, *, repartition: bool) -> ScorerConfig:
        return ScorerConfig(
            bootstrap=self.bootstrap,
            consumer_group=f"bench-{self.run_id}-{group}",
            payment_topic=topics.payments,
            labels_topic=topics.labels,
            dlq_topic=topics.dlq,
            decisions_topic=topics.decisions,
            db_url=self.db_url,
            model_dir=self.model_dir,
            repartition=repartition,
        )

    def scorer(self, config: ScorerConfig) -> Worker:
        fields = {name: getattr(config, name) for name in config.__dataclass_fields__}
        fields["model_dir"] = str(config.model_dir)
        return Worker(["score", "--config", json.dumps(fields)])

    def drop(self, names: list[str]) -> None:
        """Delete a finished phase's topics, so the in-memory broker does not carry them (best effort)."""
        admin = admin_client(self.bootstrap)  # held until the futures resolve: a collected client cancels them
        try:
            existing = set(admin.list_topics(timeout=10).topics)
            present = [name for name in names if name in existing]
            if not present:
                return
            for future in admin.delete_topics(present, operation_timeout=10).values():
                future.result(timeout=15)
        except Exception as exc:  # noqa: BLE001 - a broker that keeps them only holds more memory
            say(f"could not delete topics ({type(exc).__name__}); the broker keeps them")


def subscribed_partitions(config: ScorerConfig) -> int:
    """Partitions of every topic a scorer of this configuration subscribes to."""
    topics = [config.shard_topic, config.labels_topic]
    if config.repartition:
        topics.append(config.payment_topic)
    return sum(partition_count(config.bootstrap, topic) for topic in topics)


def wait_assigned(workers: list[Worker], partitions: int, timeout_s: float = 90.0, settle_s: float = 2.0) -> None:
    """Until the group has settled: every partition owned, each worker holding some, unchanged for
    `settle_s` (an incremental rebalance passes through moments where the counts already add up)."""
    deadline = time.monotonic() + timeout_s
    settled: tuple[int, ...] | None = None
    since = 0.0
    while time.monotonic() < deadline:
        counts = tuple(w.partitions for w in workers)
        if sum(counts) == partitions and all(counts):
            if counts != settled:
                settled, since = counts, time.monotonic()
            if time.monotonic() - since >= settle_s:
                return
        else:
            settled = None
        if not all(w.running() for w in workers):
            raise RuntimeError("a scorer worker exited before its group was assigned")
        time.sleep(0.1)
    raise RuntimeError(f"the scorer group was not assigned within {timeout_s:.0f}s")


def wait_handled(workers: list[Worker], label: str, total: int, labels: int, timeout_s: float) -> None:
    """Until the workers together report `total` payments handled (stored, duplicate or dead-lettered) and
    `labels` labels consumed."""
    progress = Progress(label, total, "payments")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = sum(w.handled for w in workers)
        progress.update(done)
        if done >= total and sum(w.labels for w in workers) >= labels:
            return
        if not all(w.running() for w in workers):
            raise RuntimeError(f"{label}: a scorer exited before every payment was handled")
        time.sleep(0.2)
    raise RuntimeError(f"{label}: {sum(w.handled for w in workers):,} of {total:,} handled in {timeout_s:.0f}s")


def finish(workers: list[Worker]) -> list[dict[str, Any]]:
    """Stop every worker at once (one by one, the others would take over the partitions of each in turn)."""
    for worker in workers:
        worker.ask_to_stop()
    return [worker.wait(120) for worker in workers]


def database_background(pids: list[str], seconds: float = 1.0) -> float:
    """Cores MariaDB uses for others during a second before a run. The server is shared on this machine:
    its CPU in a run includes other sessions' work, and this says how much there was just before."""
    before = sum(process_cpu_s(pid) or 0.0 for pid in pids)
    time.sleep(seconds)
    return (sum(process_cpu_s(pid) or 0.0 for pid in pids) - before) / seconds


def run_group(
    platform: Platform,
    config: ScorerConfig,
    processes: int,
    scored: load.Load,
    *,
    label: str,
    with_labels: bool,
    produce_after_join: bool,
    timeout_s: float = 1_800,
) -> dict[str, Any]:
    """Score `scored` with `processes` scorers of one group; throughput, CPU per payment, store reads.

    With `produce_after_join`, the payments are produced once the group has settled (so that every process
    starts together: the broker's CPU then includes taking them in); otherwise they are already there."""
    measure.truncate_scored(platform.db_url)
    workers = [platform.scorer(config) for _ in range(processes)]
    services = platform.services()
    background = database_background(services["database"])
    names = {f"scorer-{i}": [str(w.pid)] for i, w in enumerate(workers)}
    try:
        with CpuSampler({**names, **services}) as sampler:
            if produce_after_join:
                wait_assigned(workers, subscribed_partitions(config))
                producer = payment_producer(platform.bootstrap)
                load.produce_all(producer, config.payment_topic, scored.keys, scored.values, lambda n: None)
                if with_labels:
                    load.produce_all(
                        producer, config.labels_topic, scored.label_keys, scored.label_values, lambda n: None
                    )
            wait_handled(workers, label, scored.total, scored.labels if with_labels else 0, timeout_s)
            results = finish(workers)
    finally:
        for worker in workers:
            worker.stop()
    first = min(r["first"] for r in results if r["first"] is not None)
    last = max(r["last"] for r in results if r["last"] is not None)
    span = last - first
    used = sampler.between(first, last)
    scorer_s = sum(used[name] for name in names)
    cpu = cpu_per_payment_us({"scorer": scorer_s, **{role: used[role] for role in services}}, scored.total)
    reads: dict[str, dict[str, float]] = {}
    for result in results:
        for kind, timed in result["store_reads"].items():
            total = reads.setdefault(kind, {"calls": 0, "seconds": 0.0})
            total["calls"] += timed["calls"]
            total["seconds"] += timed["seconds"]
    return {
        "processes": processes,
        "repartition": config.repartition,
        "with_labels": with_labels,
        "messages": scored.total,
        "label_messages": scored.labels if with_labels else 0,
        "span_s": span,
        "payments_per_s": scored.total / span if span > 0 else 0.0,
        "cpu_us_per_payment": cpu,
        # Every process shares the cores: their summed CPU per payment caps the rate, whatever the pipeline.
        "cpu_bound_per_s": (os.cpu_count() or 1) * 1e6 / cpu["total"] if cpu["total"] else None,
        "store_reads": reads,
        "database_background_cores": background,
        "store_read_us_per_payment": {kind: r["seconds"] * 1e6 / scored.total for kind, r in reads.items()},
        "terminal_rows_read": sum(r["terminal_rows_read"] or 0 for r in results),
        "store_retries": sum(r["store_retries"] for r in results),
        "deadlocks": sum(r["deadlocks"] for r in results),
        **{key: sum(r[key] for r in results) for key in ("consumed", "scored", "invalid", "duplicates", "labels")},
        "decisions": sum(r["decisions"] for r in results),
        "per_process": [
            {
                "scored": r["scored"],
                "forwarded": r["forwarded"],
                "labels": r["labels"],
                "cpu_s": used[f"scorer-{i}"],
                "cpu_us_per_group_payment": used[f"scorer-{i}"] * 1e6 / scored.total,
                "peak_rss_mib": r["peak_rss_mib"],
            }
            for i, r in enumerate(results)
        ],
        "workers": results,
    }
