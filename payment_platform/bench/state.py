"""A scorer's feature state at real scale, built directly rather than through Kafka, to measure its memory.

Issue 11 asks for 1,000,000 cards with 30 days of payments (~74 each, ~74M payments) in at most 2 GiB
across the group, measured, not extrapolated. Streaming 74M payments through a scorer would take hours
here, and feeding them one by one to `CardState.add` and `TerminalState.add_payments` costs about 1 µs
of Python each (minutes per probe). So the payments are generated with numpy, chunk by chunk of cards
(each chunk from its own seed: every process of a split generates the same payments and keeps its own
cards), and each card's and terminal's array is laid out exactly as those classes keep it and handed
over whole. `check_layout` builds a sample both ways and requires the two states to be equal, so a change
of layout in `features/` fails the bench instead of measuring something else; `growth_sample` measures
what growing the arrays one payment at a time, as a live scorer does, adds to the exact-size build.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from payment_platform.features.card_blocks import CardBlocks
from payment_platform.features.card_state import CardState
from payment_platform.features.definitions import DAY_MS
from payment_platform.features.online import OnlineFeatures
from payment_platform.features.terminal_state import TerminalState

# The synthetic world's shape (world/population.py): a gamma-distributed rhythm per card, amounts around
# 30 EUR, twice as many terminals as cards.
AMOUNT_LOG_MEAN, AMOUNT_LOG_SD = np.log(30.0), 0.8
START_MS = 1_767_225_600_000  # 2026-01-01T00:00Z: any fixed origin; seconds fit the terminals' uint32


@dataclass(frozen=True)
class Population:
    """Which payments a probe generates: `cards` cards with `payments_per_card` payments on average over
    `days` days, at `terminals_per_card` × cards terminals, cards spread over `shards` card-keyed partitions."""

    cards: int
    payments_per_card: float = 74.0
    days: float = 30.0
    terminals_per_card: float = 2.0
    shards: int = 4
    seed: int = 1
    chunk_cards: int = 100_000

    @property
    def terminals(self) -> int:
        return max(1, round(self.cards * self.terminals_per_card))

    @property
    def span_ms(self) -> int:
        return int(self.days * DAY_MS)


@dataclass(frozen=True)
class CardChunk:
    """The payments of cards [first, first + len(counts)), grouped by card and in time order within each."""

    first: int
    counts: np.ndarray  # payments per card
    t_ms: np.ndarray  # int64
    cents: np.ndarray  # int64
    terminal: np.ndarray  # uint32 terminal index

    @property
    def starts(self) -> np.ndarray:
        """Offset of each card's first payment; one more entry at the end."""
        return np.concatenate([[0], np.cumsum(self.counts)])


def generate(population: Population) -> Iterator[CardChunk]:
    """The population's payments, one chunk of cards at a time, all numpy."""
    span = population.span_ms
    for first in range(0, population.cards, population.chunk_cards):
        rng = np.random.default_rng([population.seed, first])
        n = min(population.chunk_cards, population.cards - first)
        rhythm = rng.gamma(2.0, population.payments_per_card / 2.0, n)  # the world's card-to-card spread
        counts = rng.poisson(rhythm)
        total = int(counts.sum())
        key = np.repeat(np.arange(n, dtype=np.int64) * span, counts)
        key += rng.integers(0, span, total)
        key.sort()  # by card, then time
        key %= span
        key += START_MS
        cents = np.rint(rng.lognormal(AMOUNT_LOG_MEAN, AMOUNT_LOG_SD, total) * 100).astype(np.int64)
        terminal = rng.integers(0, population.terminals, total, dtype=np.uint32)
        yield CardChunk(first, counts, key, cents, terminal)


def card_name(index: int) -> str:
    return f"C{index:07d}"


def terminal_name(index: int) -> str:
    return f"T{index:07d}"


def card_layout(chunk: CardChunk) -> np.ndarray:
    """Every card of the chunk as CardState lays one out, end to end: its n times, then n + 1 running
    totals of cents (0 first). Card g starts at 2 * starts[g] + g."""
    counts, starts = chunk.counts, chunk.starts
    card = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    i = np.arange(len(card), dtype=np.int64)
    before = starts[card] + card  # s_g + g
    out = np.empty(2 * len(card) + len(counts), dtype=np.int64)
    out[before + i] = chunk.t_ms
    totals = np.cumsum(chunk.cents)
    base = np.concatenate([[0], totals])[starts[:-1]]  # the chunk's running total before each card
    out[2 * starts[:-1] + np.arange(len(counts)) + counts] = 0
    out[before + counts[card] + 1 + i] = totals - base[card]
    return out


def install_cards(features: OnlineFeatures, chunk: CardChunk, owned: set[int], shards: int) -> int:
    """Hand the chunk's cards of the owned shards to their CardState; the payments they hold."""
    layout = card_layout(chunk).data.cast("B")
    counts = chunk.counts.tolist()
    starts = chunk.starts.tolist()
    states = {shard: _cards_of(features.cards(shard)) for shard in owned}
    held = 0
    for g, n in enumerate(counts):
        index = chunk.first + g
        histories = states.get(index % shards)
        if histories is None or n == 0:
            continue
        offset = 2 * starts[g] + g
        history = array("q")
        history.frombytes(layout[offset * 8 : (offset + 2 * n + 1) * 8])
        histories[card_name(index)] = history
        held += n
    return held


