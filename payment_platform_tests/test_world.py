"""The synthetic payment world: deterministic, realistic in shape, fraud present but not trivial."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from payment_platform.world import PAYMENT_FRAME_COLUMNS, World, fraud
from payment_platform.world.population import build_population

SEED = 7
N_CARDS = 5000
FIRST_DAY = dt.date(2026, 10, 1)
LAST_DAY = dt.date(2026, 10, 30)
SCENARIOS = {"compromised_terminal", "compromised_card", "card_testing", "amount_outlier"}


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=SEED, n_cards=N_CARDS)


@pytest.fixture(scope="module")
def month(world: World) -> pd.DataFrame:
    return world.days(FIRST_DAY, LAST_DAY)


def day_of(frame: pd.DataFrame) -> pd.Series:
    return frame["event_time"].dt.date


def test_payment_frame_follows_the_schema(world: World) -> None:
    day = dt.date(2026, 11, 1)
    frame = world.day(day)

    assert tuple(frame.columns) == PAYMENT_FRAME_COLUMNS
    assert isinstance(frame.index, pd.RangeIndex)
    assert str(frame["event_time"].dtype) == "datetime64[us, UTC]"
    assert frame["amount"].dtype == np.float64
    assert frame["is_fraud"].dtype == np.int8
    for column in ("transaction_id", "customer_id", "terminal_id", "currency", "fraud_scenario"):
        assert all(type(value) is str for value in frame[column].tolist()), column
    assert frame["event_time"].is_monotonic_increasing
    assert (day_of(frame) == day).all()
    assert (frame["currency"] == "EUR").all()
    assert frame["transaction_id"].str.len().max() <= 64
    assert frame["customer_id"].str.fullmatch(r"C\d{7}").all()
    assert frame["terminal_id"].str.fullmatch(r"T\d{7}").all()
    assert (frame["is_fraud"] == (frame["fraud_scenario"] != "").astype(np.int8)).all()


def test_same_seed_and_day_give_the_same_frame(world: World) -> None:
    day = dt.date(2026, 11, 1)
    pd.testing.assert_frame_equal(world.day(day), World(seed=SEED, n_cards=N_CARDS).day(day))


def test_a_day_alone_equals_that_day_inside_a_range(world: World) -> None:
    day = dt.date(2026, 11, 20)
    alone = World(seed=SEED, n_cards=N_CARDS).day(day)  # a fresh world, this day generated first
    in_range = world.days(day - dt.timedelta(days=3), day + dt.timedelta(days=1))
    assert in_range["event_time"].is_monotonic_increasing
    pd.testing.assert_frame_equal(in_range[day_of(in_range) == day].reset_index(drop=True), alone)


def test_other_seeds_give_other_worlds(world: World) -> None:
    day = dt.date(2026, 11, 1)
    mine, other = world.day(day), World(seed=SEED + 1, n_cards=N_CARDS).day(day)
    assert len(mine) != len(other) or not np.array_equal(mine["amount"], other["amount"])


def test_transaction_ids_are_unique_across_days_and_worlds(world: World, month: pd.DataFrame) -> None:
    assert month["transaction_id"].is_unique
    small = World(seed=SEED, n_cards=100).day(FIRST_DAY)
    assert not set(small["transaction_id"]) & set(month["transaction_id"])


def test_amounts_are_positive_with_two_decimals(month: pd.DataFrame) -> None:
    amount = month["amount"].to_numpy()
    assert (amount > 0).all() and (amount <= 1_000_000).all()
    np.testing.assert_allclose(amount * 100, np.round(amount * 100), atol=1e-6)


def test_fraud_rate_is_realistic(month: pd.DataFrame) -> None:
    per_day = month.groupby(day_of(month))["is_fraud"].mean()
    assert len(per_day) == 30
    assert 0.005 <= month["is_fraud"].mean() <= 0.02
    assert per_day.between(0.002, 0.04).all(), per_day.describe()


def test_every_scenario_occurs_within_a_month(month: pd.DataFrame) -> None:
    assert set(month["fraud_scenario"]) == SCENARIOS | {""}


def test_every_payment_at_a_compromised_terminal_is_fraud(month: pd.DataFrame) -> None:
    terminal = month["terminal_id"].str[1:].astype(int).to_numpy()
    compromised = np.zeros(len(month), dtype=bool)
    for day, rows in month.groupby(day_of(month)).indices.items():
        active = fraud.compromised_terminals(SEED, day, 2 * N_CARDS)
        assert ((active.first_day <= day.toordinal()) & (day.toordinal() < active.first_day + active.days)).all()
        compromised[rows] = np.isin(terminal[rows], active.target)
    assert compromised.sum() > 100
    assert (month["is_fraud"].to_numpy()[compromised] == 1).all()
    assert not (month["fraud_scenario"] == "compromised_terminal").to_numpy()[~compromised].any()


def test_a_terminal_compromise_lasts_weeks(month: pd.DataFrame) -> None:
    hit = month[month["fraud_scenario"] == "compromised_terminal"]
    days_hit = hit.groupby("terminal_id")["event_time"].agg(lambda t: t.dt.date.nunique())
    assert days_hit.max() >= 14


def test_compromised_cards_pay_more_than_their_owners(month: pd.DataFrame) -> None:
    own_level = month[month["is_fraud"] == 0].groupby("customer_id")["amount"].median()
    stolen = month[month["fraud_scenario"] == "compromised_card"]
    ratio = stolen["amount"] / stolen["customer_id"].map(own_level)
    assert ratio.median() > 1.5
    for day, rows in stolen.groupby(day_of(stolen)):
        cards = fraud.compromised_cards(SEED, day, N_CARDS).target
        assert np.isin(rows["customer_id"].str[1:].astype(int), cards).all()


def test_card_testing_is_bursts_of_small_amounts_within_minutes(month: pd.DataFrame) -> None:
    testing = month[month["fraud_scenario"] == "card_testing"]
    assert testing["amount"].between(0.5, 5.0).all()
    bursts = testing.groupby(["customer_id", "terminal_id", day_of(testing)])["event_time"]
    assert bursts.size().between(5, 20).all()
    assert (bursts.max() - bursts.min()).max() < pd.Timedelta(minutes=30)


def test_amount_alone_does_not_separate_fraud(month: pd.DataFrame) -> None:
    auc = roc_auc_score(month["is_fraud"], month["amount"])
    assert 0.15 < auc < 0.85
    legit_large = ((month["is_fraud"] == 0) & (month["amount"] > 500)).sum()
    fraud_large = ((month["is_fraud"] == 1) & (month["amount"] > 500)).sum()
    assert legit_large > fraud_large > 0


def test_nights_are_quiet_and_weekdays_differ(month: pd.DataFrame) -> None:
    by_hour = month.groupby(month["event_time"].dt.hour).size()
    assert by_hour.loc[2:4].sum() * 5 < by_hour.loc[14:16].sum()
    per_day = month.groupby(day_of(month)).size()
    weekday = pd.Series([d.weekday() for d in per_day.index], index=per_day.index)
    assert per_day[weekday == 5].mean() > 1.15 * per_day[weekday == 6].mean()


def test_cards_pay_near_home_at_their_own_level(world: World, month: pd.DataFrame) -> None:
    cards, terminals = build_population(SEED, N_CARDS, 2 * N_CARDS)
    legit = month[month["is_fraud"] == 0]
    home = cards.home[legit["customer_id"].str[1:].astype(int)]
    shop = terminals.location[legit["terminal_id"].str[1:].astype(int)]
    distance = np.linalg.norm(home - shop, axis=1)
    random_pairs = np.linalg.norm(home - np.random.default_rng(0).permutation(shop), axis=1)
    assert np.median(distance) * 5 < np.median(random_pairs)
    level = legit.groupby("customer_id")["amount"].median()
    assert level.quantile(0.9) > 2 * level.quantile(0.1)
    assert 1.5 < len(legit) / 30 / N_CARDS < 2.5


def test_for_rate_gives_about_the_requested_rate() -> None:
    world = World.for_rate(payments_per_second=0.5, seed=SEED)
    assert world.expected_payments_per_day / 86_400 == pytest.approx(0.5, rel=0.05)
    assert len(world.day(dt.date(2026, 11, 5))) / 86_400 == pytest.approx(0.5, rel=0.15)  # a Thursday


def test_a_day_of_five_thousand_cards_generates_fast(world: World) -> None:
    start = time.perf_counter()
    frame = world.day(dt.date(2027, 1, 15))
    seconds = time.perf_counter() - start
    print(f"\none day, {N_CARDS} cards, {len(frame)} payments: {seconds * 1000:.1f} ms")
    assert seconds < 3.0


def test_bad_arguments_are_refused(world: World) -> None:
    with pytest.raises(ValueError):
        World(seed=-1)
    with pytest.raises(ValueError):
        World.for_rate(0.0)
    with pytest.raises(ValueError):
        world.days(LAST_DAY, FIRST_DAY)
