"""From a fraud score and the payment's features to a status with reason codes, and the decision record
that goes back to the system that authorises the payment.

The model's score decides through two thresholds chosen at training time; rules add what a bank
wants enforced whatever the model says. Everything here works on whole batches (numpy arrays).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import orjson

from payment_platform.features import FEATURE_NAMES

if TYPE_CHECKING:
    from payment_platform.stream.model_source import ScoringModel

APPROVED, REVIEW, DECLINED = "APPROVED", "REVIEW", "DECLINED"
_SEVERITY = {APPROVED: 0, REVIEW: 1, DECLINED: 2}
_STATUS_BY_SEVERITY = np.array([APPROVED, REVIEW, DECLINED], dtype=object)
_FEATURE_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}


@dataclass(frozen=True)
class DecisionPolicy:
    """Thresholds on the model score and the rules' limits."""

    review_threshold: float
    decline_threshold: float
    velocity_10m_limit: int = 5  # payments by one card within 10 minutes (event time), this one included
    velocity_1h_limit: int = 10
    high_amount: float = 10_000.0  # absolute amount that always gets a second look
    amount_to_card_mean_limit: float = 10.0  # amount relative to the card's own 30-day mean
    min_card_history: int = 3  # the relative-amount rule needs this many payments in 30 days

    def __post_init__(self) -> None:
        if not 0.0 <= self.review_threshold <= self.decline_threshold <= 1.0:
            raise ValueError("thresholds must satisfy 0 <= review <= decline <= 1")


@dataclass(frozen=True)
class Rule:
    """A reason code, the status it forces at least, and which rows it fires on."""

    code: str
    status: str
    fired: np.ndarray  # bool per payment


@dataclass(frozen=True)
class Decisions:
    status: np.ndarray  # object array of APPROVED / REVIEW / DECLINED
    reasons: np.ndarray  # object array of comma-separated reason codes, most important first


def evaluate_rules(
    policy: DecisionPolicy,
    score: np.ndarray,
    amount: np.ndarray,
    card_count_10m: np.ndarray,
    card_count_1h: np.ndarray,
    card_count_30d: np.ndarray,
    amount_to_card_mean_30d: np.ndarray,
) -> list[Rule]:
    """Every rule, in order of importance (the order of the reason codes)."""
    return [
        Rule("model_score", DECLINED, score >= policy.decline_threshold),
        Rule("model_score", REVIEW, (score >= policy.review_threshold) & (score < policy.decline_threshold)),
        Rule("velocity_10m", DECLINED, card_count_10m >= 2 * policy.velocity_10m_limit),
        Rule(
            "velocity_10m",
            REVIEW,
            (card_count_10m >= policy.velocity_10m_limit) & (card_count_10m < 2 * policy.velocity_10m_limit),
        ),
        Rule("velocity_1h", REVIEW, card_count_1h >= policy.velocity_1h_limit),
        Rule("high_amount", REVIEW, amount >= policy.high_amount),
        Rule(
            "amount_vs_card_mean",
            REVIEW,
            (card_count_30d >= policy.min_card_history) & (amount_to_card_mean_30d >= policy.amount_to_card_mean_limit),
        ),
    ]


def decide(rules: list[Rule], n: int) -> Decisions:
    """The strictest status any rule forces, and the codes of the rules that fired.

    Reasons are ordered by the status they force, then by the rules' order of importance. Each row's
    fired rules form a bit mask, and the text is built once per distinct mask: a batch has a handful.
    """
    ordered = sorted(rules, key=lambda r: -_SEVERITY[r.status])
    assert len(ordered) < 63, "one bit per rule in an int64 mask"
    severity = np.zeros(n, dtype=np.int8)
    mask = np.zeros(n, dtype=np.int64)
    for bit, rule in enumerate(ordered):
        fired = np.asarray(rule.fired, dtype=bool)
        np.maximum(severity, np.where(fired, _SEVERITY[rule.status], 0).astype(np.int8), out=severity)
        mask |= fired.astype(np.int64) << bit
    masks, row_mask = np.unique(mask, return_inverse=True)
    texts = np.array([_reason_text(ordered, int(m)) for m in masks.tolist()], dtype=object)
    return Decisions(status=_STATUS_BY_SEVERITY[severity], reasons=texts[row_mask.reshape(-1)])


def _reason_text(ordered: list[Rule], mask: int) -> str:
    codes: list[str] = []
    for bit, rule in enumerate(ordered):
        if mask >> bit & 1 and rule.code not in codes:
            codes.append(rule.code)
    return ",".join(codes)


def score_and_decide(model: ScoringModel, features: np.ndarray, amount: np.ndarray) -> tuple[np.ndarray, Decisions]:
    """Fraud probabilities and decisions (status, reason codes) of a featurised batch."""
    score = model.predict_proba(features[:, model.feature_index])

    def feature(name: str) -> np.ndarray:
        return features[:, _FEATURE_INDEX[name]]

    rules = evaluate_rules(
        DecisionPolicy(model.review_threshold, model.decline_threshold),
        score,
        amount,
        feature("card_count_10m"),
        feature("card_count_1h"),
        feature("card_count_30d"),
        feature("amount_to_card_mean_30d"),
    )
    return score, decide(rules, len(score))


def decision_message(
    transaction_id: str,
    customer_id: str,
    status: str,
    score: float,
    reasons: str,
    model_version: str,
    event_iso: str,
    decided_iso: str,
) -> tuple[bytes, bytes]:
    """(key, value) of a `payments.decisions` record (CONTRACTS §1, Decision): the stored row, as JSON."""
    return customer_id.encode("utf-8"), orjson.dumps(
        {
            "transaction_id": transaction_id,
            "customer_id": customer_id,
            "status": status,
            "score": score,
            "reasons": reasons.split(",") if reasons else [],
            "model_version": model_version,
            "event_time": event_iso,
            "decided_at": decided_iso,
        }
    )


def iso_z(epoch_us: np.ndarray) -> list[str]:
    """ISO-8601 UTC with microseconds and a Z, for a column of epoch microseconds."""
    return [text + "Z" for text in np.datetime_as_string(epoch_us.astype("datetime64[us]"), unit="us").tolist()]
