"""Detection-quality metrics (CONTRACTS §5): AUC, average precision, card precision@k, threshold stats."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from payment_platform.model.split import as_utc


class UndefinedMetricError(ValueError):
    """The metric has no value on this data (e.g. only one class, or no rows)."""


def _both_classes(labels: np.ndarray, metric: str) -> None:
    if labels.size == 0 or labels.min() == labels.max():
        raise UndefinedMetricError(f"{metric} needs both fraud and genuine transactions")


def roc_auc(labels: np.ndarray | pd.Series, scores: np.ndarray | pd.Series) -> float:
    """ROC AUC over transactions, scikit-learn's definition."""
    y = np.asarray(labels, dtype=int)
    _both_classes(y, "ROC AUC")
    return float(roc_auc_score(y, np.asarray(scores, dtype=float)))


def average_precision(labels: np.ndarray | pd.Series, scores: np.ndarray | pd.Series) -> float:
    """Average precision over transactions, scikit-learn's definition."""
    y = np.asarray(labels, dtype=int)
    _both_classes(y, "average precision")
    return float(average_precision_score(y, np.asarray(scores, dtype=float)))


def daily_card_precision_at_k(
    scores: np.ndarray | pd.Series,
    labels: np.ndarray | pd.Series,
    customer_id: np.ndarray | pd.Series,
    event_time: pd.Series,
    *,
    k: int = 100,
) -> pd.Series:
    """CP@k of each UTC day that has transactions, in day order (CONTRACTS §5).

    Each day: group the day's transactions by card keeping the highest score and the highest
    label, drop cards already known to be compromised, rank by score (ties: by customer_id, so
    the result is deterministic), take the top k; CP@k(day) = compromised cards among them / k,
    divided by k even when fewer than k cards remain.

    "Cards found compromised join the known set" is read as: the compromised cards *among that
    day's top k* join it - those are the ones investigators checked and confirmed. Compromised
    cards outside the top k stay unknown and can be found on a later day. This is the reading of
    the Fraud Detection Handbook (Le Borgne et al.), where the metric comes from.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    days = as_utc(pd.Series(event_time)).dt.floor("D").reset_index(drop=True)
    cards = pd.DataFrame(
        {
            "day": days,
            "customer_id": np.asarray(customer_id),
            "score": np.asarray(scores, dtype=float),
            "label": np.asarray(labels, dtype=int),
        }
    )
    if cards.empty:
        raise UndefinedMetricError("card precision@k needs at least one transaction")
    per_card = cards.groupby(["day", "customer_id"], as_index=False)[["score", "label"]].max()
    known_compromised: set[object] = set()
    daily: dict[object, float] = {}
    for day, day_cards in per_card.groupby("day", sort=True):
        candidates = day_cards[~day_cards["customer_id"].isin(known_compromised)]
        top_k = candidates.sort_values(["score", "customer_id"], ascending=[False, True]).head(k)
        found = top_k.loc[top_k["label"] == 1, "customer_id"]
        daily[day] = len(found) / k
        known_compromised.update(found)
    return pd.Series(daily, name=f"card_precision_at_{k}", dtype=float)


def card_precision_at_k(
    scores: np.ndarray | pd.Series,
    labels: np.ndarray | pd.Series,
    customer_id: np.ndarray | pd.Series,
    event_time: pd.Series,
    *,
    k: int = 100,
) -> float:
    """CP@k: the mean over days of `daily_card_precision_at_k`."""
    return float(daily_card_precision_at_k(scores, labels, customer_id, event_time, k=k).mean())


@dataclass(frozen=True)
class ThresholdStats:
    """What a decision threshold does on labelled transactions (alert = score >= threshold)."""

    threshold: float
    n_alerts: int
    alert_rate: float
    precision: float | None  # None when nothing is alerted: undefined, not zero
    recall: float


def threshold_stats(labels: np.ndarray | pd.Series, scores: np.ndarray | pd.Series, threshold: float) -> ThresholdStats:
    y = np.asarray(labels, dtype=int)
    alerts = np.asarray(scores, dtype=float) >= threshold
    if y.size == 0 or y.sum() == 0:
        raise UndefinedMetricError("recall needs at least one fraud transaction")
    n_alerts = int(alerts.sum())
    caught = int((alerts & (y == 1)).sum())
    return ThresholdStats(
        threshold=float(threshold),
        n_alerts=n_alerts,
        alert_rate=n_alerts / y.size,
        precision=caught / n_alerts if n_alerts else None,
        recall=caught / int(y.sum()),
    )


@dataclass(frozen=True)
class ModelMetrics:
    """Test-period quality of a model, flat so it maps onto run metadata and metadata.json."""

    roc_auc: float
    average_precision: float
    card_precision_at_k: float
    best_card_precision_at_k: float  # of a perfect ranking on the same days: what CP@k can reach at all
    k: int
    review_threshold: float
    precision_at_review: float | None
    recall_at_review: float
    alert_rate_at_review: float
    decline_threshold: float
    precision_at_decline: float | None
    recall_at_decline: float
    alert_rate_at_decline: float
    n_train: int
    n_train_fraud: int
    n_test: int
    n_test_fraud: int
    n_test_cards: int
    n_test_days: int

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def evaluate_scores(
    labels: np.ndarray | pd.Series,
    scores: np.ndarray | pd.Series,
    customer_id: np.ndarray | pd.Series,
    event_time: pd.Series,
    *,
    review_threshold: float,
    decline_threshold: float,
    k: int = 100,
    n_train: int = 0,
    n_train_fraud: int = 0,
) -> ModelMetrics:
    """All metrics of one scored test period. Raises UndefinedMetricError without both classes."""
    y = np.asarray(labels, dtype=int)
    review = threshold_stats(y, scores, review_threshold)
    decline = threshold_stats(y, scores, decline_threshold)
    daily_cp = daily_card_precision_at_k(scores, y, customer_id, event_time, k=k)
    return ModelMetrics(
        roc_auc=roc_auc(y, scores),
        average_precision=average_precision(y, scores),
        card_precision_at_k=float(daily_cp.mean()),
        best_card_precision_at_k=float(daily_card_precision_at_k(y, y, customer_id, event_time, k=k).mean()),
        k=k,
        review_threshold=review.threshold,
        precision_at_review=review.precision,
        recall_at_review=review.recall,
        alert_rate_at_review=review.alert_rate,
        decline_threshold=decline.threshold,
        precision_at_decline=decline.precision,
        recall_at_decline=decline.recall,
        alert_rate_at_decline=decline.alert_rate,
        n_train=n_train,
        n_train_fraud=n_train_fraud,
        n_test=int(y.size),
        n_test_fraud=int(y.sum()),
        n_test_cards=int(pd.Series(np.asarray(customer_id)).nunique()),
        n_test_days=len(daily_cp),
    )
