"""The model package: metrics (CP@k by hand), time split, training, and the versioned registry."""

from __future__ import annotations

import copy
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score

from payment_platform.model import (
    InsufficientHistoryError,
    InsufficientLabelsError,
    InvalidModelVersionError,
    ModelIntegrityError,
    ModelNotFoundError,
    ModelRegistry,
    ProductionPointer,
    ThresholdPolicy,
    TrainingResult,
    UndefinedMetricError,
    average_precision,
    card_precision_at_k,
    choose_thresholds,
    daily_card_precision_at_k,
    plan_time_split,
    roc_auc,
    threshold_stats,
    time_split,
    train_fraud_model,
)

START = pd.Timestamp("2026-01-01", tz="UTC")


def synthetic_history(
    seed: int = 0, days: int = 45, per_day: int = 900, n_cards: int = 1500
) -> tuple[pd.DataFrame, pd.Series, pd.Series, pd.Series]:
    """A labelled, featurised history (~1.4 % frauds) that a model can learn but never separate.

    Labels are drawn from a logistic model of noisy copies of the features plus an unobserved
    per-card risk, so even the ideal model makes mistakes; 30 % of frauds are large amounts.
    """
    rng = np.random.default_rng(seed)
    n = days * per_day
    event_time = pd.Series(START + pd.to_timedelta(np.sort(rng.uniform(0, days * 86400, n)), unit="s"))
    card = rng.integers(0, n_cards, n)
    amount, velocity, terminal = rng.normal(0, 1, (3, n))
    logit = -6.3 + 1.1 * amount + 0.9 * velocity + 0.7 * np.maximum(terminal, 0) ** 2
    logit += 0.8 * rng.normal(0, 1, n_cards)[card]
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    amount = amount + 4.0 * np.where(y == 1, rng.uniform(size=n) < 0.3, rng.uniform(size=n) < 0.0005)
    X = pd.DataFrame(
        {
            "amount_z": amount + rng.normal(0, 0.3, n),
            "velocity_z": velocity + rng.normal(0, 0.3, n),
            "terminal_risk": terminal + rng.normal(0, 0.3, n),
            "noise_a": rng.normal(0, 1, n),
            "noise_b": rng.uniform(0, 1, n),
        }
    )
    return X, pd.Series(y), event_time, pd.Series([f"card-{c}" for c in card])


@pytest.fixture(scope="module")
def history() -> tuple[pd.DataFrame, pd.Series, pd.Series, pd.Series]:
    return synthetic_history()


@pytest.fixture(scope="module")
def trained(history: tuple[pd.DataFrame, pd.Series, pd.Series, pd.Series]) -> TrainingResult:
    X, y, event_time, customer_id = history
    return train_fraud_model(X, y, event_time, customer_id, test_days=14, gap_days=7, seed=0)


# --- metrics -----------------------------------------------------------------------------------


def _at(day: int, hour: int = 12) -> pd.Timestamp:
    return START + pd.Timedelta(days=day, hours=hour)


# (day, card, score, label). k = 2. Known set = compromised cards found in a day's top 2.
CP_EXAMPLE = [
    # day 0: ranking A .9, B .8, C .7, D .1 -> top 2 = A(1), B(0) -> 1/2. A is found; C is not.
    (0, "A", 0.9, 1),
    (0, "B", 0.8, 0),
    (0, "C", 0.7, 1),
    (0, "D", 0.1, 0),
    # day 1: A is known and dropped. C keeps its max score .6 and max label 1 over two payments.
    # ranking C .6, E .5, B .3 -> top 2 = C(1), E(0) -> 1/2. C is found.
    (1, "A", 0.95, 1),
    (1, "B", 0.3, 0),
    (1, "C", 0.2, 0),
    (1, "C", 0.6, 1),
    (1, "E", 0.5, 0),
    # day 2: A and C are known and dropped. ranking B .4, F .38, E .35 -> top 2 = B(1), F(0) -> 1/2.
    (2, "A", 0.99, 1),
    (2, "C", 0.9, 1),
    (2, "B", 0.4, 1),
    (2, "E", 0.35, 0),
    (2, "F", 0.38, 0),
    # day 3: one genuine card; fewer than k cards still divide by k -> 0/2.
    (3, "G", 0.2, 0),
]


