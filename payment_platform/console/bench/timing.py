"""What the bench times: each page over HTTP (warm-up, then p50/p95/max of the whole response; a CSV
export also to its first byte), and the write path of taking a case and giving a verdict.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
import urllib.parse
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

from payment_platform.console.bench import say
from payment_platform.console.bench.server import Browser, get
from payment_platform.console.tables import review_items
from payment_platform.store.tables import scored_transactions

BUDGET_MS = 500.0


@dataclass(frozen=True)
class PageTiming:
    page: str
    path: str
    status: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    bytes: int
    first_byte_ms: float | None = None


def _bench_pages(reader: sa.Engine, now: dt.datetime) -> list[tuple[str, str]]:
    with reader.connect() as conn:
        heavy = conn.execute(
            sa.select(scored_transactions.c.customer_id)
            .where(scored_transactions.c.id <= 200_000)
            .group_by(scored_transactions.c.customer_id)
            .order_by(sa.func.count().desc())
            .limit(1)
        ).scalar_one()
        case_card = conn.execute(
            sa.select(review_items.c.customer_id)
            .where(review_items.c.reviewed.is_(False))
            .order_by(review_items.c.score.desc())
            .limit(1)
        ).scalar_one()
    day = (now - dt.timedelta(days=2)).replace(microsecond=0)
    one_day = urllib.parse.urlencode({"since": day.isoformat(), "until": (day + dt.timedelta(days=1)).isoformat()})
    return [
        ("overview, 1 hour", "/"),
        ("overview, 24 hours", "/?window=1440"),
        ("risk, 5 min window", "/risk"),
        ("risk, 15 min window", "/risk?minutes=15"),
        ("review queue", "/queue"),
        ("case", "/case?" + urllib.parse.urlencode({"card": case_card})),
        ("investigate the busiest card", "/card?" + urllib.parse.urlencode({"id": heavy})),
        ("scorer health", "/health"),
        ("export form", "/export"),
        ("login form", "/login"),
        ("CSV: DECLINED, 10,000 rows", "/export.csv?status=DECLINED&limit=10000"),
        ("CSV: all statuses, 10,000 rows", "/export.csv?limit=10000"),
        ("CSV: one card, all rows", "/export.csv?" + urllib.parse.urlencode({"customer_id": heavy, "limit": 0})),
        ("CSV: one day, all rows", f"/export.csv?{one_day}&limit=0"),
    ]


def time_pages(port: int, reader: sa.Engine, repeat: int, now: dt.datetime) -> list[PageTiming]:
    timings = []
    for name, path in _bench_pages(reader, now):
        is_csv = path.startswith("/export.csv")
        runs = min(3, repeat) if "all rows" in name else repeat
        get(port, path)  # warm-up
        samples = [get(port, path) for _ in range(runs)]
        totals = [s[3] * 1000 for s in samples]
        timing = PageTiming(
            page=name,
            path=path,
            status=samples[-1][0],
            p50_ms=statistics.median(totals),
            p95_ms=float(np.percentile(totals, 95)),
            max_ms=max(totals),
            bytes=samples[-1][1],
            first_byte_ms=statistics.median(s[2] * 1000 for s in samples) if is_csv else None,
        )
        say(f"  {name}: p50 {timing.p50_ms:.0f} ms, p95 {timing.p95_ms:.0f} ms ({timing.bytes:,} bytes)")
        timings.append(timing)
    return timings


def time_verdict(port: int, reader: sa.Engine) -> dict[str, float | int]:
    """Log in, take the riskiest case and give a verdict: the write path, labels acknowledged by the broker."""
    session = Browser(port)
    session.get("/login")
    session.post("/login", {"name": "bench", "password": "bench-password", "next": "/queue"})
    with reader.connect() as conn:
        card, count = conn.execute(
            sa.select(review_items.c.customer_id, sa.func.count())
            .where(review_items.c.reviewed.is_(False))
            .group_by(review_items.c.customer_id)
            .order_by(sa.func.max(review_items.c.score).desc())
            .limit(1)
        ).one()
        txs = list(
            conn.execute(
                sa.select(review_items.c.transaction_id).where(
                    review_items.c.customer_id == card, review_items.c.reviewed.is_(False)
                )
            ).scalars()
        )
    started = time.perf_counter()
    status_take = session.post("/case/take", {"card": card})
    take_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    status_verdict = session.post("/case/verdict", {"card": card, "verdict": "fraud", "note": "bench", "tx": txs})
    verdict_ms = (time.perf_counter() - started) * 1000
    say(f"  take a case: {take_ms:.0f} ms ({status_take})")
    say(f"  verdict on {count} payments: {verdict_ms:.0f} ms ({status_verdict})")
    return {"take_ms": take_ms, "verdict_ms": verdict_ms, "payments": int(count), "status": status_verdict}


def print_table(timings: list[PageTiming], verdict: dict[str, float | int]) -> None:
    print("\n| page | p50 ms | p95 ms | max ms | first byte ms | size |\n|---|---|---|---|---|---|")
    for t in timings:
        first = f"{t.first_byte_ms:.0f}" if t.first_byte_ms is not None else ""
        print(f"| {t.page} | {t.p50_ms:.0f} | {t.p95_ms:.0f} | {t.max_ms:.0f} | {first} | {t.bytes:,} B |")
    print(f"| take a case (POST) | {verdict['take_ms']:.0f} | | | | |")
    judged = f"verdict on {verdict['payments']} payments, labels acknowledged (POST)"
    print(f"| {judged} | {verdict['verdict_ms']:.0f} | | | | |")
