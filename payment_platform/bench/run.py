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

import sqlalchemy as sa

from payment_platform.bench import load, measure
from payment_platform.bench.group import Platform, run_group, subscribed_partitions, wait_assigned
from payment_platform.bench.latency import latency_run
from payment_platform.bench.memory import state_memory
from payment_platform.bench.options import add_arguments
from payment_platform.bench.report import Progress, machine, say, table, versions
from payment_platform.bench.soak import soak, soak_table
from payment_platform.bench.worker import worker_main
from payment_platform.kafka.clients import DEFAULT_PARTITIONS, payment_producer
from payment_platform.model import ModelRegistry
from payment_platform.model.pipeline import TrainingPlan, train_candidate, training_window
from payment_platform.store.database import connect_store
from payment_platform.stream.model_source import ModelSource
from payment_platform.world import World

MiB = 2**20
GiB = 2**30


@dataclass(frozen=True)
class Sizes:
    """How much each phase does; `--smoke` shrinks everything to seconds."""

    payments: int
    invalid: int
    naive_messages: int
    naive_seconds: float
    end_to_end: tuple[tuple[bool, bool], ...]  # (repartition, labels) of each run
    latency_rates: tuple[int, ...]
    latency_modes: tuple[bool, ...]  # repartition on / off
    latency_seconds: float
    warm_up_seconds: float
    scaling_payments: int
    scaling_processes: tuple[int, ...]
    scaling_modes: tuple[bool, ...]
    memory_cards: int
    growth_cards: int
    model_cards: int


FULL = Sizes(
    payments=300_000,
    invalid=300,
    naive_messages=2_000,
    naive_seconds=10.0,
    end_to_end=((True, True), (True, False), (False, True), (False, False)),
    latency_rates=(1_000, 5_000),
    latency_modes=(True, False),
    latency_seconds=20.0,
    warm_up_seconds=3.0,
    scaling_payments=200_000,
    scaling_processes=(1, 2, 4),
    scaling_modes=(True, False),
    memory_cards=1_000_000,
    growth_cards=20_000,
    model_cards=2_000,
)
# Every code path once, small: each figure positive, none meaningful.
SMOKE = Sizes(
    payments=5_000,
    invalid=20,
    naive_messages=200,
    naive_seconds=3.0,
    end_to_end=((True, True),),
    latency_rates=(200,),
    latency_modes=(True,),
    latency_seconds=1.0,
    warm_up_seconds=1.0,
    scaling_payments=5_000,
    scaling_processes=(2,),  # one process is the end-to-end run's
    scaling_modes=(False,),  # the repartition stage off: the end-to-end run has it on
    memory_cards=20_000,
    growth_cards=2_000,
    model_cards=500,
)


@contextmanager
def broker(bootstrap: str | None, workdir: Path) -> Iterator[tuple[str, int | None]]:
    """The bootstrap address and, for the embedded broker this run starts, its pid (whose CPU is counted)."""
    if bootstrap:
        yield bootstrap, None
        return
    from payment_platform.kafka.embedded_broker import start_embedded_broker, stop_embedded_broker

    port = free_port()
    process = start_embedded_broker(port=port, log_path=workdir / "broker.log")
    say(f"started the embedded broker on 127.0.0.1:{port}")
    try:
        yield f"127.0.0.1:{port}", process.pid
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
    plan = TrainingPlan(max_modelled_days=24, test_days=7, gap_days=7)
    window = training_window(last, plan.window_days)
    payments = World(seed=3, n_cards=cards).days(window.start, window.end)
    registry = ModelRegistry(model_dir)
    version = train_candidate(payments, window, plan, registry).version
    registry.promote(version)
    return version