def terminal_keys(chunk: CardChunk) -> np.ndarray:
    """(terminal << 32) | second of each payment: sorting them groups the terminals' times in order."""
    return (chunk.terminal.astype(np.uint64) << np.uint64(32)) | (chunk.t_ms // 1_000).astype(np.uint64)


def install_terminals(terminals: TerminalState, keys: np.ndarray) -> None:
    """Hand every terminal's payment times (whole seconds, sorted) to the TerminalState. Sorts `keys` in place."""
    keys.sort()
    index = (keys >> np.uint64(32)).astype(np.uint32)
    bounds = np.flatnonzero(index[1:] != index[:-1]) + 1
    names = index[np.concatenate([[0], bounds])].tolist() if len(keys) else []
    del index
    seconds = keys.astype(np.uint32).data.cast("B")  # the low 32 bits: the second
    edges = [0, *bounds.tolist(), len(keys)]
    histories = _times_of(terminals)
    for k, terminal in enumerate(names):
        times = array("I")
        times.frombytes(seconds[edges[k] * 4 : edges[k + 1] * 4])
        histories[terminal_name(terminal)] = times


def _cards_of(state: CardState) -> dict[str, array | CardBlocks]:
    """CardState's card → array dict. The one place the bench reaches inside it; `check_layout` guards it."""
    return state._cards


def _times_of(state: TerminalState) -> dict[str, array]:
    """TerminalState's terminal → array dict (see `_cards_of`)."""
    return state._times


@dataclass
class BuildReport:
    """What one probe built and what it cost, in bytes of RSS and seconds."""

    cards: int = 0
    payments: int = 0  # generated (every card's)
    payments_held: int = 0  # in the cards this process owns
    terminals: int = 0
    rss_base: int = 0
    rss_cards: int = 0
    rss_all: int = 0
    approx_cards_bytes: int = 0
    approx_terminals_bytes: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def build(
    population: Population,
    owned: set[int],
    rss: Callable[[], int],
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> tuple[OnlineFeatures, BuildReport]:
    """The state of a scorer owning `owned` shards: their cards, and every terminal (each scorer holds all).

    Two passes over the same generated payments, so that the RSS after the cards is read with nothing
    else held: the cards first, then the terminal keys (collected, sorted and installed)."""
    report = BuildReport(rss_base=rss())
    features = OnlineFeatures()
    chunks = -(-population.cards // population.chunk_cards)
    _cards_pass(population, owned, features, report, lambda step: progress(step, 2 * chunks))
    report.cards = features.active_cards
    report.rss_cards = rss()
    _terminals_pass(population, features.terminals, report, lambda step: progress(chunks + step, 2 * chunks))
    report.terminals = len(features.terminals)
    report.rss_all = rss()
    report.approx_cards_bytes = sum(state.approx_bytes() for state in features.shards.values())
    report.approx_terminals_bytes = features.terminals.approx_bytes()
    return features, report


def _cards_pass(
    population: Population,
    owned: set[int],
    features: OnlineFeatures,
    report: BuildReport,
    progress: Callable[[int], None],
) -> None:
    generating = installing = 0.0
    for step, (chunk, spent) in enumerate(_timed(generate(population))):
        generating += spent
        started = time.monotonic()
        report.payments += len(chunk.t_ms)
        report.payments_held += install_cards(features, chunk, owned, population.shards)
        installing += time.monotonic() - started
        progress(step + 1)
    report.seconds["generate_for_cards"] = generating
    report.seconds["install_cards"] = installing


def _terminals_pass(
    population: Population, terminals: TerminalState, report: BuildReport, progress: Callable[[int], None]
) -> None:
    generating = 0.0
    keys = []
    for step, (chunk, spent) in enumerate(_timed(generate(population))):
        generating += spent
        keys.append(terminal_keys(chunk))
        progress(step + 1)
    started = time.monotonic()
    joined = np.concatenate(keys) if keys else np.empty(0, dtype=np.uint64)
    keys.clear()
    install_terminals(terminals, joined)
    report.seconds["generate_for_terminals"] = generating
    report.seconds["install_terminals"] = time.monotonic() - started


def _timed(chunks: Iterator[CardChunk]) -> Iterator[tuple[CardChunk, float]]:
    while True:
        started = time.monotonic()
        chunk = next(chunks, None)
        if chunk is None:
            return
        yield chunk, time.monotonic() - started


def incremental(population: Population, batch: int = 5_000) -> OnlineFeatures:
    """The same state fed in event-time order, in batches of `batch` payments with ids made per batch, as
    the live scorer grows it (slow: for samples)."""
    chunks = list(generate(population))
    card = np.concatenate([np.repeat(np.arange(c.first, c.first + len(c.counts)), c.counts) for c in chunks])
    t_ms = np.concatenate([c.t_ms for c in chunks])
    cents = np.concatenate([c.cents for c in chunks])
    terminal = np.concatenate([c.terminal for c in chunks])
    del chunks
    order = np.argsort(t_ms, kind="stable")  # a card's payments of one millisecond keep their order
    features = OnlineFeatures()
    for start in range(0, len(order), batch):
        rows = order[start : start + batch]
        shard = card[rows] % population.shards
        for s in np.unique(shard).tolist():
            mine = rows[shard == s]
            features.cards(s).add(
                [card_name(c) for c in card[mine].tolist()], t_ms[mine].tolist(), cents[mine].tolist()
            )
        features.terminals.add_payments(
            [terminal_name(t) for t in terminal[rows].tolist()], (t_ms[rows] // 1_000).tolist()
        )
    return features


def check_layout(population: Population) -> None:
    """Raise if the direct build differs from what `add` and `add_payments` build for the same payments."""
    direct, _ = build(population, set(range(population.shards)), lambda: 0)
    fed = incremental(population)
    for shard in range(population.shards):
        if _cards_of(direct.cards(shard)) != _cards_of(fed.cards(shard)):
            raise AssertionError(f"the bench's card layout no longer matches CardState (shard {shard})")
    if _times_of(direct.terminals) != _times_of(fed.terminals):
        raise AssertionError("the bench's terminal layout no longer matches TerminalState")
