"""The decision thresholds: chosen on scores of held-out days, by a rule an investigator can read."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ThresholdPolicy:
    """How the decision thresholds are chosen on the validation tail.

    decline: the lowest score at which the transactions scoring at least that much are frauds
    with precision >= `decline_precision` (and at least `min_decline_frauds` of them, so a single
    lucky fraud at the top does not set it). None reaching it: 1.0, i.e. nothing is auto-declined.

    review: the lowest score that alerts at most `review_alert_rate` of the transactions (the
    investigators' daily budget; declined transactions count in it), capped at the decline
    threshold so that decline >= review always holds.
    """

    decline_precision: float = 0.9
    min_decline_frauds: int = 5
    review_alert_rate: float = 0.01


@dataclass(frozen=True)
class DecisionThresholds:
    """On the fraud probability: DECLINED if score >= decline, REVIEW if score >= review."""

    review: float
    decline: float


def choose_thresholds(
    labels: np.ndarray, scores: np.ndarray, policy: ThresholdPolicy | None = None
) -> DecisionThresholds:
    """Review and decline thresholds on held-out scores, by the rule documented in ThresholdPolicy."""
    policy = policy or ThresholdPolicy()
    order = np.argsort(-np.asarray(scores, dtype=float), kind="mergesort")
    ranked_scores = np.asarray(scores, dtype=float)[order]
    frauds_caught = np.cumsum(np.asarray(labels, dtype=int)[order])
    n_alerts = np.arange(1, ranked_scores.size + 1)
    # A threshold alerts every transaction scoring at least it, so only the last of equal scores is a cut.
    is_cut = np.r_[ranked_scores[1:] != ranked_scores[:-1], True]

    declinable = (
        is_cut & (frauds_caught / n_alerts >= policy.decline_precision) & (frauds_caught >= policy.min_decline_frauds)
    )
    decline = float(ranked_scores[np.flatnonzero(declinable)[-1]]) if declinable.any() else 1.0

    within_budget = is_cut & (n_alerts <= policy.review_alert_rate * ranked_scores.size)
    review = float(ranked_scores[np.flatnonzero(within_budget)[-1]]) if within_budget.any() else decline
    return DecisionThresholds(review=min(review, decline), decline=decline)
