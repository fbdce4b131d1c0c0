"""The synthetic payment world: training history and the live stream come from the same place.

A world is a fixed population (from the seed and sizes only) of cards and terminals on a map of
towns and countryside (``population``). Each day, every card pays according to its own rhythm,
spending level and habitual terminals near home, with weekday and time-of-day patterns
(``traffic``). Fraud follows four field scenarios — compromised terminals, compromised cards,
card-testing bursts and amount outliers — at about 1 % of payments overall (``fraud``).

Everything is vectorised and drawn from ``SeedSequence([seed, day, stream])`` (``seeds``): a day is
the same frame whether generated alone or inside a range, and any day can be generated first.

    world = World(seed=7, n_cards=5000)
    frame = world.day(datetime.date(2026, 11, 1))   # the payment frame, see ``payments``
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from payment_platform.world import fraud
from payment_platform.world.payments import PAYMENT_FRAME_COLUMNS, Payments, payment_frame
from payment_platform.world.population import MEAN_PAYMENTS_PER_CARD, build_population
from payment_platform.world.seeds import Stream, rng_for
from payment_platform.world.traffic import WEEKDAY_FACTOR, legit_payments

__all__ = ["PAYMENT_FRAME_COLUMNS", "World"]

SECONDS_PER_DAY = 86_400


class World:
    """A deterministic synthetic payment world; ``day()`` and ``days()`` give payment frames."""

    def __init__(self, seed: int = 7, n_cards: int = 5000, n_terminals: int | None = None) -> None:
        n_terminals = 2 * n_cards if n_terminals is None else n_terminals
        if not 0 <= seed < 2**63 or n_cards < 1 or n_terminals < 1:
            raise ValueError(
                f"need 0 <= seed < 2**63 and at least one card and terminal, got {seed}, {n_cards}, {n_terminals}"
            )
        self.seed = seed
        self.n_cards = n_cards
        self.n_terminals = n_terminals
        self._cards, self._terminals = build_population(seed, n_cards, n_terminals)
        # Part of every transaction id, so that worlds of other seeds or sizes never collide.
        self._tag = f"s{seed}c{n_cards}t{n_terminals}"

    def __repr__(self) -> str:
        return f"World(seed={self.seed}, n_cards={self.n_cards}, n_terminals={self.n_terminals})"

    @classmethod
    def for_rate(cls, payments_per_second: float, seed: int = 7) -> World:
        """A world whose mean natural rate is about `payments_per_second` (two terminals per card)."""
        if not payments_per_second > 0:
            raise ValueError(f"payments_per_second must be positive, got {payments_per_second}")
        per_card = MEAN_PAYMENTS_PER_CARD + fraud.fraud_payments_per_card(MEAN_PAYMENTS_PER_CARD)
        n_cards = max(1, round(payments_per_second * SECONDS_PER_DAY / per_card))
        return cls(seed=seed, n_cards=n_cards, n_terminals=2 * n_cards)

    @property
    def expected_payments_per_day(self) -> float:
        """Mean payments per day over a week, fraud included."""
        rhythm = float(self._cards.payments_per_day.sum()) * float(WEEKDAY_FACTOR.mean())
        mean_rhythm = rhythm / self.n_cards
        return rhythm + self.n_cards * fraud.fraud_payments_per_card(mean_rhythm)

    def day(self, day: dt.date) -> pd.DataFrame:
        """The payment frame of one UTC day."""
        if isinstance(day, dt.datetime):
            day = day.date()
        ordinal = day.toordinal()
        cards, terminals = self._cards, self._terminals
        payments = Payments.concat(
            [
                legit_payments(rng_for(self.seed, ordinal, Stream.TRAFFIC), cards, terminals, day),
                fraud.compromised_card_payments(
                    rng_for(self.seed, ordinal, Stream.COMPROMISED_CARD_PAYMENTS),
                    cards,
                    terminals,
                    fraud.compromised_cards(self.seed, day, self.n_cards),
                    day,
                ),
                fraud.card_testing_bursts(
                    rng_for(self.seed, ordinal, Stream.CARD_TESTING), self.n_cards, self.n_terminals
                ),
                fraud.amount_outliers(rng_for(self.seed, ordinal, Stream.AMOUNT_OUTLIER), cards, terminals, day),
            ]
        )
        compromised = fraud.compromised_terminals(self.seed, day, self.n_terminals)
        return payment_frame(fraud.mark_compromised_terminals(payments, compromised), day, self._tag)

    def days(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        """The payment frames of the days from `start` to `end` inclusive, in event-time order."""
        if isinstance(start, dt.datetime):
            start = start.date()
        if isinstance(end, dt.datetime):
            end = end.date()
        if end < start:
            raise ValueError(f"end {end} is before start {start}")
        frames = [self.day(start + dt.timedelta(days=i)) for i in range((end - start).days + 1)]
        return pd.concat(frames, ignore_index=True)
