"""A card with a long history: its payments in sorted blocks, each with running totals of its own.

A flat array of times and running totals (card_state.py) answers a window in O(log n), but a payment that
comes late (an earlier time than the card's newest) must shift every later time and total: O(n) for each,
quadratic for a card whose payments arrive in reverse. Past LONG_CARD payments a card therefore switches
to blocks of about BLOCK payments: a late payment shifts only its block, and the counts and cents before
each block (one integer each, two per block) — O(√n) at worst, O(log n) to find where it goes. A window
is found in two `bisect`s: the block, then the position in it.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right

import numpy as np

BLOCK = 1_024  # payments a block starts with; it splits at twice that
LONG_CARD = 2 * BLOCK  # a flat history longer than this becomes blocks


class CardBlocks:
    """The payments of one card: times (epoch ms) sorted across blocks, cents as running totals per block."""

    __slots__ = ("_base", "_cum", "_firsts", "_offset", "_times")

    def __init__(self, times: list[int], cents: list[int]) -> None:
        """From a card's payments in time order."""
        self._times: list[array] = []
        self._cum: list[array] = []  # cum[b][i]: cents of the block's first i payments
        for start in range(0, len(times), BLOCK):
            block = times[start : start + BLOCK]
            self._times.append(array("q", block))
            self._cum.append(array("q", np.r_[0, np.cumsum(cents[start : start + BLOCK])].tolist()))
        self._firsts: list[int] = []
        self._offset: list[int] = []  # payments before each block
        self._base: list[int] = []  # cents before each block
        self._reindex()

    def __len__(self) -> int:
        return self._offset[-1] + len(self._times[-1]) if self._times else 0

    def position(self, t_ms: int) -> tuple[int, int]:
        """(payments at or before t_ms, their cents in total): the end of a window at t_ms."""
        b = bisect_right(self._firsts, t_ms) - 1
        if b < 0:
            return 0, 0
        i = bisect_right(self._times[b], t_ms)
        return self._offset[b] + i, self._base[b] + self._cum[b][i]

    def insert(self, t_ms: int, cents: int) -> None:
        b = max(bisect_right(self._firsts, t_ms) - 1, 0)
        times, cum = self._times[b], self._cum[b]
        i = bisect_right(times, t_ms)
        times.insert(i, t_ms)
        cum.insert(i + 1, cum[i] + cents)
        if i + 2 < len(cum):
            view = np.frombuffer(cum, dtype=np.int64)
            view[i + 2 :] += cents
            del view  # release the buffer: the array may grow again
        self._firsts[b] = times[0]
        for later in range(b + 1, len(self._times)):
            self._offset[later] += 1
            self._base[later] += cents
        if len(times) > 2 * BLOCK:
            self._split(b)

    def remove(self, t_ms: int, cents: int) -> bool:
        """Take back one payment at t_ms of these cents; whether there was one."""
        for b in range(len(self._times) - 1, -1, -1):
            times, cum = self._times[b], self._cum[b]
            i = bisect_right(times, t_ms) - 1
            while i >= 0 and times[i] == t_ms:
                if cum[i + 1] - cum[i] == cents:
                    del times[i]
                    del cum[i + 1]
                    if i + 1 < len(cum):
                        view = np.frombuffer(cum, dtype=np.int64)
                        view[i + 1 :] -= cents
                        del view
                    if not times:
                        del self._times[b], self._cum[b]
                    self._reindex()
                    return True
                i -= 1
            if times and times[0] < t_ms:
                return False
        return False

    def drop_until(self, horizon_ms: int) -> bool:
        """Drop the payments at or before horizon_ms; whether any is left."""
        while self._times and self._times[0][-1] <= horizon_ms:
            del self._times[0], self._cum[0]
        if self._times and self._times[0][0] <= horizon_ms:
            times, cum = self._times[0], self._cum[0]
            cut = bisect_right(times, horizon_ms)
            dropped = cum[cut]
            self._times[0] = times[cut:]
            self._cum[0] = array("q", (total - dropped for total in cum[cut:]))
        self._reindex()
        return bool(self._times)

    def nbytes(self) -> int:
        return sum(
            times.buffer_info()[1] * 8 + cum.buffer_info()[1] * 8 + 128
            for times, cum in zip(self._times, self._cum, strict=True)
        )

    def _split(self, b: int) -> None:
        times, cum = self._times[b], self._cum[b]
        half = len(times) // 2
        self._times[b : b + 1] = [times[:half], times[half:]]
        self._cum[b : b + 1] = [cum[: half + 1], array("q", (total - cum[half] for total in cum[half:]))]
        self._reindex()

    def _reindex(self) -> None:
        self._firsts = [times[0] for times in self._times]
        self._offset, self._base = [], []
        count = total = 0
        for times, cum in zip(self._times, self._cum, strict=True):
            self._offset.append(count)
            self._base.append(total)
            count += len(times)
            total += cum[-1]
