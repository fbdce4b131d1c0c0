"""Orchestrates one benchmark run: its own broker (unless given), database and model; every phase; the report."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from payment_platform.bench import load, measure
from payment_platform.bench.options import add_arguments
from payment_platform.bench.report import Progress, machine, say, table, versions
from payment_platform.bench.soak import soak, soak_table
from payment_platform.bench.worker import Worker, worker_main
from payment_platform.kafka.clients import DEFAULT_PARTITIONS, ensure_topics, payment_producer
from payment_platform.model import ModelRegistry
from payment_platform.model.pipeline import TrainingPlan, TrainingWindow, train_candidate
from payment_platform.store.database import connect_store
from payment_platform.stream.model_source import ModelSource
from payment_platform.world import World

MiB = 2**20


@dataclass(frozen=True)
class Sizes:
    """How much each phase does; `--smoke` shrinks everything to seconds."""

    payments: int
    invalid: int
    naive_messages: int
    naive_seconds: float
    latency_rates: tuple[int, ...]
    latency_seconds: float
    scaling_payments: int
    probes: tuple[tuple[int, float, float], ...]  # (cards, payments per card per day, days)
    model_cards: int
    idle_timeout_s: float


FULL = Sizes(
    payments=300_000,
    invalid=300,
    naive_messages=2_000,
    naive_seconds=10.0,
    latency_rates=(1_000, 5_000),
    latency_seconds=20.0,
    scaling_payments=200_000,
    probes=((1_000_000, 2.0, 1.0), (20_000, 2.0, 37.0)),
    model_cards=2_000,
    idle_timeout_s=5.0,
)
SMOKE = Sizes(
    payments=5_000,
    invalid=20,
    naive_messages=200,
    naive_seconds=3.0,
    latency_rates=(200,),
    latency_seconds=2.0,
    scaling_payments=5_000,
    probes=((20_000, 2.0, 1.0), (500, 2.0, 37.0)),
    model_cards=1_000,
    idle_timeout_s=2.0,
)


@dataclass(frozen=True)
class Bench:
    bootstrap: str
    db_url: str
    model_dir: Path
    run_id: str
    sizes: Sizes

    def topics(self, phase: str) -> tuple[str, str, str]:
        names = (
            f"bench-{self.run_id}-{phase}",
            f"bench-{self.run_id}-{phase}-labels",
            f"bench-{self.run_id}-{phase}.dlq",
        )
        ensure_topics(self.bootstrap, names)
        return names

    def scorer(self, phase: str, *, max_messages: int | None = None, idle_timeout_s: float = 5.0) -> Worker:
        argv = [
            "score",
            "--bootstrap",
            self.bootstrap,
            "--db-url",
            self.db_url,
            "--model-dir",
            str(self.model_dir),
            "--group",
            f"bench-{self.run_id}-{phase}",
            "--topics",
            ",".join(self.topics(phase)),
            "--idle-timeout-s",
            str(idle_timeout_s),
        ]
        if max_messages is not None:
            argv += ["--max-messages", str(max_messages)]
        return Worker(argv)


@contextmanager
def broker(bootstrap: str | None, workdir: Path) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    from payment_platform.kafka.embedded_broker import start_embedded_broker, stop_embedded_broker

    port = free_port()
    process = start_embedded_broker(port=port, log_path=workdir / "broker.log")
    say(f"started the embedded broker on 127.0.0.1:{port}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop_embedded_broker(process)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def database(server_url: str) -> Iterator[str]:
    """A fresh database on the server for this run only; dropped at the end."""
    name = f"pp_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    url = sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        connect_store(url).dispose()
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


def train_model(model_dir: Path, cards: int) -> str:
    """A small real model from the project's training code, saved and promoted in a temporary registry."""
    last = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=10)
    window = TrainingWindow(last - dt.timedelta(days=39), last)
    payments = World(seed=3, n_cards=cards).days(window.start, window.end)
    registry = ModelRegistry(model_dir)
    plan = TrainingPlan(window_days=40, warmup_days=7, test_days=10, gap_days=7)
    version = train_candidate(payments, window, plan, registry).version
    registry.promote(version)
    return version


