"""The training protocol: the features' warm-up counted from the first day with data, the held-out
measurement, and the refit of the promoted model on every labelled day."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from payment_platform.features.definitions import (
    ALLOWED_LATENESS_MS,
    CARD_REACH_MS,
    DAY_MS,
    TERMINAL_REACH_S,
    WARMUP_DAYS,
)
from payment_platform.model import ModelRegistry, TrainingResult, train_fraud_model
from payment_platform.model.pipeline import (
    TrainingDataError,
    TrainingPlan,
    TrainingWindow,
    check_history_length,
    evaluate_candidate,
    modelled_start,
    train_candidate,
    training_window,
)
from payment_platform.world import World
from payment_platform_tests.test_model import START, synthetic_history

PLAN = TrainingPlan(max_modelled_days=20, test_days=5, gap_days=3)


def payments_on(first: dt.date, last: dt.date) -> pd.DataFrame:
    """One payment at noon of each day from first to last."""
    days = pd.date_range(first, last, freq="D", tz="UTC") + pd.Timedelta(hours=12)
    return pd.DataFrame({"event_time": days, "transaction_id": [str(i) for i in range(len(days))]})


def test_the_warm_up_covers_the_longest_window_reach_with_lateness() -> None:
    # terminal windows reach furthest: a week's label delay, 30 days, and a day of allowed lateness
    assert TERMINAL_REACH_S * 1_000 > CARD_REACH_MS
    assert WARMUP_DAYS == 38
    assert WARMUP_DAYS * DAY_MS >= TERMINAL_REACH_S * 1_000 + ALLOWED_LATENESS_MS


def test_the_warm_up_counts_from_the_first_day_with_data_not_the_window_start() -> None:
    window = training_window(dt.date(2026, 6, 30), PLAN.window_days)
    payments = payments_on(dt.date(2026, 5, 10), window.end)  # the window starts before the data
    assert window.start < dt.date(2026, 5, 10)
    assert modelled_start(payments) == dt.date(2026, 5, 10) + dt.timedelta(days=WARMUP_DAYS)
    assert check_history_length(payments, window, PLAN) == dt.date(2026, 6, 17)


def test_too_short_a_history_is_refused_in_one_line() -> None:
    window = TrainingWindow(dt.date(2026, 5, 1), dt.date(2026, 6, 15))
    payments = payments_on(dt.date(2026, 5, 1), window.end)  # 46 days: 8 after the warm-up, 10 needed
    with pytest.raises(TrainingDataError) as refused:
        check_history_length(payments, window, PLAN)
    message = str(refused.value)
    assert "\n" not in message
    assert "too short" in message and f"{WARMUP_DAYS} days of warm-up" in message and "2 more days" in message


def test_the_default_plan_models_eight_weeks_after_the_warm_up() -> None:
    plan = TrainingPlan()
    assert plan.max_modelled_days >= 56
    assert plan.window_days == WARMUP_DAYS + plan.max_modelled_days


@pytest.fixture(scope="module")
def refit() -> tuple[TrainingResult, tuple[pd.DataFrame, pd.Series, pd.Series, pd.Series]]:
    history = synthetic_history(seed=4, days=40)
    X, y, event_time, customer_id = history
    return train_fraud_model(X, y, event_time, customer_id, test_days=10, gap_days=5, seed=0), history


def test_the_promoted_model_is_refit_on_every_labelled_day(refit) -> None:
    result, (X, y, event_time, _) = refit
    assert result.fitted_on.start == result.split.train_start
    assert result.fitted_on.end == result.split.test_end
    assert result.fitted_on.rows == len(X) and result.fitted_on.frauds == int(y.sum())
    assert result.metrics.n_train < result.fitted_on.rows
    assert result.model.n_iterations == result.evaluated_model.n_iterations
    test = result.split.test_mask(event_time).to_numpy()
    # the recorded metrics are the evaluated model's on days it never saw, not the refit model's
    held_out = result.evaluated_model.predict_proba(X[test].to_numpy())[:, 1]
    assert result.metrics.roc_auc == pytest.approx(roc_auc_score(y[test], held_out))
    refit_scores = result.model.predict_proba(X[test].to_numpy())[:, 1]
    assert not np.array_equal(refit_scores, held_out)


def test_the_registry_records_what_was_measured_and_what_was_fitted(refit) -> None:
    result, _ = refit
    metadata = json.loads(json.dumps(result.registry_metadata(source="synthetic")))
    assert metadata["metrics"]["n_test_days"] == 10
    assert metadata["training_window"]["test_start"] == result.split.test_start.isoformat()
    assert metadata["fitted_on"] == {
        "start": START.isoformat(),
        "end": result.split.test_end.isoformat(),
        "days": 40,
        "rows": result.fitted_on.rows,
        "frauds": result.fitted_on.frauds,
    }


def test_without_refit_the_promoted_model_is_the_evaluated_one(refit) -> None:
    _, (X, y, event_time, customer_id) = refit
    result = train_fraud_model(X, y, event_time, customer_id, test_days=10, gap_days=5, refit=False)
    assert result.model is result.evaluated_model
    assert result.fitted_on.end == result.split.train_end


def test_a_candidate_trains_only_on_rows_with_complete_windows(tmp_path: Path) -> None:
    plan = TrainingPlan(max_modelled_days=24, test_days=7, gap_days=7)
    window = training_window(dt.date(2026, 4, 30), plan.window_days + 10)  # more room than there is data
    payments = World(seed=5, n_cards=600).days(window.start + dt.timedelta(days=10), window.end)
    registry = ModelRegistry(tmp_path)

    candidate = train_candidate(payments, window, plan, registry)

    first_day = payments["event_time"].min().date()
    assert candidate.modelled_start == first_day + dt.timedelta(days=WARMUP_DAYS)
    times = payments["event_time"]
    modelled = times >= pd.Timestamp(candidate.modelled_start, tz="UTC")
    before_gap = times < pd.Timestamp(candidate.test_start - dt.timedelta(days=plan.gap_days), tz="UTC")
    assert candidate.train_rows == int((modelled & before_gap).sum())
    assert candidate.fitted_rows == int(modelled.sum())
    metadata = registry.metadata(candidate.version)
    assert metadata["training_window"]["modelled_start"] == str(candidate.modelled_start)
    assert metadata["training_window"]["warmup_days"] == WARMUP_DAYS
    assert metadata["fitted_on"]["rows"] == candidate.fitted_rows
    assert evaluate_candidate(candidate, registry).as_dict() == metadata["metrics"]
