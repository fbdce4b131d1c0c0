"""From scores and features to statuses with reason codes (stream/decisions.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from payment_platform.stream.decisions import (
    APPROVED,
    DECLINED,
    REVIEW,
    DecisionPolicy,
    Decisions,
    Rule,
    decide,
    evaluate_rules,
)

POLICY = DecisionPolicy(review_threshold=0.3, decline_threshold=0.8)


def decide_rows(
    score: list[float],
    *,
    amount: list[float] | None = None,
    count_10m: list[int] | None = None,
    count_1h: list[int] | None = None,
    count_30d: list[int] | None = None,
    amount_to_mean: list[float] | None = None,
    policy: DecisionPolicy = POLICY,
) -> Decisions:
    """Decisions for a batch; features default to a quiet card paying a small amount."""
    n = len(score)
    rules = evaluate_rules(
        policy,
        np.asarray(score, dtype=float),
        np.asarray(amount if amount is not None else [20.0] * n, dtype=float),
        np.asarray(count_10m if count_10m is not None else [1] * n),
        np.asarray(count_1h if count_1h is not None else [1] * n),
        np.asarray(count_30d if count_30d is not None else [10] * n),
        np.asarray(amount_to_mean if amount_to_mean is not None else [1.0] * n, dtype=float),
    )
    return decide(rules, n)


def test_thresholds_give_the_three_statuses() -> None:
    decisions = decide_rows([0.0, 0.2999, 0.3, 0.5, 0.7999, 0.8, 1.0])
    assert decisions.status.tolist() == [APPROVED, APPROVED, REVIEW, REVIEW, REVIEW, DECLINED, DECLINED]
    assert decisions.reasons.tolist() == ["", "", *["model_score"] * 5]


def test_approved_payments_have_empty_reasons() -> None:
    decisions = decide_rows([0.01] * 4)
    assert decisions.status.tolist() == [APPROVED] * 4
    assert decisions.reasons.tolist() == [""] * 4


def test_equal_thresholds_never_review() -> None:
    decisions = decide_rows([0.49, 0.5, 0.51], policy=DecisionPolicy(review_threshold=0.5, decline_threshold=0.5))
    assert decisions.status.tolist() == [APPROVED, DECLINED, DECLINED]


@pytest.mark.parametrize(
    ("features", "code", "status"),
    [
        ({"count_10m": [5]}, "velocity_10m", REVIEW),
        ({"count_10m": [9]}, "velocity_10m", REVIEW),
        ({"count_10m": [10]}, "velocity_10m", DECLINED),
        ({"count_1h": [10]}, "velocity_1h", REVIEW),
        ({"amount": [10_000.0]}, "high_amount", REVIEW),
        ({"amount": [250_000.0]}, "high_amount", REVIEW),
        ({"amount_to_mean": [10.0], "count_30d": [3]}, "amount_vs_card_mean", REVIEW),
    ],
)
def test_rules_force_at_least_review_whatever_the_score(
    features: dict[str, list[float]], code: str, status: str
) -> None:
    decisions = decide_rows([0.0], **features)
    assert decisions.status.tolist() == [status]
    assert decisions.reasons.tolist() == [code]


@pytest.mark.parametrize(
    "features",
    [
        {"count_10m": [4]},
        {"count_1h": [9]},
        {"amount": [9_999.99]},
        {"amount_to_mean": [9.99], "count_30d": [50]},
        {"amount_to_mean": [50.0], "count_30d": [2]},  # too little card history for the relative rule
    ],
)
def test_rules_below_their_limits_do_not_fire(features: dict[str, list[float]]) -> None:
    decisions = decide_rows([0.1], **features)
    assert decisions.status.tolist() == [APPROVED]
    assert decisions.reasons.tolist() == [""]


def test_rules_do_not_lower_a_model_decline() -> None:
    decisions = decide_rows([0.9], amount=[20_000.0], count_1h=[12])
    assert decisions.status.tolist() == [DECLINED]
    assert decisions.reasons.tolist() == ["model_score,velocity_1h,high_amount"]


def test_reasons_of_the_strictest_status_come_first() -> None:
    # The model says REVIEW, the 10-minute velocity says DECLINED: velocity_10m leads.
    decisions = decide_rows([0.5], count_10m=[12], amount=[15_000.0])
    assert decisions.status.tolist() == [DECLINED]
    assert decisions.reasons.tolist() == ["velocity_10m,model_score,high_amount"]


def test_reasons_of_one_status_follow_the_rules_order() -> None:
    decisions = decide_rows(
        [0.5], count_10m=[6], count_1h=[11], amount=[12_000.0], amount_to_mean=[40.0], count_30d=[5]
    )
    assert decisions.status.tolist() == [REVIEW]
    assert decisions.reasons.tolist() == ["model_score,velocity_10m,velocity_1h,high_amount,amount_vs_card_mean"]


def test_a_batch_decides_each_row_on_its_own() -> None:
    decisions = decide_rows(
        [0.1, 0.9, 0.1, 0.5],
        amount=[20.0, 20.0, 50_000.0, 20.0],
        count_10m=[1, 1, 1, 10],
    )
    assert decisions.status.tolist() == [APPROVED, DECLINED, REVIEW, DECLINED]
    assert decisions.reasons.tolist() == ["", "model_score", "high_amount", "velocity_10m,model_score"]


def test_a_code_appears_once_even_when_two_of_its_rules_fire() -> None:
    fired = np.array([True, True, False])
    rules = [
        Rule("velocity_10m", REVIEW, fired),
        Rule("high_amount", REVIEW, np.array([True, False, False])),
        Rule("velocity_10m", DECLINED, np.array([True, False, True])),
    ]
    decisions = decide(rules, 3)
    assert decisions.status.tolist() == [DECLINED, REVIEW, DECLINED]
    assert decisions.reasons.tolist() == ["velocity_10m,high_amount", "velocity_10m", "velocity_10m"]
    for reasons in decisions.reasons.tolist():
        codes = reasons.split(",")
        assert len(codes) == len(set(codes))


def test_evaluate_rules_lists_every_rule_in_order_of_importance() -> None:
    rules = evaluate_rules(POLICY, *(np.zeros(2) for _ in range(6)))
    assert [rule.code for rule in rules] == [
        "model_score",
        "model_score",
        "velocity_10m",
        "velocity_10m",
        "velocity_1h",
        "high_amount",
        "amount_vs_card_mean",
    ]
    assert all(rule.fired.shape == (2,) and rule.fired.dtype == bool for rule in rules)


def test_an_empty_batch() -> None:
    decisions = decide_rows([])
    assert decisions.status.shape == (0,)
    assert decisions.reasons.shape == (0,)


def test_custom_limits_are_used() -> None:
    policy = DecisionPolicy(review_threshold=0.3, decline_threshold=0.8, high_amount=100.0, velocity_1h_limit=3)
    decisions = decide_rows([0.0, 0.0], amount=[150.0, 20.0], count_1h=[1, 3], policy=policy)
    assert decisions.reasons.tolist() == ["high_amount", "velocity_1h"]


@pytest.mark.parametrize(("review", "decline"), [(0.8, 0.3), (-0.1, 0.5), (0.5, 1.01), (0.6, 0.59999)])
def test_policy_rejects_thresholds_out_of_order(review: float, decline: float) -> None:
    with pytest.raises(ValueError, match="review <= decline"):
        DecisionPolicy(review_threshold=review, decline_threshold=decline)


def test_policy_is_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        POLICY.review_threshold = 0.9  # type: ignore[misc]
