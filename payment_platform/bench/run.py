"""Orchestrates one benchmark run: its own broker (unless given), database and model; every phase; the report."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from payment_platform.bench import load
from payment_platform.bench.environment import broker, database, train_model
from payment_platform.bench.group import Platform, subscribed_partitions, wait_assigned
from payment_platform.bench.latency import latency_run
from payment_platform.bench.memory import state_memory
from payment_platform.bench.options import add_arguments
from payment_platform.bench.phases import ceilings_and_baselines, end_to_end, scaling, shared_watermark_cost
from payment_platform.bench.report import Progress, machine, say, table, versions
from payment_platform.bench.sizes import FULL, SMOKE
from payment_platform.bench.soak import soak, soak_table
from payment_platform.bench.worker import worker_main
from payment_platform.kafka.clients import payment_producer

MiB = 2**20
GiB = 2**30


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