def wait_for(workers: list[Worker], label: str, total: int | None, timeout_s: float) -> list[dict[str, Any]]:
    progress = Progress(label, total, "messages")
    deadline = time.monotonic() + timeout_s
    while any(w.running() for w in workers) and time.monotonic() < deadline:
        progress.update(sum(w.consumed for w in workers))
        time.sleep(0.2)
    return [w.wait(max(deadline - time.monotonic(), 1.0)) for w in workers]


def wait_assigned(workers: list[Worker], timeout_s: float = 60.0) -> None:
    """Until the group has settled: every partition owned, each worker holding some."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if sum(w.partitions for w in workers) >= DEFAULT_PARTITIONS and all(w.partitions for w in workers):
            time.sleep(1.0)
            return
        if not all(w.running() for w in workers):
            raise RuntimeError("a scorer worker exited before its group was assigned")
        time.sleep(0.1)
    raise RuntimeError(f"the scorer group was not assigned within {timeout_s:.0f}s")


def ceilings_and_baselines(bench: Bench, scored: load.Load) -> tuple[dict[str, Any], dict[str, Any], str]:
    topic = bench.topics("e2e")[0]
    producer = payment_producer(bench.bootstrap)
    produce = Progress("produce", scored.total, "messages")
    load.produce_all(producer, topic, scored.keys, scored.values, produce.update)

    consume = Progress("consume ceiling", scored.total, "messages")
    consume_rate = measure.consume_ceiling(bench.bootstrap, topic, DEFAULT_PARTITIONS, scored.total, consume.update)
    say(f"consume ceiling: {consume_rate:,.0f} msgs/s")

    rows = measure.scored_rows(scored.frame)
    inserts: dict[str, float] = {}
    for method, run in (
        ("PyMySQL executemany, 5k rows/commit", measure.insert_executemany),
        ("LOAD DATA LOCAL INFILE, 5k rows/commit", measure.insert_load_data),
    ):
        measure.truncate_scored(bench.db_url)
        progress = Progress(f"insert ceiling ({method})", len(rows), "rows")
        try:
            inserts[method] = run(bench.db_url, rows, progress.update)
            say(f"insert ceiling, {method}: {inserts[method]:,.0f} rows/s")
        except Exception as exc:  # noqa: BLE001 - a method the server refuses is reported, not fatal
            say(f"insert ceiling, {method}: not available ({type(exc).__name__}: {exc})")
    measure.truncate_scored(bench.db_url)
    insert_rate = max(inserts.values())
    lower = "consume" if consume_rate <= insert_rate else "insert"
    ceilings = {
        "consume_msgs_per_s": consume_rate,
        "insert_rows_per_s": inserts,
        "insert_best_rows_per_s": insert_rate,
        "lower_ceiling": lower,
        "lower_ceiling_per_s": min(consume_rate, insert_rate),
    }

    model = ModelSource(ModelRegistry(bench.model_dir)).current()
    naive_progress = Progress("naive consumer", bench.sizes.naive_messages, "messages")
    handled, naive_rate = measure.naive_consumer(
        bench.bootstrap,
        topic,
        DEFAULT_PARTITIONS,
        bench.db_url,
        model,
        max_messages=bench.sizes.naive_messages,
        max_seconds=bench.sizes.naive_seconds,
        progress=naive_progress.update,
    )
    measure.truncate_scored(bench.db_url)
    say(f"naive per-message consumer: {naive_rate:,.0f} msgs/s over {handled:,} messages")
    return ceilings, {"messages": handled, "msgs_per_s": naive_rate}, topic


def end_to_end(bench: Bench, scored: load.Load, ceilings: dict[str, Any]) -> dict[str, Any]:
    worker = bench.scorer("e2e", max_messages=scored.total, idle_timeout_s=15.0)
    result = wait_for([worker], "platform scorer", scored.total, timeout_s=1_800)[0]
    stored = measure.count_scored(bench.db_url)
    say(f"platform scorer: {result['payments_per_s']:,.0f} payments/s, {stored:,} rows stored")
    cpu = result.get("cpu_us_per_payment") or {}
    cores = os.cpu_count() or 1
    return {
        "cpu_us_per_payment": cpu,
        # Every process shares the cores: their summed CPU per payment caps the rate, whatever the pipeline.
        "cpu_bound_per_s": cores * 1e6 / cpu["total"] if cpu.get("total") else None,
        **{k: result[k] for k in ("consumed", "scored", "invalid", "duplicates", "batches", "span_s")},
        "stored_rows": stored,
        "payments_per_s": result["payments_per_s"],
        "ratio_to_lower_ceiling": result["payments_per_s"] / ceilings["lower_ceiling_per_s"],
        "ratio_to_insert_ceiling": result["payments_per_s"] / ceilings["insert_best_rows_per_s"],
        "worker": result,
    }


def latency(bench: Bench, rate: int, pool: Any) -> dict[str, Any]:
    phase = f"latency{rate}"
    measure.truncate_scored(bench.db_url)  # a fresh scorer restores its state from the rows: start from none
    worker = bench.scorer(phase, idle_timeout_s=bench.sizes.idle_timeout_s)
    wait_assigned([worker])
    producer = payment_producer(bench.bootstrap)
    topic = f"bench-{bench.run_id}-{phase}"
    # Fetch sessions and client metadata settle in the first seconds; those payments are not measured.
    warmup = Progress(f"latency at {rate:,}/s: warm-up", None, "payments")
    load.produce_paced(producer, topic, pool, rate=rate, duration_s=3.0, id_prefix="warm-", on_progress=warmup.update)
    prefix = f"lat{rate}-{bench.run_id}-"
    progress = Progress(f"latency at {rate:,}/s", int(rate * bench.sizes.latency_seconds), "payments")
    sent = load.produce_paced(
        producer,
        topic,
        pool,
        rate=rate,
        duration_s=bench.sizes.latency_seconds,
        id_prefix=prefix,
        on_progress=progress.update,
    )
    wait_for([worker], f"latency at {rate:,}/s: draining", sent, timeout_s=300)
    ms = measure.latencies_ms(bench.db_url, prefix)
    p50, p95, p99 = np.percentile(ms, [50, 95, 99]) if len(ms) else (float("nan"),) * 3
    say(f"latency at {rate:,}/s: p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms over {len(ms):,} rows")
    return {
        "offered_per_s": rate,
        "sent": sent,
        "scored": len(ms),
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "max_ms": float(ms.max()) if len(ms) else float("nan"),
    }


def memory(bench: Bench, e2e: dict[str, Any]) -> dict[str, Any]:
    worker = e2e["worker"]
    probes = []
    for cards, per_day, days in bench.sizes.probes:
        probe = Worker(["state", "--cards", str(cards), "--payments-per-card-day", str(per_day), "--days", str(days)])
        result = wait_for([probe], f"feature state probe, {cards:,} cards x {days:g} days", None, timeout_s=1_800)[0]
        probes.append(
            {
                "cards": result["cards"],
                "days": days,
                "payments_per_card": result["payments"] / max(result["cards"], 1),
                "payments": result["payments"],
                "rss_delta_mib": result["rss_delta_bytes"] / MiB,
                "rss_bytes_per_card": result["rss_delta_bytes"] / max(result["cards"], 1),
                "approx_bytes_per_card": result["state_bytes"] / max(result["cards"], 1),
            }
        )
        say(f"feature state, {cards:,} cards over {days:g} days: {probes[-1]['rss_delta_mib']:,.0f} MiB RSS")
    one_day, full_windows = probes[0], probes[-1]
    return {
        "scorer_peak_rss_mib": worker["peak_rss_mib"],
        "scorer_state_bytes": worker["state_bytes"],
        "scorer_active_cards": worker["active_cards"],
        "state_bytes_per_card": worker["state_bytes"] / max(worker["active_cards"], 1),
        "probes": probes,
        "million_cards_mib": one_day["rss_bytes_per_card"] * 1_000_000 / MiB,
        "million_cards_full_mib": full_windows["rss_bytes_per_card"] * 1_000_000 / MiB,
    }


def scaling(bench: Bench, scaled: load.Load) -> list[dict[str, Any]]:
    runs = []
    for processes in (1, 2):
        phase = f"scale{processes}"
        measure.truncate_scored(bench.db_url)  # same payments each time: every run inserts them all
        workers = [bench.scorer(phase, idle_timeout_s=bench.sizes.idle_timeout_s) for _ in range(processes)]
        wait_assigned(workers)
        producer = payment_producer(bench.bootstrap)
        load.produce_all(producer, f"bench-{bench.run_id}-{phase}", scaled.keys, scaled.values, lambda n: None)
        results = wait_for(workers, f"scaling, {processes} process(es)", scaled.total, timeout_s=1_800)
        consumed = sum(r["consumed"] for r in results)
        span = max(r["last"] for r in results) - min(r["first"] for r in results)
        runs.append(
            {
                "processes": processes,
                "consumed": consumed,
                "payments_per_s": consumed / span,
                "per_process": [r["consumed"] for r in results],
            }
        )
        say(f"scaling, {processes} process(es): {consumed / span:,.0f} payments/s")
    return runs


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="payment-platform bench",
        description="Measure throughput, latency and memory of the scorer against this machine's ceilings.",
    )
    add_arguments(parser)
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    sizes = SMOKE if args.smoke else FULL
    started = time.monotonic()
    results: dict[str, Any] = {"mode": "smoke" if args.smoke else "full", "machine": machine()}
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pp-bench-")))
        bootstrap = stack.enter_context(broker(args.bootstrap, workdir))
        db_url = stack.enter_context(database(args.mysql_url))
        engine = sa.create_engine(db_url)
        results["versions"] = versions(engine)
        engine.dispose()
        say("machine: " + ", ".join(f"{k}={v}" for k, v in results["machine"].items()))
        say("versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()))
        say("training the model")
        results["model_version"] = train_model(workdir / "models", sizes.model_cards)
        bench = Bench(bootstrap, db_url, workdir / "models", uuid.uuid4().hex[:8], sizes)
        if args.soak_minutes > 0:
            return run_soak(bench, args, results, started)
        say(f"building {sizes.payments:,} payments and {sizes.invalid} invalid messages")
        scored = load.build_load(sizes.payments, sizes.invalid)
        results["payments"] = sizes.payments
        results["invalid_messages"] = sizes.invalid
        results["ceilings"], results["naive"], _ = ceilings_and_baselines(bench, scored)
        results["end_to_end"] = end_to_end(bench, scored, results["ceilings"])
        pool = load.world_payments(20_000, seed=17)
        results["latency"] = [latency(bench, rate, pool) for rate in sizes.latency_rates]
        results["memory"] = memory(bench, results["end_to_end"])
        scaled = scored if sizes.scaling_payments >= sizes.payments else load.build_load(sizes.scaling_payments, 0, 23)
        results["scaling"] = [] if args.skip_scaling else scaling(bench, scaled)
    results["duration_s"] = time.monotonic() - started
    results["targets"] = targets(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str))
    print(table(results))
    print(f"\nresults written to {args.json}")
    return 0


def run_soak(bench: Bench, args: argparse.Namespace, results: dict[str, Any], started: float) -> int:
    worker = bench.scorer("soak", idle_timeout_s=60.0)
    try:
        wait_assigned([worker])
        topic = bench.topics("soak")[0]
        results["soak"] = soak(worker, bench.bootstrap, topic, bench.db_url, args.soak_rate, args.soak_minutes)
    finally:
        worker.stop()
    results["mode"] = "soak"
    results["duration_s"] = time.monotonic() - started
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str))
    print(soak_table(results["soak"]))
    print(f"\nresults written to {args.json}")
    return 0 if results["soak"]["lost"] == 0 and results["soak"]["scorer_alive"] else 1


def targets(results: dict[str, Any]) -> dict[str, bool]:
    e2e = results["end_to_end"]
    met = {
        "sustained >= 25,000 payments/s": e2e["payments_per_s"] >= 25_000,
        ">= 70% of the insert ceiling": e2e["ratio_to_insert_ceiling"] >= 0.7,
        "<= 1 GiB for 1,000,000 active cards (1 day of payments)": results["memory"]["million_cards_mib"] <= 1024,
    }
    at_1000 = [r for r in results["latency"] if r["offered_per_s"] == 1_000]
    if at_1000:
        met["p99 <= 250 ms at 1,000/s"] = at_1000[0]["p99_ms"] <= 250
    return met


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["worker"]:
        return worker_main(argv[1:])
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # unwind: stop the broker, drop the database
    try:
        return run(parse_args(argv))
    except KeyboardInterrupt:
        return 130
