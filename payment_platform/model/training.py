"""Training of the fraud model on a labelled, featurised payment history.

Independent of which features exist: X is any numeric DataFrame whose columns are the feature
names, and the same column order must be given to the model at scoring time (the registry stores it).

The training period (see split.py) is cut once more in time: the earlier part fits the trees, the
latest days (the validation tail) choose the number of boosting iterations and the decision
thresholds on scores the model has not seen. The evaluated model is then refit on the whole training
period with that number of iterations and measured on the test period, which nothing above has seen:
those are the metrics recorded.

Then the production model is fitted once more, with the same iterations and thresholds, on every
labelled day (training, gap and test): the gap and test days are the freshest labelled data, the
closest to the traffic the model will score, and a model promoted without them would start stale.
Its quality is the evaluated model's, measured on days it had not seen; the registry records both
facts (what was measured on which days, and on which days the promoted model was fitted).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score
from threadpoolctl import threadpool_limits

from payment_platform.model.metrics import ModelMetrics, evaluate_scores
from payment_platform.model.split import DAY, FittedDays, InsufficientHistoryError, TimeSplit, as_utc, plan_time_split
from payment_platform.model.thresholds import DecisionThresholds, ThresholdPolicy, choose_thresholds

logger = logging.getLogger(__name__)

MAX_ITERATIONS = 300
# Frauds are ~1 % of payments. Up-weighting them makes the trees split on them, but a full
# n_genuine/n_fraud weight would push every score up; a capped weight, undone afterwards
# (FraudScoreModel), keeps the scores fraud probabilities.
MAX_FRAUD_WEIGHT = 10.0


class InsufficientLabelsError(ValueError):
    """A period needed for training or evaluation has no fraud (or no genuine) transaction."""


class FraudScoreModel:
    """Gradient-boosted trees trained with up-weighted frauds, returning true fraud probabilities.

    Weighting frauds by w multiplies the odds the trees learn by w; dividing the odds by w gives
    the probability back (prior correction), so scores stay comparable across retrainings whose
    weights differ. Exposes the scikit-learn `predict_proba` interface (columns: genuine, fraud).
    """

    def __init__(self, classifier: HistGradientBoostingClassifier, fraud_weight: float) -> None:
        self.classifier = classifier
        self.fraud_weight = fraud_weight

    @property
    def classes_(self) -> np.ndarray:
        return np.array([0, 1])

    @property
    def n_iterations(self) -> int:
        return int(self.classifier.n_iter_)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        fraud = self.correct(self.classifier.predict_proba(X)[:, 1])
        return np.column_stack([1.0 - fraud, fraud])

    def correct(self, weighted_fraud_proba: np.ndarray) -> np.ndarray:
        p = weighted_fraud_proba
        return p / (p + self.fraud_weight * (1.0 - p))


@dataclass(frozen=True)
class TrainingResult:
    """The production model, its thresholds, the split it was measured on, and the held-out metrics of
    the evaluated model (same iterations and thresholds, fitted on the training period only)."""

    model: FraudScoreModel
    feature_names: tuple[str, ...]
    thresholds: DecisionThresholds
    split: TimeSplit
    validation_start: pd.Timestamp
    metrics: ModelMetrics
    fitted_on: FittedDays
    evaluated_model: FraudScoreModel
    policy: ThresholdPolicy = field(default_factory=ThresholdPolicy)

    @property
    def review_threshold(self) -> float:
        return self.thresholds.review

    @property
    def decline_threshold(self) -> float:
        return self.thresholds.decline

    def registry_metadata(self, source: str) -> dict[str, Any]:
        """The metadata.json content for ModelRegistry.save; `source` names the training data."""
        return {
            "source": source,
            "review_threshold": self.thresholds.review,
            "decline_threshold": self.thresholds.decline,
            "metrics": self.metrics.as_dict(),
            "training_window": {
                **self.split.as_dict(),
                "validation_start": self.validation_start.isoformat(),
            },
            "fitted_on": self.fitted_on.as_dict(),
            "model": {
                "estimator": "HistGradientBoostingClassifier",
                "n_iterations": self.model.n_iterations,
                "fraud_weight": self.model.fraud_weight,
                "sklearn_version": sklearn.__version__,
            },
            "threshold_policy": {
                "decline_precision": self.policy.decline_precision,
                "min_decline_frauds": self.policy.min_decline_frauds,
                "review_alert_rate": self.policy.review_alert_rate,
            },
        }


def train_fraud_model(
    X: pd.DataFrame,
    y: pd.Series | np.ndarray,
    event_time: pd.Series,
    customer_id: pd.Series | np.ndarray,
    *,
    test_days: int = 14,
    gap_days: int = 7,
    validation_days: int | None = None,
    k: int = 100,
    seed: int = 0,
    policy: ThresholdPolicy | None = None,
    n_threads: int | None = 1,
    refit: bool = True,
) -> TrainingResult:
    """Train, choose thresholds, evaluate on the test period, then (`refit`) fit the production model on
    every row; rows are matched by position. Without `refit` the production model is the evaluated one.

    `validation_days` defaults to a quarter of the training period (at least one day).
    `n_threads` caps the OpenMP threads of the trees (None: all cores). One by default: on a
    machine shared with the scorer and the broker, OpenMP threads spin-waiting for a busy core
    made training ~10x slower than a single thread (measured on 2 cores).
    Raises InsufficientHistoryError (too few days) or InsufficientLabelsError (a period without
    frauds), each with a one-line reason.
    """
    policy = policy or ThresholdPolicy()
    features, labels, times, cards = _aligned_inputs(X, y, event_time, customer_id)
    split = plan_time_split(times, test_days=test_days, gap_days=gap_days)
    validation_start = _validation_start(split, validation_days)

    in_train = split.train_mask(times).to_numpy()
    in_test = split.test_mask(times).to_numpy()
    in_validation = in_train & (times >= validation_start).to_numpy()
    in_fit = in_train & ~in_validation
    for name, rows in (("fit", in_fit), ("validation", in_validation), ("test", in_test)):
        _require_both_classes(labels[rows], name)

    with threadpool_limits(limits=n_threads, user_api="openmp"):
        n_iterations, validation_scores = _fit_with_early_stopping(
            features[in_fit], labels[in_fit], features[in_validation], labels[in_validation], seed
        )
        evaluated = _fit(features[in_train], labels[in_train], n_iterations, seed)
        test_scores = evaluated.predict_proba(features[in_test])[:, 1]
        in_fitted = (times < split.test_end).to_numpy() if refit else in_train
        model = _fit(features[in_fitted], labels[in_fitted], n_iterations, seed) if refit else evaluated
    thresholds = choose_thresholds(labels[in_validation], validation_scores, policy)
    metrics = evaluate_scores(
        labels[in_test],
        test_scores,
        cards[in_test],
        times[in_test],
        review_threshold=thresholds.review,
        decline_threshold=thresholds.decline,
        k=k,
        n_train=int(in_train.sum()),
        n_train_fraud=int(labels[in_train].sum()),
    )
    fitted_on = FittedDays(
        start=split.train_start,
        end=split.test_end if refit else split.train_end,
        rows=int(in_fitted.sum()),
        frauds=int(labels[in_fitted].sum()),
    )
    logger.info(
        "%d iterations; test AUC %.3f AP %.3f CP@%d %.3f after training on %d rows; production model fitted on %d",
        n_iterations,
        metrics.roc_auc,
        metrics.average_precision,
        k,
        metrics.card_precision_at_k,
        metrics.n_train,
        fitted_on.rows,
    )
    return TrainingResult(
        model=model,
        feature_names=tuple(str(c) for c in X.columns),
        thresholds=thresholds,
        split=split,
        validation_start=validation_start,
        metrics=metrics,
        fitted_on=fitted_on,
        evaluated_model=evaluated,
        policy=policy,
    )


def _aligned_inputs(
    X: pd.DataFrame, y: pd.Series | np.ndarray, event_time: pd.Series, customer_id: pd.Series | np.ndarray
) -> tuple[np.ndarray, np.ndarray, pd.Series, np.ndarray]:
    """Positional numpy views of the inputs, checked for length, unique columns and 0/1 labels."""
    lengths = {len(X), len(y), len(event_time), len(customer_id)}
    if len(lengths) != 1:
        raise ValueError(f"X, y, event_time and customer_id differ in length: {sorted(lengths)}")
    if X.columns.has_duplicates or X.shape[1] == 0:
        raise ValueError("X needs at least one feature column and no duplicate column names")
    labels = np.asarray(y)
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (genuine) or 1 (fraud)")
    times = as_utc(pd.Series(event_time).reset_index(drop=True))
    return X.to_numpy(dtype=np.float64), labels.astype(int), times, np.asarray(customer_id)


def _validation_start(split: TimeSplit, validation_days: int | None) -> pd.Timestamp:
    days = validation_days if validation_days is not None else max(1, round(split.train_days / 4))
    if not 1 <= days < split.train_days:
        raise InsufficientHistoryError(
            f"validation tail of {days} days does not fit in a training period of {split.train_days} days"
        )
    return split.train_end - days * DAY


def _require_both_classes(labels: np.ndarray, period: str) -> None:
    frauds = int(labels.sum())
    if frauds == 0 or frauds == labels.size:
        raise InsufficientLabelsError(
            f"the {period} period has {frauds} frauds among {labels.size} transactions; need both classes"
        )


def _fraud_weight(labels: np.ndarray) -> float:
    frauds = int(labels.sum())
    return float(min(MAX_FRAUD_WEIGHT, max(1.0, (labels.size - frauds) / frauds)))


def _classifier(max_iter: int, seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        learning_rate=0.1,
        max_iter=max_iter,
        max_leaf_nodes=31,
        min_samples_leaf=40,
        l2_regularization=1.0,
        early_stopping=False,  # its validation split is random; ours is the time-ordered tail
        random_state=seed,
    )


def _fit(features: np.ndarray, labels: np.ndarray, max_iter: int, seed: int) -> FraudScoreModel:
    weight = _fraud_weight(labels)
    classifier = _classifier(max_iter, seed)
    classifier.fit(features, labels, sample_weight=np.where(labels == 1, weight, 1.0))
    return FraudScoreModel(classifier, weight)


def _fit_with_early_stopping(
    fit_features: np.ndarray,
    fit_labels: np.ndarray,
    validation_features: np.ndarray,
    validation_labels: np.ndarray,
    seed: int,
) -> tuple[int, np.ndarray]:
    """The iteration count with the best validation average precision, and the scores it gives."""
    model = _fit(fit_features, fit_labels, MAX_ITERATIONS, seed)
    best_iterations, best_precision, best_scores = 0, -1.0, np.empty(0)
    stages = model.classifier.staged_predict_proba(validation_features)
    for iteration, proba in enumerate(stages, start=1):
        precision = average_precision_score(validation_labels, proba[:, 1])
        if precision > best_precision:
            best_iterations, best_precision, best_scores = iteration, precision, proba[:, 1]
    return best_iterations, model.correct(best_scores)
