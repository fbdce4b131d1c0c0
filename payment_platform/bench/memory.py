"""Memory of the feature state at real scale (issue 11, point 5): built in child processes, measured as RSS.

One probe holds everything a single scorer would (every card, every terminal); two probes hold what each
of two scorers would (half the cards each, every terminal in both: the terminal state is replicated).
Each reports the RSS it added for the cards and then for the terminals. A sample built both directly and
one batch at a time (`state.growth_sample`) shows what a live scorer's growing arrays add on top.
"""

from __future__ import annotations

import time
from typing import Any

from payment_platform.bench.report import Progress, say
from payment_platform.bench.state import Population
from payment_platform.bench.worker import PROBE_ENV, Worker

MiB = 2**20


def _wait(workers: list[Worker], label: str, chunks: int, timeout_s: float = 3_600) -> list[dict[str, Any]]:
    progress = Progress(label, chunks, "chunks")
    deadline = time.monotonic() + timeout_s
    while any(w.running() for w in workers) and time.monotonic() < deadline:
        progress.update(min(w.handled for w in workers))
        time.sleep(0.5)
    return [w.wait(max(deadline - time.monotonic(), 1.0)) for w in workers]


def _probe(cards: int, own: str) -> Worker:
    return Worker(["state", "--cards", str(cards), "--own", own], env=PROBE_ENV)


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    cards_bytes = result["rss_cards"] - result["rss_base"]
    terminal_bytes = result["rss_all"] - result["rss_cards"]
    total = result["rss_all"] - result["rss_base"]
    return {
        "owned_shards": result["owned"],
        "cards": result["cards"],
        "payments": result["payments"],
        "payments_in_cards": result["payments_held"],
        "terminals": result["terminals"],
        "rss_mib": total / MiB,
        "cards_rss_mib": cards_bytes / MiB,
        "terminals_rss_mib": terminal_bytes / MiB,
        "card_bytes_per_card": cards_bytes / max(result["cards"], 1),
        "card_bytes_per_payment": cards_bytes / max(result["payments_held"], 1),
        "terminal_bytes_per_payment": terminal_bytes / max(result["payments"], 1),
        "approx_cards_mib": result["approx_cards_bytes"] / MiB,
        "approx_terminals_mib": result["approx_terminals_bytes"] / MiB,
        "peak_rss_mib": result["peak_rss_mib"],
        "seconds": {**result["seconds"], "total": result["seconds_total"]},
    }


def state_memory(cards: int, growth_cards: int, *, all_at_once: bool = False) -> dict[str, Any]:
    """The probes: one scorer's state with the growth sample beside it, then the two scorers' states
    (two processes at a time on two cores; `all_at_once` starts all four together, for the smoke run)."""
    say(f"feature state at scale: {cards:,} cards x ~74 payments over 30 days, built directly (numpy)")
    chunks = 2 * -(-cards // Population(cards).chunk_cards)  # two passes: cards, then terminals
    first = [_probe(cards, "0,1,2,3"), Worker(["growth", "--cards", str(growth_cards)], env=PROBE_ENV)]
    second = [_probe(cards, "0,1"), _probe(cards, "2,3")] if all_at_once else []
    single_result, growth_result, *split = _wait(first + second, "state: one scorer (all 4 shards) + sample", chunks)
    if not all_at_once:
        split = _wait([_probe(cards, "0,1"), _probe(cards, "2,3")], "state: two scorers (2 shards each)", chunks)
    one = _summary(single_result)
    say(
        f"state, one scorer: {one['rss_mib']:,.0f} MiB RSS for {one['cards']:,} cards and {one['payments']:,} payments "
        f"(cards {one['cards_rss_mib']:,.0f}, terminals {one['terminals_rss_mib']:,.0f}); "
        f"built in {one['seconds']['total']:.0f}s"
    )
    two = [_summary(result) for result in split]
    say("state, two scorers: " + " + ".join(f"{p['rss_mib']:,.0f}" for p in two) + " MiB")
    fed_ratio = growth_result["fed_rss_bytes"] / max(growth_result["direct_rss_bytes"], 1)
    return {
        "cards": cards,
        "one_scorer": one,
        "two_scorers": two,
        "two_scorers_total_mib": sum(p["rss_mib"] for p in two),
        "two_scorers_max_mib": max(p["rss_mib"] for p in two),
        "growth_sample": {
            "cards": growth_result["cards"],
            "payments": growth_result["payments"],
            "direct_rss_mib": growth_result["direct_rss_bytes"] / MiB,
            "fed_rss_mib": growth_result["fed_rss_bytes"] / MiB,
            "fed_to_direct": fed_ratio,
            "fed_seconds": growth_result["fed_seconds"],
        },
    }
