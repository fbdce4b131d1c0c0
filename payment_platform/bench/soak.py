"""The soak: a steady offered load for minutes, watched for memory growth, latency drift and errors.

Not part of CI (it takes as long as it is told to). The payments replay SOAK_HISTORY_DAYS of a card
population's event time in the run, ending now: in minutes the feature windows fill and then evict as
much as they take in, so a flat RSS means no leak rather than windows not yet full (with event time =
the wall clock, a 10-minute run only ever fills them). Latency is row written (scored_at) − the moment the
payment was handed to the producer, by minute of the run; memory is the scorer process's RSS, sampled
every 10 s.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pandas as pd

from payment_platform.bench import load, measure
from payment_platform.bench.report import Progress, say
from payment_platform.bench.worker import Worker
from payment_platform.features.definitions import FEATURE_REACH_MS
from payment_platform.kafka.clients import payment_producer

SAMPLE_EVERY_S = 10.0
SOAK_HISTORY_DAYS = 120  # event time the run replays: over three times the longest window reach (38 days)
# Event time after which every window is full (features/definitions.py).
REACH_MS = FEATURE_REACH_MS
POOL_PAYMENTS = 60_000  # cards, terminals and amounts cycle through a pool of about 10,000 cards
# The embedded broker (Tansu, memory storage) fetches in time proportional to the record batches a
# partition holds (measured: 3 ms to read the tail of 5,000 batches, 24 ms at 40,000), where Apache Kafka
# seeks by its offset index. With the platform's 5 ms linger, ten minutes at 5,000/s make ~80,000 batches
# per partition and the broker's fetches, not the scorer, stall the run; 50 ms keeps it near 10,000.
SOAK_LINGER_MS = 50


def rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def soak(worker: Worker, bootstrap: str, topic: str, db_url: str, rate: int, minutes: float) -> dict[str, Any]:
    """Offer `rate` payments/s to a running scorer for `minutes`; memory, latency and errors over time."""
    samples: list[tuple[float, float]] = []
    done = threading.Event()
    started = time.monotonic()

    def sample() -> None:
        while not done.wait(SAMPLE_EVERY_S):
            mib = rss_mib(worker.process.pid)
            if mib is not None:
                samples.append((time.monotonic() - started, mib))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    pool = load.world_payments(POOL_PAYMENTS, seed=41)
    total = int(rate * minutes * 60)
    span_s = SOAK_HISTORY_DAYS * 86_400
    first_event_s = time.time() - span_s
    progress = Progress(f"soak at {rate:,}/s for {minutes:g} min", total, "payments")
    produced = load.produce_paced(
        payment_producer(bootstrap, **{"linger.ms": SOAK_LINGER_MS}),
        topic,
        pool,
        rate=rate,
        duration_s=minutes * 60,
        id_prefix="soak-",
        on_progress=progress.update,
        event_time_s=lambda n: first_event_s + n * span_s / total,
    )
    sent = len(produced)
    deadline = time.monotonic() + 120
    while measure.count_scored(db_url, "soak-%") < sent and time.monotonic() < deadline and worker.running():
        time.sleep(0.5)
    done.set()
    stored = measure.count_scored(db_url, "soak-%")
    written = measure.scored_at_s(db_url, "soak-")
    n = np.fromiter(written, dtype=np.int64, count=len(written))
    written_s = np.fromiter(written.values(), dtype=np.float64, count=len(written))
    per_minute = _latency_by_minute(
        (written_s - produced[n]) * 1_000, ((produced[n] - produced[0]) // 60).astype(np.int64)
    )
    memory = pd.DataFrame(samples, columns=["s", "rss_mib"])
    # Until the event time has covered every window's reach, the state grows by design; after that it
    # evicts as much as it takes in, and RSS should stay flat.
    filled_share = min(1.0, REACH_MS / (span_s * 1_000))
    full = memory[memory["s"] >= filled_share * minutes * 60]
    first, last = _window_mean(full, 0.0, 0.2), _window_mean(full, 0.8, 1.0)
    result = {
        "offered_per_s": rate,
        "minutes": minutes,
        "sent": sent,
        "stored": stored,
        "lost": sent - stored,
        "scorer_alive": worker.running(),
        "rss_mib_samples": samples,
        "windows_full_after_s": filled_share * minutes * 60,
        "rss_mib_windows_full": [float(full["rss_mib"].min()), float(full["rss_mib"].max())] if len(full) else [],
        "rss_growth_mib": last - first,
        "latency_by_minute": per_minute,
        "p99_ms_worst_minute": max((m["p99_ms"] for m in per_minute), default=float("nan")),
        "p99_ms_best_minute": min((m["p99_ms"] for m in per_minute), default=float("nan")),
    }
    say(
        f"soak: {stored:,} of {sent:,} stored; RSS with full windows {first:,.0f} → {last:,.0f} MiB; p99 by minute "
        f"{result['p99_ms_best_minute']:.0f}–{result['p99_ms_worst_minute']:.0f} ms"
    )
    return result


def _latency_by_minute(ms: np.ndarray, minute: np.ndarray) -> list[dict[str, float]]:
    frame = pd.DataFrame({"ms": ms, "minute": minute})
    rows = []
    for index, (_, group) in enumerate(frame.groupby("minute", sort=True)):
        p50, p99 = np.percentile(group["ms"], [50, 99])
        rows.append({"minute": index, "rows": len(group), "p50_ms": float(p50), "p99_ms": float(p99)})
    return rows


def _window_mean(memory: pd.DataFrame, start: float, end: float) -> float:
    """Mean RSS over a share of the samples' time span (e.g. 0.8–1.0: its last fifth)."""
    if memory.empty:
        return float("nan")
    first = memory["s"].min()
    span = memory["s"].max() - first
    memory = memory.assign(s=memory["s"] - first)
    inside = memory[(memory["s"] >= start * span) & (memory["s"] <= end * span)]
    return float((inside if not inside.empty else memory)["rss_mib"].mean())


def soak_table(result: dict[str, Any]) -> str:
    lines = [
        f"soak at {result['offered_per_s']:,} payments/s for {result['minutes']:g} min: "
        f"{result['stored']:,} of {result['sent']:,} stored ({result['lost']:,} missing), "
        f"scorer {'still running' if result['scorer_alive'] else 'EXITED'}",
        f"windows full after {result['windows_full_after_s']:.0f} s; RSS from then on: "
        + "–".join(f"{mib:,.0f}" for mib in result["rss_mib_windows_full"])
        + f" MiB, {result['rss_growth_mib']:+,.0f} MiB from its first to its last fifth",
        "minute   rows   p50 ms   p99 ms",
    ]
    lines += [
        f"{m['minute']:>6} {m['rows']:>6,} {m['p50_ms']:>8.0f} {m['p99_ms']:>8.0f}" for m in result["latency_by_minute"]
    ]
    return "\n".join(lines)