def _cp_frame() -> pd.DataFrame:
    frame = pd.DataFrame(CP_EXAMPLE, columns=["day", "card", "score", "label"])
    frame["event_time"] = [_at(day, hour) for day, hour in zip(frame["day"], range(len(frame)), strict=True)]
    return frame.sample(frac=1.0, random_state=1)  # input order must not matter


def test_card_precision_at_k_hand_computed_with_known_set() -> None:
    f = _cp_frame()
    daily = daily_card_precision_at_k(f["score"], f["label"], f["card"], f["event_time"], k=2)
    assert list(daily.index) == [START + pd.Timedelta(days=d) for d in range(4)]
    assert daily.tolist() == [0.5, 0.5, 0.5, 0.0]
    assert card_precision_at_k(f["score"], f["label"], f["card"], f["event_time"], k=2) == 0.375


def test_card_precision_at_k_uses_utc_days() -> None:
    # 23:30 at UTC+02:00 on Jan 2nd is 21:30 UTC on Jan 2nd; 01:30+02:00 on Jan 3rd is Jan 2nd in UTC.
    times = pd.Series(pd.to_datetime(["2026-01-02T23:30:00+02:00", "2026-01-03T01:30:00+02:00"]))
    daily = daily_card_precision_at_k([0.9, 0.8], [1, 0], ["A", "B"], times, k=1)
    assert daily.tolist() == [1.0]


def test_card_precision_at_k_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="k must be"):
        card_precision_at_k([0.5], [1], ["A"], pd.Series([START]), k=0)
    with pytest.raises(UndefinedMetricError):
        card_precision_at_k([], [], [], pd.Series([], dtype="datetime64[ns, UTC]"))