def ceilings_and_baselines(
    platform: Platform, sizes: Sizes, scored: load.Load, topic: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    consume = Progress("consume ceiling", scored.total, "messages")
    consume_rate = measure.consume_ceiling(platform.bootstrap, topic, DEFAULT_PARTITIONS, scored.total, consume.update)
    say(f"consume ceiling: {consume_rate:,.0f} msgs/s")

    rows = measure.scored_rows(scored.frame)
    inserts: dict[str, float] = {}
    for method, insert in (
        ("PyMySQL executemany, 5k rows/commit", measure.insert_executemany),
        ("LOAD DATA LOCAL INFILE, 5k rows/commit", measure.insert_load_data),
    ):
        measure.truncate_scored(platform.db_url)
        progress = Progress(f"insert ceiling ({method})", len(rows), "rows")
        try:
            inserts[method] = insert(platform.db_url, rows, progress.update)
            say(f"insert ceiling, {method}: {inserts[method]:,.0f} rows/s")
        except Exception as exc:  # noqa: BLE001 - a method the server refuses is reported, not fatal
            say(f"insert ceiling, {method}: not available ({type(exc).__name__}: {exc})")
    measure.truncate_scored(platform.db_url)
    insert_rate = max(inserts.values())
    lower = "consume" if consume_rate <= insert_rate else "insert"
    ceilings = {
        "consume_msgs_per_s": consume_rate,
        "insert_rows_per_s": inserts,
        "insert_best_rows_per_s": insert_rate,
        "lower_ceiling": lower,
        "lower_ceiling_per_s": min(consume_rate, insert_rate),
    }

    model = ModelSource(ModelRegistry(platform.model_dir)).current()
    naive_progress = Progress("naive consumer", sizes.naive_messages, "messages")
    handled, naive_rate = measure.naive_consumer(
        platform.bootstrap,
        topic,
        DEFAULT_PARTITIONS,
        platform.db_url,
        model,
        max_messages=sizes.naive_messages,
        max_seconds=sizes.naive_seconds,
        progress=naive_progress.update,
    )
    measure.truncate_scored(platform.db_url)
    say(f"naive per-message consumer: {naive_rate:,.0f} msgs/s over {handled:,} messages")
    return ceilings, {"messages": handled, "msgs_per_s": naive_rate}


def _mode(repartition: bool) -> str:
    return "repartition on" if repartition else "repartition off"


def end_to_end(
    platform: Platform, sizes: Sizes, scored: load.Load, ceilings: dict[str, Any], naive: dict[str, Any]
) -> list[dict[str, Any]]:
    """The scorer on the pre-produced load: repartition stage on and off, with the feed's labels and without."""
    shared = platform.topics("e2e")
    empty_labels = platform.topics("e2e-nolabels").labels
    runs = []
    for repartition, with_labels in sizes.end_to_end:
        name = f"e2e-{'r' if repartition else 'd'}{'l' if with_labels else 'n'}"
        topics = platform.topics(name, payments=shared.payments, labels=shared.labels if with_labels else empty_labels)
        config = platform.config(name, topics, repartition=repartition)
        label = f"end to end, {_mode(repartition)}, {'with' if with_labels else 'no'} labels"
        run = run_group(platform, config, 1, scored, label=label, with_labels=with_labels, produce_after_join=False)
        run["stored_rows"] = measure.count_scored(platform.db_url)
        run["ratio_to_lower_ceiling"] = run["payments_per_s"] / ceilings["lower_ceiling_per_s"]
        run["ratio_to_insert_ceiling"] = run["payments_per_s"] / ceilings["insert_best_rows_per_s"]
        run["speedup_over_naive"] = run["payments_per_s"] / naive["msgs_per_s"]
        platform.drop([topics.dlq, topics.decisions, config.by_card_topic])
        cpu = run["cpu_us_per_payment"]
        say(
            f"{label}: {run['payments_per_s']:,.0f} payments/s, {run['stored_rows']:,} rows, "
            f"CPU {cpu['scorer']:.1f}/{cpu['database']:.1f}/{cpu['broker']:.1f} us per payment"
        )
        runs.append(run)
    return runs


def scaling(platform: Platform, sizes: Sizes, scaled: load.Load) -> list[dict[str, Any]]:
    """1, 2, 4 scorer processes in one group, with the repartition stage on and off (issue 11, point 6)."""
    runs = []
    for repartition in sizes.scaling_modes:
        for processes in sizes.scaling_processes:
            name = f"scale{processes}{'r' if repartition else 'd'}"
            topics = platform.topics(name)
            config = platform.config(name, topics, repartition=repartition)
            label = f"scaling, {processes} process(es), {_mode(repartition)}"
            run = run_group(platform, config, processes, scaled, label=label, with_labels=True, produce_after_join=True)
            run.pop("workers")
            platform.drop([*topics.all(), config.by_card_topic])
            say(
                f"{label}: {run['payments_per_s']:,.0f} payments/s, "
                f"{run['cpu_us_per_payment']['total']:.1f} us CPU per payment"
            )
            runs.append(run)
    return runs


def shared_watermark_cost(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What sharing the watermark across processes costs, from the scaling runs of one bench run: the
    group's CPU per payment against one process's (which owns every partition and never reads another's
    progress), and the time spent reading the others' progress from the store."""
    costs = []
    for run in runs:
        one = next((r for r in runs if r["processes"] == 1 and r["repartition"] == run["repartition"]), None)
        if one is None or run["processes"] == 1:
            continue
        progress = run["store_reads"].get("progress", {"calls": 0, "seconds": 0.0})
        costs.append(
            {
                "repartition": run["repartition"],
                "processes": run["processes"],
                "cpu_us": run["cpu_us_per_payment"]["total"],
                "cpu_us_one": one["cpu_us_per_payment"]["total"],
                "watermark_reads": int(progress["calls"]),
                "watermark_read_us": progress["seconds"] * 1e6 / run["messages"],
            }
        )
    return costs


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="payment-platform bench",
        description="Measure throughput, latency and memory of the scorer against this machine's ceilings.",
    )
    add_arguments(parser)
    return parser.parse_args(argv)


@contextmanager
def phase(results: dict[str, Any], name: str) -> Iterator[None]:
    """Time a phase of the run into results["phase_s"]: where a run's minutes go."""
    started = time.monotonic()
    try:
        yield
    finally:
        results.setdefault("phase_s", {})[name] = time.monotonic() - started


def run(args: argparse.Namespace) -> int:
    sizes = SMOKE if args.smoke else FULL
    started = time.monotonic()
    results: dict[str, Any] = {
        "mode": "smoke" if args.smoke else "full",
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "payment-platform bench " + " ".join(sys.argv[1:]),
        "machine": machine(),
    }
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pp-bench-")))
        bootstrap, broker_pid = stack.enter_context(broker(args.bootstrap, workdir))
        db_url = stack.enter_context(database(args.mysql_url))
        engine = sa.create_engine(db_url)
        results["versions"] = versions(engine)
        engine.dispose()
        say("machine: " + ", ".join(f"{k}={v}" for k, v in results["machine"].items()))
        say("versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()))
        say("training the model")
        with phase(results, "train"):
            results["model_version"] = train_model(workdir / "models", sizes.model_cards)
        platform = Platform(bootstrap, db_url, workdir / "models", uuid.uuid4().hex[:8], broker_pid)
        if args.soak_minutes > 0:
            return run_soak(platform, args, results, started)
        say(f"building {sizes.payments:,} payments, their labels and {sizes.invalid} invalid messages")
        with phase(results, "load"):
            scored = load.build_load(sizes.payments, sizes.invalid)
            shared = platform.topics("e2e")
            producer = payment_producer(bootstrap)
            produce = Progress("produce", scored.total, "messages")
            load.produce_all(producer, shared.payments, scored.keys, scored.values, produce.update)
            load.produce_all(producer, shared.labels, scored.label_keys, scored.label_values, lambda n: None)
        results["payments"] = sizes.payments
        results["invalid_messages"] = sizes.invalid
        results["label_messages"] = scored.labels
        with phase(results, "ceilings and naive"):
            results["ceilings"], results["naive"] = ceilings_and_baselines(platform, sizes, scored, shared.payments)
        with phase(results, "end to end"):
            results["end_to_end"] = end_to_end(platform, sizes, scored, results["ceilings"], results["naive"])
            platform.drop(shared.all())
        if not args.skip_latency:
            with phase(results, "latency"):
                pool = load.world_payments(20_000, seed=17)
                results["latency"] = [
                    latency_run(
                        platform, rate, sizes.latency_seconds, sizes.warm_up_seconds, pool, repartition=repartition
                    )
                    for repartition in sizes.latency_modes
                    for rate in sizes.latency_rates
                ]
        scorer = results["end_to_end"][0]["workers"][0]
        results["memory"] = {
            "scorer_peak_rss_mib": scorer["peak_rss_mib"],
            "scorer_active_cards": scorer["active_cards"],
            "scorer_active_terminals": scorer["active_terminals"],
            "scorer_state_bytes": scorer["state_bytes"],
            "state_bytes_per_card": scorer["state_bytes"] / max(scorer["active_cards"], 1),
        }
        if not args.skip_memory:
            with phase(results, "memory"):
                results["memory"]["at_scale"] = state_memory(
                    sizes.memory_cards, sizes.growth_cards, all_at_once=args.smoke
                )
        if not args.skip_scaling:
            with phase(results, "scaling"):
                same = sizes.scaling_payments == sizes.payments
                scaled = scored if same else load.build_load(sizes.scaling_payments, 0, seed=23)
                results["scaling"] = scaling(platform, sizes, scaled)
                results["shared_watermark"] = shared_watermark_cost(results["scaling"])
    results["duration_s"] = time.monotonic() - started
    results["load_average_end"] = [round(load, 1) for load in os.getloadavg()]
    results["targets"] = targets(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str))
    print(table(results))
    print(f"\nresults written to {args.json}")
    return 0


def run_soak(platform: Platform, args: argparse.Namespace, results: dict[str, Any], started: float) -> int:
    topics = platform.topics("soak")
    config = platform.config("soak", topics, repartition=True)
    worker = platform.scorer(config)
    try:
        wait_assigned([worker], subscribed_partitions(config))
        results["soak"] = soak(
            worker, platform.bootstrap, topics.payments, platform.db_url, args.soak_rate, args.soak_minutes
        )
    finally:
        worker.stop()
    results["mode"] = "soak"
    results["duration_s"] = time.monotonic() - started
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str))
    print(soak_table(results["soak"]))
    print(f"\nresults written to {args.json}")
    return 0 if results["soak"]["lost"] == 0 and results["soak"]["scorer_alive"] else 1


