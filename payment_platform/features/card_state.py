"""The cards a scorer owns: each card's recent payments, so that its windows are two `bisect`s and a
subtraction however long its history.

A card with n payments in reach is one `array('q')` of 2n + 1 integers: the times (epoch ms), sorted, then
n + 1 running totals of cents, where totals[k] is the sum before payment k (evicted payments included), so
payments [i, j) sum to totals[j] − totals[i]. That is 16 bytes a payment and one object a card.

Payments come in event-time order, so they are appended. A payment with an earlier time than the card's
last (a late one) is inserted: the later running totals then all grow by its cents, in one vectorised
addition over the array's buffer. That is O(n) in C, cheap for an ordinary card; a card with more than
LONG_CARD payments switches to blocks (card_blocks.py), where a late payment costs O(√n) at worst, so a
card's payments in reverse order cost about what they cost in order.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_right

import numpy as np

from payment_platform.features.card_blocks import LONG_CARD, CardBlocks
from payment_platform.features.definitions import (
    CARD_MEAN_WINDOWS,
    CARD_WINDOWS_MS,
    card_window_start,
)

_CARD_WINDOWS = tuple(CARD_WINDOWS_MS.values())
_CARD_SUMMED = tuple(name in CARD_MEAN_WINDOWS for name in CARD_WINDOWS_MS)
N_COUNTS, N_SUMS = len(_CARD_WINDOWS), len(CARD_MEAN_WINDOWS)


class CardState:
    """Recent payments of each card; `windows` gives the card windows of a payment already added."""

    def __init__(self) -> None:
        self._cards: dict[str, array | CardBlocks] = {}

    def __len__(self) -> int:
        return len(self._cards)

    def add(self, cards: list[str], t_ms: list[int], cents: list[int]) -> None:
        """Add payments (each once: duplicates are the caller's to drop)."""
        histories = self._cards
        for card, t, amount in zip(cards, t_ms, cents, strict=True):
            history = histories.get(card)
            if history is None:
                histories[card] = array("q", (t, 0, amount))
            elif type(history) is array:
                _insert(history, t, amount)
                if len(history) > 2 * LONG_CARD:
                    histories[card] = _as_blocks(history)
            else:
                history.insert(t, amount)

    def remove(self, card: str, t_ms: int, cents: int) -> None:
        """Take back a payment added by mistake (it lost a race for its transaction_id to another one)."""
        history = self._cards.get(card)
        if history is None:
            return
        if isinstance(history, CardBlocks):
            history.remove(t_ms, cents)
            return
        n = len(history) // 2
        at = bisect_right(history, t_ms, 0, n) - 1
        while at >= 0 and history[at] == t_ms:
            if history[n + 1 + at] - history[n + at] == cents:
                del history[n + 1 + at]
                del history[at]
                _add_from(history, n + at, -cents)  # totals now start at n - 1; later ones shrink
                return
            at -= 1

    def windows(self, cards: list[str], t_ms: list[int]) -> np.ndarray:
        """(n, N_COUNTS + N_SUMS): counts per CARD_WINDOWS_MS, then sums of cents per CARD_MEAN_WINDOWS, of
        each card's payments in (t − w, t]."""
        out = array("d")
        histories = self._cards
        for card, t in zip(cards, t_ms, strict=True):
            history = histories[card]
            if isinstance(history, CardBlocks):
                out.extend(_block_windows(history, t))
                continue
            n = len(history) // 2
            end = bisect_right(history, t, 0, n)
            total_end = history[n + end]
            counts = []
            sums = []
            for window_ms, summed in zip(_CARD_WINDOWS, _CARD_SUMMED, strict=True):
                start = bisect_right(history, card_window_start(t, window_ms), 0, end)
                counts.append(end - start)
                if summed:
                    sums.append(total_end - history[n + start])
            out.extend(counts)
            out.extend(sums)
        return np.frombuffer(out, dtype=np.float64).reshape(len(t_ms), N_COUNTS + N_SUMS)

    def evict(self, horizon_ms: int) -> None:
        """Drop payments at or before horizon_ms (and cards left empty): no window of a payment still to be
        featurised reaches them. Rebuilt rather than deleted from, so the dict shrinks too."""
        self._cards = {
            card: history
            for card, history in self._cards.items()
            if (history.drop_until(horizon_ms) if isinstance(history, CardBlocks) else _drop_until(horizon_ms, history))
        }

    def approx_bytes(self) -> int:
        """Memory held by the state (dict, keys, arrays), in bytes; walks every card."""
        cards = self._cards
        return sys.getsizeof(cards) + sum(
            sys.getsizeof(card) + (h.nbytes() if isinstance(h, CardBlocks) else sys.getsizeof(h))
            for card, h in cards.items()
        )


def _block_windows(history: CardBlocks, t: int) -> list[int]:
    """The counts then sums of cents of a long card's windows ending at t."""
    end, total_end = history.position(t)
    counts, sums = [], []
    for window_ms, summed in zip(_CARD_WINDOWS, _CARD_SUMMED, strict=True):
        start, total_start = history.position(card_window_start(t, window_ms))
        counts.append(end - start)
        if summed:
            sums.append(total_end - total_start)
    return counts + sums


def _as_blocks(history: array) -> CardBlocks:
    n = len(history) // 2
    return CardBlocks(history[:n].tolist(), np.diff(np.frombuffer(history, dtype=np.int64)[n:]).tolist())


def _insert(history: array, t: int, cents: int) -> None:
    """Insert a payment into a card's history, after any payment at the same time."""
    n = len(history) // 2
    if t >= history[n - 1]:  # in order: the usual case
        history.insert(n, t)
        history.append(history[-1] + cents)
        return
    at = bisect_right(history, t, 0, n)
    history.insert(at, t)
    before = n + 1 + at  # the total before the new payment, now that the times grew by one
    history.insert(before + 1, history[before] + cents)
    _add_from(history, before + 2, cents)


def _add_from(history: array, start: int, cents: int) -> None:
    """Add cents to every entry of the history from `start` on, in C."""
    if start < len(history):
        view = np.frombuffer(history, dtype=np.int64)
        view[start:] += cents
        del view  # releases the buffer, so the array may grow again


def _drop_until(horizon: int, history: array) -> bool:
    """Drop a card's payments with time <= horizon (and their totals); returns whether any is left."""
    n = len(history) // 2
    if n and history[0] <= horizon:
        cut = bisect_right(history, horizon, 0, n)
        del history[n : n + cut]
        del history[:cut]
        n -= cut
    return n > 0
