"""The fraud model: time split, training with decision thresholds, detection metrics, versioned registry.

Domain code only; the Dagster assets call into it.
"""

from payment_platform.model.metrics import (
    ModelMetrics,
    ThresholdStats,
    UndefinedMetricError,
    average_precision,
    card_precision_at_k,
    daily_card_precision_at_k,
    evaluate_scores,
    roc_auc,
    threshold_stats,
)
from payment_platform.model.registry import (
    InvalidModelVersionError,
    LoadedModel,
    ModelIntegrityError,
    ModelNotFoundError,
    ModelRegistry,
    ModelRegistryError,
    ProductionPointer,
)
from payment_platform.model.split import InsufficientHistoryError, TimeSplit, plan_time_split, time_split
from payment_platform.model.thresholds import DecisionThresholds, ThresholdPolicy, choose_thresholds
from payment_platform.model.training import FraudScoreModel, InsufficientLabelsError, TrainingResult, train_fraud_model

__all__ = [
    "DecisionThresholds",
    "FraudScoreModel",
    "InsufficientHistoryError",
    "InsufficientLabelsError",
    "InvalidModelVersionError",
    "LoadedModel",
    "ModelIntegrityError",
    "ModelMetrics",
    "ModelNotFoundError",
    "ModelRegistry",
    "ModelRegistryError",
    "ProductionPointer",
    "ThresholdPolicy",
    "ThresholdStats",
    "TimeSplit",
    "TrainingResult",
    "UndefinedMetricError",
    "average_precision",
    "card_precision_at_k",
    "choose_thresholds",
    "daily_card_precision_at_k",
    "evaluate_scores",
    "plan_time_split",
    "roc_auc",
    "threshold_stats",
    "time_split",
    "train_fraud_model",
]
