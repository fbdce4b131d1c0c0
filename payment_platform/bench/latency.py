"""Latency under a fixed offered load: from a payment handed to the producer to its decision readable on
the decisions topic, by a reader that consumes it as the authorising system would (issue 12), next to the
moment its row was stamped written (scored_at)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from payment_platform.bench import load, measure
from payment_platform.bench.group import Platform, subscribed_partitions, wait_assigned
from payment_platform.bench.report import Progress, say
from payment_platform.bench.worker import Worker
from payment_platform.kafka.clients import partition_count, payment_producer

# The payments' producer is the platform's own (`payment_producer`, as `payment-platform produce`): 5 ms
# linger. With 0, every payment is a record batch of its own, and the embedded broker's fetches slow down
# with the number of batches a partition holds (Apache Kafka finds an offset through its index): measured
# here at 1,000/s, repartition off, p99 2.6 s instead of 85 ms after 10 s. That would be the broker's
# figure, not the scorer's.
PRODUCER_LINGER_MS = 5


def percentiles(ms: np.ndarray) -> dict[str, float]:
    if not len(ms):
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99), "max_ms": float(ms.max())}


def by_window(ms: np.ndarray, produced_s: np.ndarray, window_s: float = 5.0) -> list[dict[str, float]]:
    """p50 and p99 for each `window_s` of the run by production time: a latency that climbs through a
    steady offered load is a queue building up somewhere, not a figure of the load."""
    if not len(ms):
        return []
    window = ((produced_s - produced_s.min()) // window_s).astype(np.int64)
    rows = []
    for w in np.unique(window).tolist():
        p50, p99 = np.percentile(ms[window == w], [50, 99])
        rows.append({"from_s": w * window_s, "p50_ms": float(p50), "p99_ms": float(p99)})
    return rows


def latency_run(
    platform: Platform, rate: int, seconds: float, warm_up_s: float, pool: pd.DataFrame, *, repartition: bool
) -> dict[str, Any]:
    """Offer `rate` payments/s for `seconds` (after `warm_up_s` not measured) to one scorer."""
    mode = "repartitioned" if repartition else "direct"
    phase = f"lat{rate}{mode[0]}"
    label = f"latency at {rate:,}/s, {mode}"
    measure.truncate_scored(platform.db_url)
    topics = platform.topics(phase)
    config = platform.config(phase, topics, repartition=repartition)
    prefix = f"lat{rate}-{platform.run_id}-"
    scorer = platform.scorer(config)
    reader = Worker(["decisions", "--bootstrap", platform.bootstrap, "--topic", topics.decisions, "--prefix", prefix])
    try:
        wait_assigned([scorer], subscribed_partitions(config))
        wait_assigned([reader], partition_count(platform.bootstrap, topics.decisions), settle_s=0)  # no group
        producer = payment_producer(platform.bootstrap, **{"linger.ms": PRODUCER_LINGER_MS})
        # Fetch sessions, client metadata and the first batches settle in the first seconds: not measured.
        warm_up = Progress(f"{label}: warm-up", None, "payments")
        load.produce_paced(
            producer,
            topics.payments,
            pool,
            rate=rate,
            duration_s=warm_up_s,
            id_prefix="warm-",
            on_progress=warm_up.update,
        )
        progress = Progress(label, int(rate * seconds), "payments")
        produced = load.produce_paced(
            producer,
            topics.payments,
            pool,
            rate=rate,
            duration_s=seconds,
            id_prefix=prefix,
            on_progress=progress.update,
        )
        draining = Progress(f"{label}: decisions read", len(produced), "decisions")
        deadline = time.monotonic() + 120
        while reader.handled < len(produced) and time.monotonic() < deadline and scorer.running():
            draining.update(reader.handled)
            time.sleep(0.2)
        decided = reader.finish()
        scorer_result = scorer.finish()
    finally:
        scorer.stop()
        reader.stop()
    n = np.array(decided["n"], dtype=np.int64)
    decision_ms = (np.array(decided["t"], dtype=np.float64) - produced[n]) * 1_000
    written = measure.scored_at_s(platform.db_url, prefix)
    rows = np.fromiter(written, dtype=np.int64, count=len(written))
    row_ms = (np.fromiter(written.values(), dtype=np.float64, count=len(written)) - produced[rows]) * 1_000
    result = {
        "offered_per_s": rate,
        "repartition": repartition,
        "sent": len(produced),
        "decisions_read": len(n),
        "rows_written": len(rows),
        "decision": percentiles(decision_ms),
        "decision_by_window": by_window(decision_ms, produced[n]),
        "row_written": percentiles(row_ms),
        "batches": scorer_result["batches"],
    }
    platform.drop([*topics.all(), config.by_card_topic])
    d, w = result["decision"], result["row_written"]
    say(
        f"{label}: decision readable p50/p95/p99 {d['p50_ms']:.0f}/{d['p95_ms']:.0f}/{d['p99_ms']:.0f} ms, "
        f"row written {w['p50_ms']:.0f}/{w['p95_ms']:.0f}/{w['p99_ms']:.0f} ms ({len(n):,} of {len(produced):,})"
    )
    return result
