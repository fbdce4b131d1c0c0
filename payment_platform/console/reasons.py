"""Reason codes in words: which rule fired, the threshold it crossed, and what the store shows for the payment.

The thresholds are those of the decision policy the scorer applies (`stream/decisions.py`): the model's
review and decline thresholds from its registry metadata, and the rules' limits. The observed values are
recomputed from the card's payments in the store with the feature windows' own definition (card windows
are (t − w, t], the payment itself included), so an analyst sees by how much a limit was crossed.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from payment_platform.console.models import ModelInfo
from payment_platform.features.definitions import CARD_WINDOWS_MS
from payment_platform.stream.decisions import DecisionPolicy

_WINDOW_10M = dt.timedelta(milliseconds=CARD_WINDOWS_MS["10m"])
_WINDOW_1H = dt.timedelta(milliseconds=CARD_WINDOWS_MS["1h"])
_WINDOW_MEAN = dt.timedelta(milliseconds=CARD_WINDOWS_MS["30d"])  # the decision rule's amount_to_card_mean_30d
CARD_CONTEXT_REACH = _WINDOW_MEAN  # how much of a card's history the explanations need before a payment


@dataclass(frozen=True)
class ReasonExplanation:
    code: str
    rule: str
    threshold: str
    observed: str


@dataclass(frozen=True)
class CardPayments:
    """A card's payments (event time, amount), oldest first, reaching CARD_CONTEXT_REACH before the payments
    to explain."""

    event_times: Sequence[dt.datetime]
    amounts: Sequence[float]

    def in_window(self, end: dt.datetime, length: dt.timedelta) -> list[float]:
        """Amounts of the payments in (end − length, end]."""
        low = bisect.bisect_right(self.event_times, end - length)
        high = bisect.bisect_right(self.event_times, end)
        return list(self.amounts[low:high])


def decision_policy(model: ModelInfo) -> DecisionPolicy:
    """The policy the scorer applies with this model (rule limits at their defaults, as the scorer builds it)."""
    return DecisionPolicy(model.review_threshold, model.decline_threshold)


def explain(
    reasons: str,
    *,
    score: float,
    amount: float,
    event_time: dt.datetime,
    model: ModelInfo | None,
    card: CardPayments,
) -> list[ReasonExplanation]:
    """One explanation per reason code of a payment, in its order."""
    policy = decision_policy(model) if model is not None else None
    explained = []
    for code in [c.strip() for c in reasons.split(",") if c.strip()]:
        explained.append(_explain_one(code, score, amount, event_time, model, policy, card))
    return explained


def _explain_one(
    code: str,
    score: float,
    amount: float,
    event_time: dt.datetime,
    model: ModelInfo | None,
    policy: DecisionPolicy | None,
    card: CardPayments,
) -> ReasonExplanation:
    limits = policy or DecisionPolicy(0.0, 1.0)  # the rules' limits do not depend on the model
    if code == "model_score":
        if model is None:
            return ReasonExplanation(code, "fraud model score", "model not in the registry", f"score {score:.3f}")
        crossed = (
            f"decline threshold {model.decline_threshold:.3f}"
            if score >= model.decline_threshold
            else f"review threshold {model.review_threshold:.3f} (declines from {model.decline_threshold:.3f})"
        )
        return ReasonExplanation(code, f"fraud model score (model {model.version})", f"≥ {crossed}", f"{score:.3f}")
    if code == "velocity_10m":
        seen = len(card.in_window(event_time, _WINDOW_10M))
        return ReasonExplanation(
            code,
            "payments by the card within 10 minutes, this one included",
            f"≥ {limits.velocity_10m_limit} (declines from {2 * limits.velocity_10m_limit})",
            f"{seen} in the store",
        )
    if code == "velocity_1h":
        seen = len(card.in_window(event_time, _WINDOW_1H))
        return ReasonExplanation(
            code,
            "payments by the card within 1 hour, this one included",
            f"≥ {limits.velocity_1h_limit}",
            f"{seen} in the store",
        )
    if code == "high_amount":
        return ReasonExplanation(code, "amount", f"≥ {limits.high_amount:,.2f}", f"{amount:,.2f}")
    if code == "amount_vs_card_mean":
        window = card.in_window(event_time, _WINDOW_MEAN)
        mean = sum(window) / len(window) if window else 0.0
        ratio = f"{amount / mean:.1f} × the mean of {mean:,.2f}" if mean else "no mean"
        return ReasonExplanation(
            code,
            "amount relative to the card's 30-day mean",
            f"≥ {limits.amount_to_card_mean_limit:g} × (with ≥ {limits.min_card_history} payments in 30 days)",
            f"{ratio} over {len(window)} payments",
        )
    return ReasonExplanation(code, "rule not known to this console", "—", "—")
