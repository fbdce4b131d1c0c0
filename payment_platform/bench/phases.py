"""The throughput phases of a benchmark run: the ceilings and the naive consumer, end to end, and scaling out.

Each phase runs the platform's scorer processes through `group.run_group` and reports its figures next to
the ceilings this machine allows, so a rate is read against what is possible here.
"""

from __future__ import annotations

from typing import Any

from payment_platform.bench import load, measure
from payment_platform.bench.group import Platform, run_group
from payment_platform.bench.report import Progress, say
from payment_platform.bench.sizes import Sizes
from payment_platform.kafka.clients import DEFAULT_PARTITIONS
from payment_platform.model import ModelRegistry
from payment_platform.stream.model_source import ModelSource


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
