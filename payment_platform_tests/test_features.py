"""The behavioural features: each feature on hand-made frames (through both drivers), the online state's
label handling and memory, and the parity of the offline and online drivers on every row of a stream."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from payment_platform.features import FEATURE_NAMES, FeatureState, compute_features
from payment_platform.features.definitions import (
    CARD_WINDOWS_MS,
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    TERMINAL_LABEL_DELAY_MS,
    TERMINAL_WINDOWS_MS,
    event_time_ms,
)
from payment_platform.features.parity import compare_drivers

T0 = pd.Timestamp("2026-03-02 12:00", tz="UTC")  # a Monday noon
T0_MS = T0.value // 1_000_000


def payment_frame(rows: list[tuple], with_labels: bool = True) -> pd.DataFrame:
    """Rows of (customer_id, terminal_id, ms after T0, amount, is_fraud), in stream order."""
    frame = pd.DataFrame(rows, columns=["customer_id", "terminal_id", "offset_ms", "amount", "is_fraud"])
    frame.insert(0, "transaction_id", [f"tx{i}" for i in range(len(frame))])
    frame["currency"] = "EUR"
    frame["event_time"] = pd.to_datetime(T0_MS + frame.pop("offset_ms"), unit="ms", utc=True)
    frame["amount"] = frame["amount"].astype(np.float64)
    return frame if with_labels else frame.drop(columns="is_fraud")


def offline(frame: pd.DataFrame) -> pd.DataFrame:
    return compute_features(frame)


def online(frame: pd.DataFrame, batch_size: int | None = None) -> pd.DataFrame:
    """The online driver with every label known up front (so it waits as pending where needed)."""
    state = FeatureState()
    if "is_fraud" in frame.columns:
        state.add_labels(frame["transaction_id"].tolist(), frame["is_fraud"].astype(bool).tolist())
    size = batch_size or len(frame)
    matrix = np.vstack([state.featurise(frame.iloc[i : i + size]) for i in range(0, len(frame), size)])
    return pd.DataFrame(matrix, index=frame.index, columns=list(FEATURE_NAMES))


DRIVERS: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "offline": offline,
    "online_one_batch": online,
    "online_row_by_row": lambda frame: online(frame, batch_size=1),
}


@pytest.fixture(params=list(DRIVERS))
def featurise(request: pytest.FixtureRequest) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return DRIVERS[request.param]


# --- each feature on tiny frames, through both drivers ---------------------------------------------


def test_columns_index_and_dtype(featurise: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    frame = payment_frame([("c1", "t1", 0, 10.0, 0), ("c2", "t1", 5, 20.0, 1)])
    frame.index = pd.Index([7, 3])
    features = featurise(frame)
    assert tuple(features.columns) == FEATURE_NAMES
    assert list(features.index) == [7, 3]
    assert (features.dtypes == np.float64).all()
    assert features["amount"].tolist() == [10.0, 20.0]


@pytest.mark.parametrize("name", list(CARD_WINDOWS_MS))
def test_card_window_excludes_exactly_n_earlier(featurise: Callable[[pd.DataFrame], pd.DataFrame], name: str) -> None:
    window = CARD_WINDOWS_MS[name]
    frame = payment_frame(
        [
            ("c1", "t1", 0, 10.0, 0),
            ("c1", "t1", window - 1, 20.0, 0),  # 1 ms inside the window of the first
            ("c1", "t1", window, 30.0, 0),  # exactly one window after the first: it drops out
            ("c2", "t1", window, 99.0, 0),  # another card never counts
        ]
    )
    counts = featurise(frame)[f"card_count_{name}"].tolist()
    assert counts == [1, 2, 2, 1]


def test_card_means_include_the_current_payment(featurise: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    frame = payment_frame([("c1", "t1", 0, 10.0, 0), ("c1", "t1", HOUR_MS, 30.0, 0), ("c1", "t1", 3 * DAY_MS, 50.0, 0)])
    features = featurise(frame)
    assert features["card_mean_amount_1d"].tolist() == [10.0, 20.0, 50.0]
    assert features["card_mean_amount_7d"].tolist() == [10.0, 20.0, 30.0]
    assert features["card_mean_amount_30d"].tolist() == [10.0, 20.0, 30.0]
    assert features["amount_to_card_mean_30d"].tolist() == pytest.approx([1.0, 1.5, 50.0 / 30.0])
    assert features["card_count_30d"].tolist() == [1, 2, 3]


def test_card_windows_follow_stream_order(featurise: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    frame = payment_frame(
        [
            ("c1", "t1", HOUR_MS, 10.0, 0),  # arrives first
            ("c1", "t1", 0, 20.0, 0),  # arrives later with an earlier time: not in the first one's windows
            ("c1", "t1", 2 * HOUR_MS, 30.0, 0),  # sees both
            ("c1", "t1", 2 * HOUR_MS, 40.0, 0),  # a tie in time: sees the earlier arrival, itself included
            ("c1", "t1", HOUR_MS + 30 * MINUTE_MS, 50.0, 0),  # late: sees only payments up to its time
        ]
    )
    features = featurise(frame)
    assert features["card_count_1d"].tolist() == [1, 1, 3, 4, 3]
    assert features["card_mean_amount_1d"].tolist() == [10.0, 20.0, 20.0, 25.0, (10 + 20 + 50) / 3]
    assert features["card_count_1h"].tolist() == [1, 1, 1, 2, 2]  # exactly 1 h earlier is out
    assert features["card_count_10m"].tolist() == [1, 1, 1, 2, 1]


def test_terminal_windows_are_delayed(featurise: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    delay = TERMINAL_LABEL_DELAY_MS
    frame = payment_frame(
        [
            ("c1", "t1", 0, 10.0, 1),  # fraud
            ("c2", "t1", HOUR_MS, 10.0, 0),
            ("c3", "t1", delay - 1, 10.0, 0),  # window (−1d − 1 ms, −1 ms]: empty
            ("c3", "t1", delay, 10.0, 0),  # window (−1d, 0]: the fraud
            ("c3", "t1", delay + HOUR_MS, 10.0, 0),  # window (1h − 1d, 1h]: both
            ("c3", "t1", delay + DAY_MS, 10.0, 0),  # window (0, 1d]: the fraud dropped out
            ("c3", "t2", delay + HOUR_MS, 10.0, 0),  # another terminal
        ]
    )
    features = featurise(frame)
    assert features["terminal_count_1d"].tolist() == [0, 0, 0, 1, 2, 1, 0]
    assert features["terminal_fraud_share_1d"].tolist() == [0, 0, 0, 1.0, 0.5, 0, 0]
    # The 7-day window of the last t1 payment is (−6d, 1d]: both first payments again.
    assert features["terminal_count_7d"].tolist() == [0, 0, 0, 1, 2, 2, 0]
    assert features["terminal_fraud_share_30d"].tolist() == [0, 0, 0, 1.0, 0.5, 0.5, 0]


def test_terminal_window_boundaries(featurise: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    delay = TERMINAL_LABEL_DELAY_MS
    probes = [(w, name) for name, w in TERMINAL_WINDOWS_MS.items()]
    rows = [("c0", "t1", 0, 10.0, 1)]
    for window, _ in probes:
        rows += [("c1", "t1", delay + window - 1, 5.0, 0), ("c1", "t1", delay + window, 5.0, 0)]
    features = featurise(payment_frame(rows))
    for k, (_, name) in enumerate(probes):
        inside, outside = features.iloc[1 + 2 * k], features.iloc[2 + 2 * k]
        assert inside[f"terminal_fraud_share_{name}"] > 0
        assert outside[f"terminal_count_{name}"] == inside[f"terminal_count_{name}"] - 1


def test_fraud_share_without_labels_is_zero(featurise: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    rows = [("c1", "t1", 0, 10.0, 1), ("c2", "t1", TERMINAL_LABEL_DELAY_MS, 10.0, 0)]
    features = featurise(payment_frame(rows, with_labels=False))
    assert features["terminal_count_1d"].tolist() == [0, 1]
    assert features[[f"terminal_fraud_share_{n}" for n in TERMINAL_WINDOWS_MS]].to_numpy().sum() == 0


@pytest.mark.parametrize(
    ("when", "weekend", "night"),
    [
        ("2026-03-07 06:59:59.999", 1, 1),  # Saturday, last night millisecond
        ("2026-03-07 07:00", 1, 0),
        ("2026-03-08 23:59:59", 1, 0),  # Sunday
        ("2026-03-09 00:00", 0, 1),  # Monday midnight
        ("2026-03-06 12:00", 0, 0),  # Friday
    ],
)
def test_weekend_and_night_in_utc(
    featurise: Callable[[pd.DataFrame], pd.DataFrame], when: str, weekend: int, night: int
) -> None:
    offset = (pd.Timestamp(when, tz="UTC") - T0) // pd.Timedelta(milliseconds=1)
    features = featurise(payment_frame([("c1", "t1", offset, 10.0, 0)]))
    assert features[["is_weekend", "is_night"]].iloc[0].tolist() == [weekend, night]


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_any_datetime_unit_and_timezone(featurise: Callable[[pd.DataFrame], pd.DataFrame], unit: str) -> None:
    frame = payment_frame([("c1", "t1", 0, 10.0, 0), ("c1", "t1", DAY_MS - 1000, 20.0, 0)])
    expected = offline(frame)
    frame["event_time"] = frame["event_time"].astype(f"datetime64[{unit}, UTC]").dt.tz_convert("Europe/Paris")
    pd.testing.assert_frame_equal(featurise(frame), expected)


# --- the online state --------------------------------------------------------------------------------


def test_labels_in_any_order_end_in_the_same_state() -> None:
    frame = random_stream(seed=3, n_payments=1500, days=20)
    ids, labels = frame["transaction_id"].tolist(), frame["is_fraud"].astype(bool).tolist()
    probe = frame.assign(
        transaction_id=[f"probe{i}" for i in range(len(frame))],
        event_time=frame["event_time"] + pd.Timedelta(days=8),
    )

    in_order = FeatureState()
    in_order.featurise(frame)
    in_order.add_labels(ids, labels)

    early = FeatureState()  # every label before its payment, twice, after a wrong one
    early.add_labels(ids, [not label for label in labels])
    early.add_labels(ids, labels)
    early.add_labels(ids, labels)
    early.featurise(frame)

    relabelled = FeatureState()  # after the payments: a wrong label, then the right one twice
    relabelled.featurise(frame)
    relabelled.add_labels(ids, [not label for label in labels])
    relabelled.add_labels(ids, labels)
    relabelled.add_labels(ids, labels)

    expected = in_order.featurise(probe)
    assert expected[:, FEATURE_NAMES.index("terminal_fraud_share_30d")].max() > 0
    for state in (early, relabelled):
        np.testing.assert_array_equal(state.featurise(probe), expected)
        assert state._terminals == in_order._terminals
        assert not state._pending


def test_a_repeated_transaction_is_counted_once() -> None:
    frame = payment_frame([("c1", "t1", 0, 10.0, 0), ("c1", "t1", HOUR_MS, 20.0, 0)])
    state = FeatureState()
    first = state.featurise(frame)
    again = state.featurise(frame.iloc[[1]])
    np.testing.assert_array_equal(again, first[[1]])
    later = payment_frame([("c1", "t1", 2 * HOUR_MS, 30.0, 0)]).assign(transaction_id="tx9")
    assert state.featurise(later)[0, FEATURE_NAMES.index("card_count_1d")] == 3


def test_eviction_bounds_the_state() -> None:
    frame = random_stream(seed=5, n_payments=3000, days=60)
    state = FeatureState()
    for start in range(0, len(frame), 500):
        state.featurise(frame.iloc[start : start + 500])
    state.add_labels(["not-seen-yet"], [True])
    end_ms = int(frame["event_time"].max().value // 1_000_000)
    recent_cards = frame.loc[frame["event_time"] > frame["event_time"].max() - pd.Timedelta(days=31)]
    state.evict(end_ms)
    assert state.active_cards <= recent_cards["customer_id"].nunique()
    assert state.approx_bytes() > 0
    state.evict(end_ms + 40 * DAY_MS)
    assert (state.active_cards, state.active_terminals) == (0, 0)
    assert not state._payments and not state._pending
    assert state.approx_bytes() < 10_000


def test_empty_batch() -> None:
    assert FeatureState().featurise(payment_frame([]).iloc[:0]).shape == (0, len(FEATURE_NAMES))
    assert compute_features(payment_frame([])).shape == (0, len(FEATURE_NAMES))


# --- parity of the two drivers on every row ----------------------------------------------------------


def random_stream(seed: int, n_payments: int = 4000, days: int = 60) -> pd.DataFrame:
    """A payment stream with skewed card activity, exact window-boundary gaps, ties in time, fraud
    labels and some payments arriving up to 3 hours late (row order = arrival order)."""
    rng = np.random.default_rng(seed)
    n_cards, n_terminals = 300, 200
    card_weight = 1 / np.arange(1, n_cards + 1) ** 0.8
    card = rng.choice(n_cards, n_payments, p=card_weight / card_weight.sum())
    terminal = rng.integers(0, n_terminals, n_payments)
    t = rng.integers(0, days * DAY_MS, n_payments)
    whole_minute = rng.random(n_payments) < 0.2
    t[whole_minute] = t[whole_minute] // MINUTE_MS * MINUTE_MS  # many ties in time
    # Echoes: the same card and terminal again at the same time, or exactly one window (or delay +
    # window) later, give ties and window boundaries.
    gaps = [0, *CARD_WINDOWS_MS.values(), *(TERMINAL_LABEL_DELAY_MS + w for w in TERMINAL_WINDOWS_MS.values())]
    echo = rng.choice(n_payments, n_payments // 10)
    card = np.r_[card, card[echo]]
    terminal = np.r_[terminal, terminal[echo]]
    t = np.r_[t, t[echo] + rng.choice(gaps, len(echo)) + rng.choice([-1, 0, 0, 1], len(echo))]
    n = len(t)
    late = rng.random(n) < 0.1
    arrival = t + late * rng.integers(1, 3 * HOUR_MS, n)
    order = np.argsort(arrival, kind="stable")
    frame = pd.DataFrame(
        {
            "transaction_id": [f"tx{i:06d}" for i in range(n)],
            "customer_id": [f"card{c:04d}" for c in card[order]],
            "terminal_id": [f"term{k:04d}" for k in terminal[order]],
            "amount": np.round(rng.lognormal(3.5, 1.2, n), 2),
            "currency": "EUR",
            "event_time": pd.to_datetime(T0_MS + t[order], unit="ms", utc=True).astype("datetime64[us, UTC]"),
            "is_fraud": (rng.random(n) < 0.05).astype(np.int64),
        }
    )
    return frame


def online_as_in_production(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """Featurise batch by batch (random sizes). Before each batch, deliver the labels that are known by
    then: those of payments at least the label delay older than the batch's newest payment (labels of
    payments not yet seen wait as pending), plus some early wrong labels that are corrected in time."""
    rng = np.random.default_rng(seed)
    t_ms = event_time_ms(frame["event_time"])
    by_time = np.argsort(t_ms, kind="stable")
    ids = frame["transaction_id"].to_numpy()
    labels = frame["is_fraud"].to_numpy().astype(bool)
    state = FeatureState()
    delivered = 0
    parts = []
    start = 0
    while start < len(frame):
        stop = min(len(frame), start + int(rng.integers(1, 250)))
        noise = rng.choice(len(frame), 3)  # wrong labels, possibly before the payment
        state.add_labels(ids[noise].tolist(), (~labels[noise]).tolist())
        known = np.searchsorted(t_ms[by_time] + TERMINAL_LABEL_DELAY_MS, t_ms[start:stop].max(), "right")
        # Deliver what is newly known, and again everything ever delivered that noise may have flipped.
        fix = by_time[:known][np.isin(by_time[:known], noise)]
        fresh = by_time[delivered:known]
        state.add_labels(ids[fresh].tolist(), labels[fresh].tolist())
        state.add_labels(ids[fix].tolist(), labels[fix].tolist())
        delivered = max(delivered, known)
        parts.append(state.featurise(frame.iloc[start:stop]))
        start = stop
    return np.vstack(parts)


def reference_features(frame: pd.DataFrame) -> pd.DataFrame:
    """The definition written out payment by payment, quadratic: a check independent of both drivers."""
    t = event_time_ms(frame["event_time"])
    card, terminal = frame["customer_id"].to_numpy(), frame["terminal_id"].to_numpy()
    amount, fraud = frame["amount"].to_numpy(), frame["is_fraud"].to_numpy()
    rows = []
    for i in range(len(frame)):
        row = {"amount": amount[i]}
        stamp = pd.Timestamp(int(t[i]), unit="ms", tz="UTC")
        row["is_weekend"], row["is_night"] = stamp.dayofweek >= 5, stamp.hour <= 6
        mine = (card[: i + 1] == card[i]) & (t[: i + 1] <= t[i])
        for name, window in CARD_WINDOWS_MS.items():
            inside = mine & (t[: i + 1] > t[i] - window)
            row[f"card_count_{name}"] = inside.sum()
            row[f"card_mean_amount_{name}"] = amount[: i + 1][inside].mean()
        row["amount_to_card_mean_30d"] = amount[i] / row["card_mean_amount_30d"]
        end = t[i] - TERMINAL_LABEL_DELAY_MS
        for name, window in TERMINAL_WINDOWS_MS.items():
            inside = (terminal == terminal[i]) & (t > end - window) & (t <= end)
            row[f"terminal_count_{name}"] = inside.sum()
            row[f"terminal_fraud_share_{name}"] = fraud[inside].mean() if inside.any() else 0.0
        rows.append(row)
    return pd.DataFrame(rows, index=frame.index)[list(FEATURE_NAMES)].astype(np.float64)


def test_offline_matches_the_definition_written_out() -> None:
    frame = random_stream(seed=4, n_payments=700, days=45)
    np.testing.assert_allclose(compute_features(frame), reference_features(frame), rtol=1e-9)


@pytest.mark.parametrize("seed", [1, 2])
def test_offline_and_online_agree_on_every_row(seed: int) -> None:
    frame = random_stream(seed)
    assert frame["event_time"].is_monotonic_increasing is False  # late arrivals present
    expected = compute_features(frame).to_numpy()
    # Bit for bit: card sums are of integer cents in both drivers.
    np.testing.assert_array_equal(online_as_in_production(frame, seed), expected)
    assert expected[:, FEATURE_NAMES.index("terminal_fraud_share_30d")].max() > 0


def test_offline_and_online_agree_on_45_days_of_the_world() -> None:
    world_module = pytest.importorskip("payment_platform.world")
    frame = world_module.World(seed=11, n_cards=300).days(dt.date(2026, 1, 5), dt.date(2026, 2, 18))
    assert frame["event_time"].dt.normalize().nunique() == 45
    expected = compute_features(frame).to_numpy()
    np.testing.assert_allclose(online_as_in_production(frame, seed=0), expected, rtol=1e-6, atol=1e-9)
    assert expected[:, FEATURE_NAMES.index("terminal_fraud_share_30d")].max() > 0


def test_the_parity_report_of_a_model_check_sees_every_row(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = random_stream(seed=3, n_payments=1500)
    report = compare_drivers(frame, batch_size=300)
    assert report.passed and report.rows == len(frame) and report.worst_feature is None

    featurise = FeatureState.featurise

    def off_by_one_count(self: FeatureState, batch: pd.DataFrame) -> np.ndarray:
        features = featurise(self, batch)
        features[-1, FEATURE_NAMES.index("terminal_count_7d")] += 1
        return features

    monkeypatch.setattr(FeatureState, "featurise", off_by_one_count)
    broken = compare_drivers(frame, batch_size=300)
    assert broken.mismatched_rows == -(-len(frame) // 300) and broken.worst_feature == "terminal_count_7d"