def test_auc_and_average_precision_are_sklearns() -> None:
    rng = np.random.default_rng(3)
    labels = (rng.uniform(size=500) < 0.05).astype(int)
    scores = rng.uniform(size=500) + 0.3 * labels
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    assert average_precision(labels, scores) == pytest.approx(average_precision_score(labels, scores))
    with pytest.raises(UndefinedMetricError):
        roc_auc([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(UndefinedMetricError):
        average_precision([1, 1], [0.1, 0.2])


def test_threshold_stats() -> None:
    labels = [1, 0, 1, 0, 0, 1]
    scores = [0.9, 0.8, 0.7, 0.2, 0.1, 0.05]
    stats = threshold_stats(labels, scores, 0.7)  # alerts .9 .8 .7 -> 2 of 3 frauds caught
    assert (stats.n_alerts, stats.precision, stats.recall, stats.alert_rate) == (3, 2 / 3, 2 / 3, 0.5)
    nothing = threshold_stats(labels, scores, 0.95)
    assert (nothing.n_alerts, nothing.precision, nothing.recall) == (0, None, 0.0)


# --- time split --------------------------------------------------------------------------------


def test_time_split_boundaries_gap_and_order() -> None:
    # Naive times (read as UTC), 45 days from Jan 1st 00:00 to Feb 14th 23:00.
    event_time = pd.Series(pd.date_range("2026-01-01", periods=45 * 24, freq="h"))
    split = plan_time_split(event_time, test_days=14, gap_days=7)
    assert split.train_start == pd.Timestamp("2026-01-01", tz="UTC")
    assert split.test_end == pd.Timestamp("2026-02-15", tz="UTC")
    assert split.test_start == pd.Timestamp("2026-02-01", tz="UTC")
    assert split.train_end == pd.Timestamp("2026-01-25", tz="UTC")
    assert (split.train_days, split.gap_days, split.test_days) == (24, 7, 14)

    train, test = time_split(event_time, test_days=14, gap_days=7)
    assert not (train & test).any()
    assert train.sum() == 24 * 24 and test.sum() == 14 * 24
    utc = pd.to_datetime(event_time, utc=True)
    assert utc[train].max() < split.train_end and utc[test].min() >= split.test_start
    assert utc[test].min() - utc[train].max() > pd.Timedelta(days=7)
    in_gap = ~train & ~test
    assert utc[in_gap].min() >= split.train_end and utc[in_gap].max() < split.test_start
    assert json.loads(json.dumps(split.as_dict()))["gap_days"] == 7


def test_time_split_needs_enough_days() -> None:
    event_time = pd.Series(pd.date_range("2026-01-01", periods=21, freq="D", tz="UTC"))
    with pytest.raises(InsufficientHistoryError, match="21 days"):
        plan_time_split(event_time, test_days=14, gap_days=7)
    assert plan_time_split(event_time, test_days=13, gap_days=7).train_days == 1


# --- thresholds and training -------------------------------------------------------------------


def test_choose_thresholds_follows_the_rule() -> None:
    # 200 transactions ranked by score: the top 10 are 9 frauds and 1 genuine, then 1 more fraud.
    scores = np.linspace(1.0, 0.0, 200, endpoint=False)
    labels = np.zeros(200, dtype=int)
    labels[[0, 1, 2, 3, 4, 5, 6, 8, 9, 15]] = 1
    policy = ThresholdPolicy(decline_precision=0.9, min_decline_frauds=5, review_alert_rate=0.05)
    thresholds = choose_thresholds(labels, scores, policy)
    assert thresholds.decline == scores[9]  # top 10: 9/10 = 0.9 precision; top 16 is 10/16
    assert thresholds.review == scores[9]  # 5 % of 200 = 10 alerts, capped at decline anyway
    wider = choose_thresholds(labels, scores, ThresholdPolicy(review_alert_rate=0.1))
    assert wider.review == scores[19] < wider.decline == scores[9]
    unreachable = choose_thresholds(labels, scores, ThresholdPolicy(decline_precision=1.0, min_decline_frauds=8))
    assert unreachable.decline == 1.0 and unreachable.review <= unreachable.decline


def test_training_learns_and_orders_thresholds(trained: TrainingResult) -> None:
    metrics = trained.metrics
    assert metrics.roc_auc > 0.8
    assert metrics.average_precision > 0.2
    assert 0.0 < trained.review_threshold <= trained.decline_threshold <= 1.0
    assert metrics.recall_at_review >= metrics.recall_at_decline
    assert metrics.alert_rate_at_review < 0.05
    assert metrics.n_test_days == 14 and metrics.k == 100
    assert 0 < metrics.n_train_fraud < metrics.n_train and 0 < metrics.n_test_fraud < metrics.n_test
    assert trained.validation_start < trained.split.train_end
    assert trained.feature_names == ("amount_z", "velocity_z", "terminal_risk", "noise_a", "noise_b")
    scores = trained.model.predict_proba(np.zeros((3, 5)))[:, 1]
    assert ((scores >= 0) & (scores <= 1)).all()


def test_training_metadata_is_json(trained: TrainingResult) -> None:
    metadata = json.loads(json.dumps(trained.registry_metadata(source="synthetic")))
    assert metadata["source"] == "synthetic"
    assert metadata["review_threshold"] == trained.review_threshold
    assert metadata["training_window"]["test_days"] == 14
    assert metadata["metrics"]["roc_auc"] == trained.metrics.roc_auc


def test_training_refuses_a_test_period_without_frauds(history) -> None:
    X, y, event_time, customer_id = history
    y = y.copy()
    y[event_time >= START + pd.Timedelta(days=31)] = 0
    with pytest.raises(InsufficientLabelsError, match="test period"):
        train_fraud_model(X, y, event_time, customer_id)


def test_training_checks_input_lengths(history) -> None:
    X, y, event_time, customer_id = history
    with pytest.raises(ValueError, match="differ in length"):
        train_fraud_model(X, y[:-1], event_time, customer_id)


# --- registry ----------------------------------------------------------------------------------

THRESHOLDS = {"review_threshold": 0.2, "decline_threshold": 0.8}


def _small_model() -> LogisticRegression:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    return LogisticRegression().fit(X, (X[:, 0] + rng.normal(size=200) > 1).astype(int))


def test_registry_round_trip_of_a_trained_model(tmp_path: Path, trained: TrainingResult, history) -> None:
    registry = ModelRegistry(tmp_path / "models")
    version = registry.save(trained.model, trained.feature_names, trained.registry_metadata("synthetic"))
    assert registry.versions() == [version]

    loaded = registry.load(version)
    assert loaded.version == version
    assert loaded.feature_names == trained.feature_names
    assert (loaded.review_threshold, loaded.decline_threshold) == (
        trained.review_threshold,
        trained.decline_threshold,
    )
    assert loaded.metadata["source"] == "synthetic" and loaded.metadata["created_at"]
    X = history[0].iloc[:500]
    expected = trained.model.predict_proba(X.to_numpy())[:, 1]
    np.testing.assert_array_equal(loaded.predict_proba(X.to_numpy()), expected)
    np.testing.assert_array_equal(loaded.predict_proba(X[list(reversed(X.columns))]), expected)
    with pytest.raises(ValueError, match="expects 5 features"):
        loaded.predict_proba(np.zeros((2, 4)))

    folder = tmp_path / "models" / version
    assert json.loads((folder / "features.json").read_text()) == list(trained.feature_names)
    assert {line.split()[1] for line in (folder / "checksum.sha256").read_text().splitlines()} == {
        "model.skops",
        "features.json",
        "metadata.json",
    }


def test_registry_versions_sort_by_creation(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    saved = [registry.save(_small_model(), ["a", "b"], THRESHOLDS) for _ in range(3)]
    assert registry.versions() == saved == sorted(saved) and len(set(saved)) == 3


def test_registry_save_validates_its_input(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    with pytest.raises(ValueError, match="review_threshold"):
        registry.save(_small_model(), ["a", "b"], {"review_threshold": 0.5})
    with pytest.raises(ValueError, match="review_threshold <= decline_threshold"):
        registry.save(_small_model(), ["a", "b"], {"review_threshold": 0.9, "decline_threshold": 0.5})
    with pytest.raises(ValueError, match="unique"):
        registry.save(_small_model(), ["a", "a"], THRESHOLDS)
    assert registry.versions() == []


def test_promotion_pointer(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    assert registry.production_version() is None
    assert registry.load_production() is None

    first = registry.save(_small_model(), ["a", "b"], THRESHOLDS)
    second = registry.save(_small_model(), ["a", "b"], THRESHOLDS)
    assert registry.load_production() is None  # saving does not promote
    registry.promote(first)
    assert registry.production_version() == first
    registry.promote(second)
    manifest = hashlib.sha256((tmp_path / second / "checksum.sha256").read_bytes()).hexdigest()
    assert (tmp_path / "PRODUCTION").read_text() == f"{second}\nsha256:{manifest}\n"
    assert registry.production_pointer() == ProductionPointer(second, manifest)
    production = registry.load_production()
    assert production is not None and production.version == second
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left

    with pytest.raises(ModelNotFoundError):
        registry.promote("20260101T000000.000000Z-deadbeef")
    assert registry.production_version() == second


def test_tampered_model_file_is_refused(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    version = registry.save(_small_model(), ["a", "b"], THRESHOLDS)
    model_file = tmp_path / version / "model.skops"
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    with pytest.raises(ModelIntegrityError, match=r"model\.skops does not match its sha256"):
        registry.load(version)
    with pytest.raises(ModelIntegrityError):
        registry.promote(version)


def test_tampered_thresholds_are_refused(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    version = registry.save(_small_model(), ["a", "b"], THRESHOLDS)
    metadata_file = tmp_path / version / "metadata.json"
    metadata_file.write_text(metadata_file.read_text().replace("0.8", "0.99"))
    with pytest.raises(ModelIntegrityError, match=r"metadata\.json"):
        registry.load(version)


@pytest.mark.parametrize("missing", ["model.skops", "features.json", "checksum.sha256"])
def test_missing_file_is_refused(tmp_path: Path, missing: str) -> None:
    registry = ModelRegistry(tmp_path)
    version = registry.save(_small_model(), ["a", "b"], THRESHOLDS)
    (tmp_path / version / missing).unlink()
    with pytest.raises(ModelIntegrityError, match=f"{missing} is missing"):
        registry.load(version)


def rewrite_checksums(folder: Path) -> None:
    """What an attacker with write access does after altering a version: make the manifest match again."""
    names = ("model.skops", "features.json", "metadata.json")
    lines = [f"{hashlib.sha256((folder / name).read_bytes()).hexdigest()}  {name}\n" for name in names]
    (folder / "checksum.sha256").write_text("".join(lines))


def test_a_model_file_that_is_no_skops_file_is_refused_in_one_line(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    version = registry.save(_small_model(), ["a", "b"], THRESHOLDS)
    (tmp_path / version / "model.skops").write_bytes(b"not a model")
    rewrite_checksums(tmp_path / version)
    for attempt in (registry.load, registry.promote):  # promotion loads what it promotes
        with pytest.raises(ModelIntegrityError, match=r"model\.skops is not a readable skops model") as refused:
            attempt(version)
        assert "\n" not in str(refused.value)


def _trained_version(registry: ModelRegistry, trained: TrainingResult) -> str:
    return registry.save(trained.model, trained.feature_names, trained.registry_metadata("synthetic"))


def test_train_save_promote_load_gives_the_same_scores(tmp_path: Path, trained: TrainingResult, history) -> None:
    registry = ModelRegistry(tmp_path)
    registry.promote(_trained_version(registry, trained))
    loaded = registry.load_production()
    assert loaded is not None and type(loaded.model) is type(trained.model)
    assert loaded.model.fraud_weight == trained.model.fraud_weight
    X = history[0].iloc[:2000].to_numpy()
    np.testing.assert_array_equal(loaded.predict_proba(X), trained.model.predict_proba(X)[:, 1])
    assert loaded.metadata["metrics"] == json.loads(json.dumps(trained.metrics.as_dict()))


def test_the_model_file_holds_no_pickle(tmp_path: Path, trained: TrainingResult) -> None:
    registry = ModelRegistry(tmp_path)
    version = _trained_version(registry, trained)
    with zipfile.ZipFile(tmp_path / version / "model.skops") as archive:
        assert "schema.json" in archive.namelist()
        assert all(name == "schema.json" or name.endswith(".npy") for name in archive.namelist())
        for name in archive.namelist():
            if name.endswith(".npy"):
                assert not np.load(archive.open(name), allow_pickle=False).dtype.hasobject
    untrusted = skops.io.get_untrusted_types(file=tmp_path / version / "model.skops")
    assert set(untrusted) <= {
        "payment_platform.model.training.FraudScoreModel",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    }


def test_a_model_of_untrusted_types_is_refused_when_saved(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    with pytest.raises(ValueError, match=r"types the registry does not load: .*Unlisted"):
        registry.save(Unlisted(), ["a", "b"], THRESHOLDS)
    assert registry.versions() == []


class Unlisted:
    """A model class the registry has not been told to trust."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.zeros((len(X), 2))


def _set_first_split(nodes: np.ndarray, field: str, value: int) -> None:
    nodes[field][np.flatnonzero(nodes["is_leaf"] == 0)[0]] = value


@pytest.mark.parametrize(
    "field, value",
    [("left", 10**6), ("right", 10**6), ("left", 0), ("feature_idx", 5), ("feature_idx", -1), ("is_categorical", 1)],
    ids=["left past the end", "right past the end", "left to itself (a loop)", "feature 5 of 5", "feature -1", "cat"],
)
def test_tree_nodes_out_of_bounds_are_refused(tmp_path: Path, trained: TrainingResult, field: str, value: int) -> None:
    """scikit-learn follows these indices unchecked: a crafted file would read past its arrays or loop forever."""
    registry = ModelRegistry(tmp_path)
    version = _trained_version(registry, trained)
    forged = copy.deepcopy(trained.model)
    _set_first_split(forged.classifier._predictors[-1][0].nodes, field, value)
    skops.io.dump(forged, tmp_path / version / "model.skops")
    rewrite_checksums(tmp_path / version)
    for attempt in (registry.load, registry.promote):
        with pytest.raises(ModelIntegrityError, match="a tree has node indices out of bounds"):
            attempt(version)
    assert registry.production_version() is None  # never promoted


def test_a_hand_written_pointer_is_refused_in_one_line(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    version = registry.save(_small_model(), ["a", "b"], THRESHOLDS)
    (tmp_path / "PRODUCTION").write_text(version + "\n")  # the valid version, named by hand
    assert registry.production_version() == version
    for attempt in (registry.production_pointer, registry.load_production):
        with pytest.raises(ModelIntegrityError, match=f"PRODUCTION names model {version} without the digest") as e:
            attempt()
        assert "\n" not in str(e.value)
    (tmp_path / "PRODUCTION").write_text(f"{version}\nsha256:{'0' * 64}\n")  # a made-up digest
    with pytest.raises(ModelIntegrityError, match="does not match the digest in PRODUCTION"):
        registry.load_production()


def test_a_version_altered_after_its_promotion_is_refused(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    version = registry.save(_small_model(), ["a", "b"], THRESHOLDS)
    registry.promote(version)
    metadata_file = tmp_path / version / "metadata.json"
    metadata_file.write_text(metadata_file.read_text().replace("0.8", "0.99"))
    rewrite_checksums(tmp_path / version)
    assert registry.load(version).decline_threshold == 0.99  # consistent on its own...
    with pytest.raises(ModelIntegrityError, match="files changed after it was promoted"):
        registry.load_production()  # ...but not what was promoted


def test_promotion_works_over_a_tampered_pointer(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    version = registry.save(_small_model(), ["a", "b"], THRESHOLDS)
    (tmp_path / "PRODUCTION").write_text(version + "\n")
    registry.promote(version)
    loaded = registry.load_production()
    assert loaded is not None and loaded.version == version


@pytest.mark.parametrize("bad", ["../outside", "..", "a/b", "/etc", ".hidden", "", "x" * 65, "v\n1"])
def test_version_names_outside_the_registry_are_rejected(tmp_path: Path, bad: str) -> None:
    registry = ModelRegistry(tmp_path / "models")
    registry.save(_small_model(), ["a", "b"], THRESHOLDS)
    with pytest.raises(InvalidModelVersionError):
        registry.load(bad)
    with pytest.raises(InvalidModelVersionError):
        registry.promote(bad)


def test_symlinked_version_outside_the_registry_is_rejected(tmp_path: Path) -> None:
    elsewhere = ModelRegistry(tmp_path / "elsewhere")
    version = elsewhere.save(_small_model(), ["a", "b"], THRESHOLDS)
    registry = ModelRegistry(tmp_path / "models")
    registry.root.mkdir()
    (registry.root / version).symlink_to(tmp_path / "elsewhere" / version)
    with pytest.raises(InvalidModelVersionError, match="outside"):
        registry.load(version)


def test_unknown_version_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        ModelRegistry(tmp_path).load("20260101T000000.000000Z-deadbeef")


def test_floors_are_relative_to_what_the_test_days_allow() -> None:
    from payment_platform.model.metrics import ModelMetrics
    from payment_platform.model.pipeline import MetricFloors

    def metrics(auc: float, ap: float, cp: float, best_cp: float, fraud: int, n: int = 10_000) -> ModelMetrics:
        return ModelMetrics(
            roc_auc=auc, average_precision=ap, card_precision_at_k=cp, best_card_precision_at_k=best_cp, k=100,
            review_threshold=0.1, precision_at_review=0.5, recall_at_review=0.5, alert_rate_at_review=0.01,
            decline_threshold=0.9, precision_at_decline=0.9, recall_at_decline=0.2, alert_rate_at_decline=0.001,
            n_train=1, n_train_fraud=1, n_test=n, n_test_fraud=fraud, n_test_cards=100, n_test_days=7,
        )  # fmt: skip

    floors = MetricFloors()
    # A small population: CP@100 of 0.07 is a third of the 0.21 any ranking could reach - it passes.
    assert floors.failures(metrics(0.9, 0.5, 0.07, 0.21, fraud=100)) == []
    # The same CP@100 where 0.6 was reachable, and AP below ten times the 1 % fraud rate, fail.
    failures = floors.failures(metrics(0.9, 0.09, 0.07, 0.6, fraud=100))
    assert [f.split()[0] for f in failures] == ["average_precision", "card_precision_at_k"]
    assert "< floor 0.1000" in failures[0] and "< floor 0.1200" in failures[1]
    assert [f.split()[0] for f in floors.failures(metrics(0.79, 0.5, 0.5, 0.6, fraud=100))] == ["roc_auc"]
