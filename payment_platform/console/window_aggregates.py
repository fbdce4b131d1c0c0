"""The overview's panels over a chosen window, read from the rollup's per-minute rows.

Decisions per minute, latency percentiles, the score distribution and the reason codes of the last 15 minutes
to 24 hours: the window bounds how many aggregate rows are read (the 10-minute histograms past 6 hours),
whatever the scoring rate or the size of the store.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass

import sqlalchemy as sa

from payment_platform.console.lifetime_totals import STATUSES
from payment_platform.console.portable_sql import SCORE_BUCKETS, latency_bucket_bounds, to_epoch_minute
from payment_platform.console.tables import minute_histograms, minute_reasons, minute_status, reason_totals


@dataclass(frozen=True)
class Window:
    """The last `minutes` up to `end` (naive UTC), charted in steps of `step` minutes."""

    end: dt.datetime
    minutes: int

    @property
    def start(self) -> dt.datetime:
        return self.end - dt.timedelta(minutes=self.minutes)

    @property
    def first_minute(self) -> int:
        """The first whole minute inside the window, on a step boundary (so every point covers a full step)."""
        first = to_epoch_minute(self.start) + 1
        return first + (-first) % self.step

    @property
    def last_minute(self) -> int:
        return to_epoch_minute(self.end)

    @property
    def step(self) -> int:
        """Minutes per chart point: each minute up to 6 hours, then 10 minutes (the coarse histograms)."""
        return 1 if self.minutes <= 360 else 10


@dataclass(frozen=True)
class ReasonCount:
    reason: str
    in_window: int
    all_time: int


def reason_breakdown(conn: sa.Connection, window: Window) -> list[ReasonCount]:
    """Payments per reason code, in the window and since the beginning (seed: Fraud Source Breakdown)."""
    lifetime = dict(conn.execute(sa.select(reason_totals.c.reason, reason_totals.c.payments)).tuples().all())
    recent = dict(
        conn.execute(
            sa.select(minute_reasons.c.reason, sa.func.sum(minute_reasons.c.payments))
            .where(minute_reasons.c.minute.between(window.first_minute, window.last_minute))
            .group_by(minute_reasons.c.reason)
        )
        .tuples()
        .all()
    )
    counts = [ReasonCount(r, int(recent.get(r, 0)), int(n)) for r, n in lifetime.items()]
    return sorted(counts, key=lambda c: (-c.in_window, -c.all_time, c.reason))


@dataclass(frozen=True)
class DecisionSeries:
    """Decisions per minute by status, one point per step (averaged over the step's minutes)."""

    minutes: list[int]  # epoch minute of each point's start
    per_minute: dict[str, list[float]]
    payments: dict[str, int]  # in the whole window
    latency_avg_ms: float | None
    latency_max_ms: float | None


def decisions_over_time(conn: sa.Connection, window: Window) -> DecisionSeries:
    m = minute_status.c
    step = window.step
    point = (m.minute - m.minute % step).label("point")
    rows = conn.execute(
        sa.select(
            point,
            m.status,
            sa.func.sum(m.payments).label("payments"),
            sa.func.sum(m.latency_sum_ms).label("latency_sum"),
            sa.func.max(m.latency_max_ms).label("latency_max"),
        )
        .where(m.minute.between(window.first_minute, window.last_minute))
        .group_by(point, m.status)
    ).all()
    points = _points(window)
    index = {p: i for i, p in enumerate(points)}
    per_minute = {status: [0.0] * len(points) for status in STATUSES}
    payments = dict.fromkeys(STATUSES, 0)
    latency_sum, latency_max = 0.0, None
    for r in rows:
        i = index.get(int(r.point))
        if i is None:
            continue
        per_minute.setdefault(r.status, [0.0] * len(points))[i] += float(r.payments) / step
        payments[r.status] = payments.get(r.status, 0) + int(r.payments)
        latency_sum += float(r.latency_sum)
        latency_max = r.latency_max if latency_max is None else max(latency_max, r.latency_max)
    total = sum(payments.values())
    return DecisionSeries(points, per_minute, payments, latency_sum / total if total else None, latency_max)


@dataclass(frozen=True)
class LatencySeries:
    """Latency percentiles (scored_at − event_time) per step, from the 12 %-wide histogram buckets."""

    minutes: list[int]
    p50: list[float | None]
    p95: list[float | None]
    p99: list[float | None]
    overall: dict[str, float | None]


def latency_over_time(conn: sa.Connection, window: Window) -> LatencySeries:
    h = minute_histograms.c
    rows = conn.execute(
        sa.select(h.minute.label("point"), h.bucket, h.payments).where(
            h.metric == "latency", h.span == window.step, h.minute.between(window.first_minute, window.last_minute)
        )
    ).all()
    points = _points(window)
    histograms: dict[int, dict[int, int]] = defaultdict(dict)
    whole: dict[int, int] = defaultdict(int)
    for r in rows:
        histograms[int(r.point)][int(r.bucket)] = int(r.payments)
        whole[int(r.bucket)] += int(r.payments)
    series: dict[float, list[float | None]] = {q: [] for q in (0.5, 0.95, 0.99)}
    for p in points:
        for q, values in series.items():
            values.append(histogram_quantile(histograms.get(p, {}), q))
    overall = {f"p{round(q * 100)}": histogram_quantile(whole, q) for q in (0.5, 0.95, 0.99)}
    return LatencySeries(points, series[0.5], series[0.95], series[0.99], overall)


def histogram_quantile(counts: dict[int, int], q: float) -> float | None:
    """The q-quantile of latency buckets, interpolated geometrically inside its bucket (linearly below 1 ms)."""
    total = sum(counts.values())
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for bucket in sorted(counts):
        n = counts[bucket]
        if n and seen + n >= rank:
            low, high = latency_bucket_bounds(bucket)
            fraction = min(max((rank - seen) / n, 0.0), 1.0)
            if math.isinf(high):
                return low
            if low <= 0:
                return low + (high - low) * fraction
            return low * (high / low) ** fraction
        seen += n
    return None


@dataclass(frozen=True)
class ScoreDistribution:
    edges: list[float]  # lower edge of each bucket
    payments: list[int]


def score_distribution(conn: sa.Connection, window: Window) -> ScoreDistribution:
    """Payments per score bucket (width 1/SCORE_BUCKETS) scored in the window."""
    h = minute_histograms.c
    rows = conn.execute(
        sa.select(h.bucket, sa.func.sum(h.payments))
        .where(h.metric == "score", h.span == window.step, h.minute.between(window.first_minute, window.last_minute))
        .group_by(h.bucket)
    ).all()
    payments = [0] * SCORE_BUCKETS
    for bucket, n in rows:
        payments[min(max(int(bucket), 0), SCORE_BUCKETS - 1)] += int(n)
    return ScoreDistribution([i / SCORE_BUCKETS for i in range(SCORE_BUCKETS)], payments)


def _points(window: Window) -> list[int]:
    step = window.step
    first = window.first_minute - window.first_minute % step
    return list(range(first, window.last_minute + 1, step))
