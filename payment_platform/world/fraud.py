"""Fraud as it looks in the field: four scenarios, none separable by one simple rule.

- compromised terminal: a skimmed terminal; every payment there is fraud for 14–28 days. The
  amounts are ordinary, only the terminal's recent history gives it away.
- compromised card: for 2–10 days a fraudster adds payments worth about half the card's own
  rhythm (so a third of its payments are fraud), with amounts ×2–5 the card's level, half of them
  at terminals anywhere on the map, more often at night.
- card testing: a burst of 5–20 payments of 0.5–5 EUR by one card at one terminal within minutes.
- amount outlier: a single payment ×8–40 the card's level (legitimate ×5–30 purchases exist too).

A compromise lasting weeks must not depend on which days were generated before: the compromises
starting on day S are drawn from (seed, S) alone, and day X looks back at every start day that can
still be active on X.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

import numpy as np

from payment_platform.world.payments import DAY_US, Payments, Scenario
from payment_platform.world.population import Cards, Terminals
from payment_platform.world.seeds import Stream, rng_for
from payment_platform.world.traffic import hourly_profile, terminals_near_home, times_of_day, typical_amounts

TERMINAL_COMPROMISE_RATE = 1.7e-4  # new compromises per terminal per day
TERMINAL_COMPROMISE_DAYS = (14, 28)
CARD_COMPROMISE_RATE = 1.0e-3  # per card per day
CARD_COMPROMISE_DAYS = (2, 10)
FRAUDSTER_SHARE = 0.5  # fraudster payments per legitimate payment of a compromised card
CARD_FRAUD_AMOUNT_FACTOR = (2.0, 5.0)
FAR_FROM_HOME_PROBABILITY = 0.5
NIGHT_OWL_SHARE = 0.5  # of fraudster payments spread uniformly over the day rather than like people
CARD_TESTING_RATE = 4.0e-4  # bursts per card per day
CARD_TESTING_PAYMENTS = (5, 20)
CARD_TESTING_AMOUNT = (0.5, 5.0)
CARD_TESTING_GAP_S = 20.0  # mean seconds between two test payments
BURST_HEADROOM_US = 3_600 * 1_000_000  # a burst starts early enough to end the same day
AMOUNT_OUTLIER_RATE = 3.0e-4  # per card per day
AMOUNT_OUTLIER_FACTOR = (8.0, 40.0)


@dataclass(frozen=True)
class Compromises:
    """Cards or terminals compromised on a day: target index, first day ordinal, number of days."""

    target: np.ndarray
    first_day: np.ndarray
    days: np.ndarray


def compromises_active_on(
    seed: int, day: dt.date, stream: Stream, population: int, rate: float, duration: tuple[int, int]
) -> Compromises:
    """Compromises of `population` targets active on `day`, drawn per start day from (seed, start)."""
    parts = []
    for back in range(duration[1]):
        first_day = day.toordinal() - back
        rng = rng_for(seed, first_day, stream)
        n = rng.poisson(rate * population)
        target = rng.integers(population, size=n)
        days = rng.integers(duration[0], duration[1] + 1, size=n)
        active = days > back
        parts.append((target[active], np.full(int(active.sum()), first_day), days[active]))
    return Compromises(*(np.concatenate(column).astype(np.int64) for column in zip(*parts, strict=True)))


def compromised_terminals(seed: int, day: dt.date, n_terminals: int) -> Compromises:
    return compromises_active_on(
        seed, day, Stream.TERMINAL_COMPROMISE, n_terminals, TERMINAL_COMPROMISE_RATE, TERMINAL_COMPROMISE_DAYS
    )


def compromised_cards(seed: int, day: dt.date, n_cards: int) -> Compromises:
    return compromises_active_on(seed, day, Stream.CARD_COMPROMISE, n_cards, CARD_COMPROMISE_RATE, CARD_COMPROMISE_DAYS)


def fraud_hourly_profile(day: dt.date) -> np.ndarray:
    """Fraudsters follow people less: part of their payments fall at any hour, night included."""
    return (1.0 - NIGHT_OWL_SHARE) * hourly_profile(day) + NIGHT_OWL_SHARE / 24.0


def mark_compromised_terminals(payments: Payments, compromised: Compromises) -> Payments:
    """Every payment at a compromised terminal is fraud (other scenarios keep their own label)."""
    hit = np.isin(payments.terminal, compromised.target) & (payments.scenario == Scenario.LEGIT)
    return replace(payments, scenario=np.where(hit, Scenario.COMPROMISED_TERMINAL, payments.scenario).astype(np.int8))


def compromised_card_payments(
    rng: np.random.Generator, cards: Cards, terminals: Terminals, compromised: Compromises, day: dt.date
) -> Payments:
    """The fraudster's payments with compromised cards: inflated amounts, often far from home."""
    target = np.unique(compromised.target)
    card = np.repeat(target, rng.poisson(FRAUDSTER_SHARE * cards.payments_per_day[target]))
    return _inflated_spending(rng, cards, terminals, card, CARD_FRAUD_AMOUNT_FACTOR, day, Scenario.COMPROMISED_CARD)