def _default_run(runs: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    return next((run for run in runs if all(run.get(key) == value for key, value in match.items())), None)


def targets(results: dict[str, Any]) -> dict[str, bool]:
    """The three targets (issues 4, 11 and 12), each on the platform's default configuration (repartition
    stage on) and, where it carries any, with the feed's labels."""
    met: dict[str, bool] = {}
    e2e = _default_run(results["end_to_end"], repartition=True, with_labels=True) or results["end_to_end"][0]
    met["sustained >= 25,000 payments/s (end to end, repartition on, labels)"] = e2e["payments_per_s"] >= 25_000
    at_1000 = _default_run(results.get("latency", []), offered_per_s=1_000, repartition=True)
    if at_1000:
        met["p99 <= 50 ms at 1,000/s, payment produced to decision readable (repartition on)"] = (
            at_1000["decision"]["p99_ms"] <= 50
        )
    at_scale = results["memory"].get("at_scale")
    if at_scale and at_scale["cards"] >= 1_000_000:
        met["<= 2 GiB for 1M cards x 30 days, one scorer"] = at_scale["one_scorer"]["rss_mib"] * MiB <= 2 * GiB
        met["<= 2 GiB for 1M cards x 30 days, across a group of two"] = (
            at_scale["two_scorers_total_mib"] * MiB <= 2 * GiB
        )
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
