"""Online driver: the features of the live stream, batch after batch, from incremental state.

A batch of payments is featurised once every payment before it in event time has been added: the
scorer's event-time merge releases payments in that order (`stream/event_time.py`). The card state then
holds every payment of the card up to the batch, and the terminal state, fed from the score store, every
payment and label the terminal windows can reach. Under those conditions the vectors equal the offline
driver's on the same payments, whatever order they and their labels were delivered in.
"""

from __future__ import annotations

import numpy as np

from payment_platform.features.card_state import N_COUNTS, CardState
from payment_platform.features.definitions import (
    ALLOWED_LATENESS_MS,
    CARD_REACH_MS,
    FEATURE_NAMES,
    amount_cents,
    assemble_features,
    seconds,
)
from payment_platform.features.terminal_state import TerminalState

__all__ = ["ALLOWED_LATENESS_MS", "OnlineFeatures"]


class OnlineFeatures:
    """The cards a scorer owns, by the shard (card-keyed partition) they come from, and the terminals of
    every card."""

    def __init__(self, allowed_lateness_ms: int = ALLOWED_LATENESS_MS) -> None:
        self.allowed_lateness_ms = allowed_lateness_ms
        self.shards: dict[int, CardState] = {}
        self.terminals = TerminalState()

    def cards(self, shard: int = 0) -> CardState:
        """The card state of a shard (created empty on first use)."""
        state = self.shards.get(shard)
        if state is None:
            state = self.shards[shard] = CardState()
        return state

    @property
    def active_cards(self) -> int:
        return sum(len(state) for state in self.shards.values())

    def approx_bytes(self) -> int:
        return sum(state.approx_bytes() for state in self.shards.values()) + self.terminals.approx_bytes()

    def featurise(
        self, cards: list[str], terminals: list[str], t_ms: np.ndarray, amount: np.ndarray, shard: int = 0
    ) -> np.ndarray:
        """Feature matrix (n × FEATURE_NAMES) of a batch of new payments of one shard, which are added to
        its card state.

        The terminal state must already hold every payment up to a label delay before the newest of the
        batch, and every label visible by then (see `terminal_feed.horizons_us`)."""
        if len(cards) == 0:
            return np.empty((0, len(FEATURE_NAMES)))
        times: list[int] = t_ms.tolist()
        state = self.cards(shard)
        state.add(cards, times, amount_cents(amount).tolist())
        card = state.windows(cards, times)
        terminal_count, terminal_fraud = self.terminals.counts(terminals, seconds(t_ms).tolist())
        return assemble_features(t_ms, amount, card[:, :N_COUNTS], card[:, N_COUNTS:], terminal_count, terminal_fraud)

    def evict(self, watermarks_ms: dict[int, int]) -> None:
        """Forget what no payment still to come can reach: each shard's cards up to its own watermark (the
        oldest payment it may still featurise, less the allowed lateness), every terminal up to the
        oldest of them. Shards move through event time at their own pace."""
        if not watermarks_ms:
            return
        for shard, watermark_ms in watermarks_ms.items():
            self.cards(shard).evict(watermark_ms - self.allowed_lateness_ms - CARD_REACH_MS)
        self.terminals.evict(seconds(min(watermarks_ms.values()) - self.allowed_lateness_ms))
