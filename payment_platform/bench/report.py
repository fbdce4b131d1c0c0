"""What the benchmark prints: the machine, progress lines with rate and ETA, and the result table."""

from __future__ import annotations

import os
import platform
import sys
import time
from importlib import metadata
from typing import Any

import sqlalchemy as sa


def machine() -> dict[str, Any]:
    """Cores, memory and CPU model: a figure means little without the hardware behind it."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model)
    except OSError:
        pass
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory_gib, 1),
        "cpu_model": model,
        "os": platform.platform(),
        # What else ran: on a shared machine a run's figures are read against it.
        "load_average_1_5_15_min": [round(load, 1) for load in os.getloadavg()],
    }


def versions(engine: sa.Engine) -> dict[str, str]:
    import confluent_kafka

    with engine.connect() as conn:
        server = str(conn.execute(sa.text("SELECT VERSION()")).scalar_one())
    found = {"python": platform.python_version(), "librdkafka": confluent_kafka.libversion()[0], "database": server}
    for package in ("confluent-kafka", "scikit-learn", "dagster", "SQLAlchemy", "PyMySQL", "pandas", "numpy"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


class Progress:
    """Prints `done/total, rate, ETA` at most every `every_s` seconds while a phase runs."""

    def __init__(self, label: str, total: int | None, unit: str, every_s: float = 2.0) -> None:
        self.label, self.total, self.unit, self.every_s = label, total, unit, every_s
        self.started = self._last = time.monotonic()

    def update(self, done: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        if done == 0:
            say(f"{self.label}: starting ({now - self.started:,.0f}s)")
            return
        rate = done / max(now - self.started, 1e-9)
        if self.total:
            eta = (self.total - done) / rate if rate > 0 else float("inf")
            say(f"{self.label}: {done:,}/{self.total:,} {self.unit}, {rate:,.0f}/s, ETA {eta:,.0f}s")
        else:
            say(f"{self.label}: {done:,} {self.unit}, {rate:,.0f}/s, {now - self.started:,.0f}s elapsed")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _mode(run: dict[str, Any]) -> str:
    return "repartition on" if run["repartition"] else "repartition off"


def _cpu(run: dict[str, Any]) -> tuple[str, str, str]:
    cpu = run["cpu_us_per_payment"]
    return (
        "  CPU per payment: scorers / MariaDB / broker",
        f"{cpu['scorer']:.1f} / {cpu['database']:.1f} / {cpu['broker']:.1f}",
        f"us (total {cpu['total']:.1f}; MariaDB at {run['database_background_cores']:.0%} of a core just before)",
    )


def _reads(run: dict[str, Any]) -> tuple[str, str, str]:
    reads = run["store_read_us_per_payment"]
    calls = run["store_reads"]
    return (
        "  store reads per payment: terminals / watermark / duplicates",
        " / ".join(
            f"{reads.get(kind, float('nan')):.1f}" for kind in ("terminal_feed", "progress", "duplicate_lookup")
        ),
        f"us ({int(calls.get('progress', {}).get('calls', 0)):,} watermark reads; "
        f"{run['deadlocks']:,} deadlocks of {run['store_retries']:,} retried writes)",
    )


def _percentiles(p: dict[str, float]) -> str:
    return f"{p['p50_ms']:.0f} / {p['p95_ms']:.0f} / {p['p99_ms']:.0f}"


def table(results: dict[str, Any]) -> str:
    """The human-readable summary of a run's JSON."""
    lines = ["", "machine: " + ", ".join(f"{k}={_fmt(v)}" for k, v in results["machine"].items())]
    lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()))
    lines.append(
        f"mode: {results['mode']}, payments: {results['payments']:,} (+{results['invalid_messages']:,} invalid, "
        f"{results['label_messages']:,} labels), started {results['started_at']}, duration {results['duration_s']:.0f}s"
    )
    if "load_average_end" in results:
        lines.append("load average at the end (1/5/15 min): " + " / ".join(map(str, results["load_average_end"])))
    lines.append("phases: " + ", ".join(f"{name} {seconds:.0f}s" for name, seconds in results["phase_s"].items()))
    rows: list[tuple[str, str, str]] = []
    c = results["ceilings"]
    rows.append(("consume ceiling (consume(10000), no work)", _fmt(c["consume_msgs_per_s"]), "msgs/s"))
    for method, rate in c["insert_rows_per_s"].items():
        rows.append((f"insert ceiling: {method}", _fmt(rate), "rows/s"))
    rows.append((f"lower ceiling ({c['lower_ceiling']})", _fmt(c["lower_ceiling_per_s"]), "per s"))
    n = results["naive"]
    rows.append((f"naive per-message consumer ({n['messages']:,} msgs)", _fmt(n["msgs_per_s"]), "msgs/s"))
    for e in results["end_to_end"]:
        labels = f", {e['label_messages']:,} labels" if e["with_labels"] else ", no labels"
        rows.append(
            (
                f"platform scorer end to end, {_mode(e)} ({e['messages']:,} msgs{labels})",
                _fmt(e["payments_per_s"]),
                f"payments/s ({e['ratio_to_lower_ceiling']:.0%} of the lower ceiling, "
                f"{e['speedup_over_naive']:,.0f}x naive)",
            )
        )
        rows.append(_cpu(e))
        rows.append(_reads(e))
    for run in results.get("latency", []):
        rows.append(
            (
                f"latency {run['offered_per_s']:,}/s, {_mode(run)}: produced -> decision readable",
                _percentiles(run["decision"]),
                f"ms p50/p95/p99 ({run['decisions_read']:,} of {run['sent']:,})",
            )
        )
        rows.append(
            ("  produced -> row stamped written (scored_at)", _percentiles(run["row_written"]), "ms p50/p95/p99")
        )
        windows = run.get("decision_by_window") or []
        if windows:
            rows.append(
                (
                    "  decision p99 by 5 s of the run, first to last",
                    " -> ".join(f"{w['p99_ms']:.0f}" for w in windows),
                    "ms",
                )
            )
    m = results["memory"]
    rows.append(("scorer peak RSS (first end-to-end run)", _fmt(m["scorer_peak_rss_mib"]), "MiB"))
    rows.append(
        (
            f"  its feature state per active card ({m['scorer_active_cards']:,} cards)",
            _fmt(m["state_bytes_per_card"]),
            "B",
        )
    )
    scale = m.get("at_scale")
    if scale:
        one = scale["one_scorer"]
        rows.append(
            (
                f"state, {one['cards']:,} cards x 30 days ({one['payments']:,} payments), one scorer",
                _fmt(one["rss_mib"]),
                f"MiB (cards {one['cards_rss_mib']:,.0f} + terminals {one['terminals_rss_mib']:,.0f})",
            )
        )
        rows.append(
            (
                "  per card / per payment in the cards; per payment in the terminals",
                f"{one['card_bytes_per_card']:,.0f} / {one['card_bytes_per_payment']:.1f}; "
                f"{one['terminal_bytes_per_payment']:.1f}",
                "B",
            )
        )
        rows.append(
            (
                "  two scorers (half the cards each, all terminals in both)",
                " + ".join(f"{p['rss_mib']:,.0f}" for p in scale["two_scorers"]),
                f"MiB = {scale['two_scorers_total_mib']:,.0f} MiB across the group",
            )
        )
        growth = scale["growth_sample"]
        rows.append(
            (
                f"  grown batch by batch as live vs built at once ({growth['cards']:,}-card sample)",
                f"{growth['fed_to_direct']:.2f}x",
                "RSS",
            )
        )
        rows.append(("  time to generate and build the one-scorer state", _fmt(one["seconds"]["total"]), "s"))
    scaling = results.get("scaling", [])
    base = {run["repartition"]: run for run in scaling if run["processes"] == 1}
    for run in scaling:
        one_process = base.get(run["repartition"])
        ratio = f", {run['payments_per_s'] / one_process['payments_per_s']:.2f}x one" if one_process else ""
        rows.append(
            (
                f"scaling: {run['processes']} scorer process(es), {_mode(run)}",
                _fmt(run["payments_per_s"]),
                f"payments/s{ratio}",
            )
        )
        rows.append(_cpu(run))
        rows.append(
            (
                "  per process: rows scored / CPU us per group payment",
                ", ".join(f"{p['scored']:,}/{p['cpu_us_per_group_payment']:.1f}" for p in run["per_process"]),
                "",
            )
        )
        rows.append(_reads(run))
    for cost in results.get("shared_watermark", []):
        rows.append(
            (
                f"shared watermark, {_mode(cost)}: CPU/payment, {cost['processes']} processes vs 1",
                f"{cost['cpu_us']:.1f} vs {cost['cpu_us_one']:.1f}",
                f"us ({cost['cpu_us'] - cost['cpu_us_one']:+.1f}); its store reads "
                f"{cost['watermark_read_us']:.1f} us per payment ({cost['watermark_reads']:,} reads)",
            )
        )
    width = max(len(r[0]) for r in rows)
    value_width = max((len(r[1]) for r in rows if len(r[1]) <= 24), default=0)  # a long list is not aligned
    lines.append("")
    lines += [f"{name:<{width}}  {value:>{value_width}}  {unit}".rstrip() for name, value, unit in rows]
    targets = results.get("targets", {})
    if targets:
        lines.append("")
        lines += [f"target {name}: {'met' if met else 'NOT met'}" for name, met in targets.items()]
    return "\n".join(lines)
