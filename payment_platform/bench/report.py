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
    return {"cores": os.cpu_count(), "memory_gib": round(memory_gib, 1), "cpu_model": model, "os": platform.platform()}


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


def table(results: dict[str, Any]) -> str:
    """The human-readable summary of a run's JSON."""
    lines = ["", "machine: " + ", ".join(f"{k}={_fmt(v)}" for k, v in results["machine"].items())]
    lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()))
    lines.append(f"mode: {results['mode']}, payments: {results['payments']:,}, duration {results['duration_s']:.0f}s")
    rows: list[tuple[str, str, str]] = []
    c = results["ceilings"]
    rows.append(("consume ceiling (consume(10000), no work)", _fmt(c["consume_msgs_per_s"]), "msgs/s"))
    for method, rate in c["insert_rows_per_s"].items():
        rows.append((f"insert ceiling: {method}", _fmt(rate), "rows/s"))
    rows.append((f"lower ceiling ({c['lower_ceiling']})", _fmt(c["lower_ceiling_per_s"]), "per s"))
    n = results["naive"]
    rows.append((f"naive per-message consumer ({n['messages']:,} msgs)", _fmt(n["msgs_per_s"]), "msgs/s"))
    e = results["end_to_end"]
    rows.append((f"platform scorer end to end ({e['consumed']:,} msgs)", _fmt(e["payments_per_s"]), "payments/s"))
    rows.append(("  ratio to the lower ceiling", f"{e['ratio_to_lower_ceiling']:.0%}", ""))
    rows.append(("  speed-up over naive", f"{e['payments_per_s'] / n['msgs_per_s']:,.0f}x", ""))
    cpu = e.get("cpu_us_per_payment") or {}
    if cpu:
        rows.append(
            (
                "  CPU per payment: scorer / database / broker (all cores)",
                f"{cpu['scorer']:.1f} / {cpu['database']:.1f} / {cpu['broker']:.1f}",
                f"us (total {cpu['total']:.1f})",
            )
        )
        rows.append(("  the most these CPU costs allow on this machine's cores", _fmt(e["cpu_bound_per_s"]), "per s"))
    for run in results["latency"]:
        rows.append(
            (
                f"latency at {run['offered_per_s']:,}/s ({run['scored']:,} scored)",
                f"{run['p50_ms']:.0f} / {run['p95_ms']:.0f} / {run['p99_ms']:.0f}",
                "ms p50/p95/p99",
            )
        )
    m = results["memory"]
    rows.append(("scorer peak RSS (end-to-end run)", _fmt(m["scorer_peak_rss_mib"]), "MiB"))
    rows.append(
        (f"feature state per active card ({m['scorer_active_cards']:,} cards)", _fmt(m["state_bytes_per_card"]), "B")
    )
    for probe in m["probes"]:
        rows.append(
            (
                f"state, {probe['cards']:,} cards x {probe['payments_per_card']:g} payments"
                f" ({probe['days']:g} d): RSS delta",
                _fmt(probe["rss_delta_mib"]),
                f"MiB ({probe['rss_bytes_per_card']:,.0f} B/card)",
            )
        )
    rows.append(("1,000,000 active cards, measured (1 day of payments)", _fmt(m["million_cards_mib"]), "MiB"))
    rows.append(("1,000,000 active cards, extrapolated (full windows)", _fmt(m["million_cards_full_mib"]), "MiB"))
    for run in results["scaling"]:
        rows.append(
            (f"scaling: {run['processes']} scorer process(es), one group", _fmt(run["payments_per_s"]), "payments/s")
        )
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    lines.append("")
    lines += [f"{name:<{width}}  {value:>{value_width}}  {unit}" for name, value, unit in rows]
    targets = results.get("targets", {})
    if targets:
        lines.append("")
        lines += [f"target {name}: {'met' if met else 'NOT met'}" for name, met in targets.items()]
    return "\n".join(lines)