def card_testing_bursts(rng: np.random.Generator, n_cards: int, n_terminals: int) -> Payments:
    """Bursts of small payments by one card at one terminal, seconds apart, at any hour."""
    n_bursts = rng.poisson(CARD_TESTING_RATE * n_cards)
    size = rng.integers(CARD_TESTING_PAYMENTS[0], CARD_TESTING_PAYMENTS[1] + 1, size=n_bursts)
    burst = np.repeat(np.arange(n_bursts), size)
    first = np.cumsum(size) - size  # index of each burst's first payment
    gap = rng.exponential(CARD_TESTING_GAP_S * 1e6, size=len(burst)).astype(np.int64) + 1
    gap[first] = 0
    elapsed = np.cumsum(gap)
    elapsed -= elapsed[first][burst]
    start = rng.integers(0, DAY_US - BURST_HEADROOM_US, size=n_bursts)
    return Payments.of(
        card=rng.integers(n_cards, size=n_bursts)[burst],
        terminal=rng.integers(n_terminals, size=n_bursts)[burst],
        amount=rng.uniform(*CARD_TESTING_AMOUNT, size=len(burst)),
        offset_us=np.minimum(start[burst] + elapsed, DAY_US - 1),
        scenario=Scenario.CARD_TESTING,
    )


def amount_outliers(rng: np.random.Generator, cards: Cards, terminals: Terminals, day: dt.date) -> Payments:
    """Single payments far above the card's own level, near home or anywhere."""
    card = rng.integers(len(cards), size=rng.poisson(AMOUNT_OUTLIER_RATE * len(cards)))
    return _inflated_spending(rng, cards, terminals, card, AMOUNT_OUTLIER_FACTOR, day, Scenario.AMOUNT_OUTLIER)


def _inflated_spending(
    rng: np.random.Generator,
    cards: Cards,
    terminals: Terminals,
    card: np.ndarray,
    amount_factor: tuple[float, float],
    day: dt.date,
    scenario: Scenario,
) -> Payments:
    """Payments by `card` above the card's own level, near home or anywhere, at fraud's hours."""
    n = len(card)
    far = rng.random(n) < FAR_FROM_HOME_PROBABILITY
    terminal = np.where(far, rng.integers(len(terminals), size=n), terminals_near_home(rng, cards, terminals, card))
    return Payments.of(
        card=card,
        terminal=terminal,
        amount=typical_amounts(rng, cards, card) * rng.uniform(*amount_factor, size=n),
        offset_us=times_of_day(rng, n, fraud_hourly_profile(day)),
        scenario=scenario,
    )


def fraud_payments_per_card(mean_payments_per_day: float) -> float:
    """Expected payments a card's fraud scenarios add per day (the compromised-terminal ones add none)."""
    card_days = CARD_COMPROMISE_RATE * (CARD_COMPROMISE_DAYS[0] + CARD_COMPROMISE_DAYS[1]) / 2
    burst = (CARD_TESTING_PAYMENTS[0] + CARD_TESTING_PAYMENTS[1]) / 2
    return card_days * FRAUDSTER_SHARE * mean_payments_per_day + CARD_TESTING_RATE * burst + AMOUNT_OUTLIER_RATE
