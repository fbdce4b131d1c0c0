"""Legitimate traffic: how many payments each card makes on a day, when, where and for how much.

Counts are Poisson around each card's own rhythm, scaled by the weekday; times follow an hourly
profile (quiet nights, lunch and evening peaks, later and flatter at weekends); most payments go to
the card's habitual terminals, some to other terminals near home; amounts are log-normal around the
card's own level, with rare legitimate large purchases so that a large amount alone proves nothing.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from payment_platform.world.payments import Payments, Scenario
from payment_platform.world.population import HABITUAL_TERMINALS, Cards, Terminals

HOUR_US = 3_600 * 1_000_000
# Relative payment intensity per UTC hour (read as local time): quiet nights, lunch and evening peaks.
# fmt: off
WEEKDAY_HOURS = np.array([
    0.12, 0.07, 0.04, 0.03, 0.04, 0.10, 0.30, 0.65, 0.95, 1.05, 1.15, 1.35,
    1.60, 1.45, 1.20, 1.15, 1.30, 1.55, 1.70, 1.50, 1.10, 0.75, 0.45, 0.25,
])
WEEKEND_HOURS = np.array([
    0.25, 0.15, 0.08, 0.05, 0.04, 0.05, 0.12, 0.30, 0.60, 0.95, 1.30, 1.55,
    1.65, 1.60, 1.50, 1.45, 1.40, 1.35, 1.40, 1.30, 1.05, 0.80, 0.55, 0.40,
])
# fmt: on
# Monday..Sunday multipliers of a card's rhythm; their mean is 1.
WEEKDAY_FACTOR = np.array([0.92, 0.95, 0.97, 1.00, 1.12, 1.18, 0.86])
HABIT_WEIGHTS = 1.0 / np.arange(1, HABITUAL_TERMINALS + 1)
NEW_TERMINAL_PROBABILITY = 0.15  # a payment near home at a terminal outside the card's habits
LARGE_PURCHASE_PROBABILITY = 0.004
LARGE_PURCHASE_FACTOR = (5.0, 30.0)


def hourly_profile(day: dt.date) -> np.ndarray:
    """Probability of each UTC hour for a legitimate payment on this day."""
    hours = WEEKEND_HOURS if day.weekday() >= 5 else WEEKDAY_HOURS
    return hours / hours.sum()


def times_of_day(rng: np.random.Generator, n: int, hour_probability: np.ndarray) -> np.ndarray:
    """Microseconds since midnight, piecewise uniform within hours drawn from the profile."""
    hour = rng.choice(24, size=n, p=hour_probability)
    return hour * HOUR_US + rng.integers(0, HOUR_US, size=n)


def typical_amounts(rng: np.random.Generator, cards: Cards, card: np.ndarray) -> np.ndarray:
    """An everyday amount for each given card, drawn at that card's own level."""
    return rng.lognormal(cards.amount_log_mean[card], cards.amount_log_sd[card])


def terminals_near_home(rng: np.random.Generator, cards: Cards, terminals: Terminals, card: np.ndarray) -> np.ndarray:
    """A terminal for each payment: mostly a habitual one, sometimes another one near home."""
    slot = rng.choice(HABITUAL_TERMINALS, size=len(card), p=HABIT_WEIGHTS / HABIT_WEIGHTS.sum())
    chosen = cards.habitual_terminals[card, slot]
    new = np.flatnonzero(rng.random(len(card)) < NEW_TERMINAL_PROBABILITY)
    spot = cards.home[card[new]] + rng.normal(size=(len(new), 2)) * 2.0 * cards.reach[card[new], None]
    chosen[new] = terminals.near(rng, spot)
    return chosen


def legit_payments(rng: np.random.Generator, cards: Cards, terminals: Terminals, day: dt.date) -> Payments:
    """All legitimate payments of one day."""
    counts = rng.poisson(cards.payments_per_day * WEEKDAY_FACTOR[day.weekday()])
    card = np.repeat(np.arange(len(cards)), counts)
    amount = typical_amounts(rng, cards, card)
    large = rng.random(len(card)) < LARGE_PURCHASE_PROBABILITY
    amount[large] *= rng.uniform(*LARGE_PURCHASE_FACTOR, size=int(large.sum()))
    return Payments.of(
        card=card,
        terminal=terminals_near_home(rng, cards, terminals, card),
        amount=amount,
        offset_us=times_of_day(rng, len(card), hourly_profile(day)),
        scenario=Scenario.LEGIT,
    )
