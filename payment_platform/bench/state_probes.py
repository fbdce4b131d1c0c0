"""The state probe children of the benchmark: the feature state of many cards, built directly, sized in RSS.

Each runs in a process of its own (started with `PROBE_ENV`), so that its RSS is the state's and nothing else's.
"""

from __future__ import annotations

import argparse
import time

from payment_platform.bench.child import PROGRESS_EVERY_S, current_rss_bytes, emit, peak_rss_mib


def run_state(args: argparse.Namespace) -> None:
    """Build the feature state of a scorer that owns `--own` of `--shards` shards (and every terminal)."""
    from payment_platform.bench.state import Population, build

    population = Population(
        cards=args.cards,
        payments_per_card=args.payments_per_card,
        days=args.days,
        terminals_per_card=args.terminals_per_card,
        shards=args.shards,
        seed=args.seed,
    )
    owned = {int(s) for s in args.own.split(",")}
    started = time.monotonic()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.monotonic() - last[0] >= PROGRESS_EVERY_S:
            last[0] = time.monotonic()
            emit("progress", consumed=done, handled=done, total=total)

    features, report = build(population, owned, current_rss_bytes, progress)
    emit(
        "done",
        **vars(report),
        owned=sorted(owned),
        seconds_total=time.monotonic() - started,
        peak_rss_mib=peak_rss_mib(),
    )
    del features


def run_growth(args: argparse.Namespace) -> None:
    """Check the direct build against CardState.add / TerminalState.add_payments, then measure on a sample
    what growing the state batch by batch, as a live scorer does, costs in RSS against the direct build."""
    from payment_platform.bench.state import Population, build, check_layout, incremental

    check_layout(Population(cards=2_000, chunk_cards=700, seed=args.seed + 1))
    population = Population(cards=args.cards, payments_per_card=args.payments_per_card, seed=args.seed)
    before = current_rss_bytes()
    direct, report = build(population, set(range(population.shards)), current_rss_bytes)
    direct_bytes = current_rss_bytes() - before
    before = current_rss_bytes()
    started = time.monotonic()
    fed = incremental(population)
    fed_seconds = time.monotonic() - started
    fed_bytes = current_rss_bytes() - before
    emit(
        "done",
        cards=report.cards,
        payments=report.payments,
        direct_rss_bytes=direct_bytes,
        fed_rss_bytes=fed_bytes,
        fed_seconds=fed_seconds,
        direct_approx_bytes=direct.approx_bytes(),
        fed_approx_bytes=fed.approx_bytes(),
    )
