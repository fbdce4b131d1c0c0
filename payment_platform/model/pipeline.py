"""From a window of labelled history to a saved candidate model, with its held-out evaluation.

The window reaches back as far as history goes, up to the plan's maximum. Its first `WARMUP_DAYS`
(counted from the first day that has data) only give the behavioural features their history: a row
before that has windows reaching back past the data, and is never trained on. The rows after it (the
modelled rows) are split by time: training, a gap as long as the label delay, test. Iterations and
thresholds are chosen on the training period, the test days measure them, then the production model is
refit on every modelled day (training.py). The registry records the measurement and the fitted days.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, fields

import pandas as pd
import pydantic

from payment_platform.features import compute_features
from payment_platform.features.definitions import WARMUP_DAYS
from payment_platform.model.metrics import ModelMetrics
from payment_platform.model.registry import ModelRegistry
from payment_platform.model.training import train_fraud_model


class TrainingDataError(ValueError):
    """The requested training data is missing or unusable."""


@dataclass(frozen=True)
class TrainingWindow:
    start: dt.date
    end: dt.date  # inclusive

    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]


class TrainingPlan(pydantic.BaseModel):
    """The training window and its split, defined once: the Dagster launchpad's `TrainingConfig` is this
    same model (it only adds Dagster's config machinery), so no field is copied from one to the other.
    Defaults suit the synthetic world's daily history."""

    model_config = pydantic.ConfigDict(frozen=True)

    source: str = pydantic.Field(
        default="synthetic",
        description="'synthetic': the transaction_history partitions; 'database': the platform's own labelled payments",
    )
    until: str | None = pydantic.Field(
        default=None,
        description="last day of the window, event time, YYYY-MM-DD; default: the latest history partition",
    )
    max_modelled_days: int = pydantic.Field(
        default=56,
        description=(
            "most days the model learns from (training, gap and test), after the features' warm-up of "
            f"{WARMUP_DAYS} days; less history gives fewer"
        ),
    )
    test_days: int = pydantic.Field(default=14, description="last days of the window, held out to measure the model")
    gap_days: int = pydantic.Field(default=7, description="days left out before the test days: the label delay")
    seed: int = pydantic.Field(default=0, description="seed of the model's training")

    @property
    def window_days(self) -> int:
        """Days of history the window may reach: the warm-up, then the modelled days."""
        return WARMUP_DAYS + self.max_modelled_days

    @property
    def min_modelled_days(self) -> int:
        """The fewest modelled days the split works with: test, gap and two training days (the earlier
        fits the trees, the later chooses iterations and thresholds)."""
        return self.test_days + self.gap_days + MIN_TRAINING_DAYS

    @property
    def last_day(self) -> dt.date | None:
        """`until` as a date (None: the latest day available)."""
        if self.until is None:
            return None
        try:
            return dt.date.fromisoformat(self.until)
        except ValueError:
            raise TrainingDataError(f"until must be a date YYYY-MM-DD, got {self.until!r}") from None


MIN_TRAINING_DAYS = 2


@dataclass(frozen=True)
class Candidate:
    """A trained model saved in the registry, not yet promoted."""

    version: str
    source: str
    window_start: dt.date
    window_end: dt.date
    modelled_start: dt.date  # first day after the warm-up: the first training row
    test_start: dt.date
    train_rows: int
    train_fraud_rate: float
    fitted_rows: int  # rows of the promoted model's fit: every modelled day
    review_threshold: float
    decline_threshold: float


@dataclass(frozen=True)
class MetricFloors:
    """What a model must reach on its test days before it may be promoted.

    AP and CP@k are floored relative to the test days themselves, so the same floors hold on a world of
    any size or fraud rate (a user's own history included): AP as a lift over the fraud rate (what a
    random ranking scores), CP@k as a share of the best CP@k any ranking could reach on those days."""

    roc_auc: float = 0.80
    average_precision_lift: float = 10.0
    card_precision_share: float = 0.20

    def failures(self, metrics: ModelMetrics) -> list[str]:
        fraud_rate = metrics.n_test_fraud / max(metrics.n_test, 1)
        required = {
            "roc_auc": self.roc_auc,
            "average_precision": self.average_precision_lift * fraud_rate,
            "card_precision_at_k": self.card_precision_share * metrics.best_card_precision_at_k,
        }
        return [
            f"{name} {getattr(metrics, name):.4f} < floor {floor:.4f}"
            for name, floor in required.items()
            if not getattr(metrics, name) >= floor
        ]

    def as_dict(self) -> dict[str, float]:
        return {f"floor_{k}": v for k, v in asdict(self).items()}


def training_window(until: dt.date, window_days: int) -> TrainingWindow:
    return TrainingWindow(until - dt.timedelta(days=window_days - 1), until)


def modelled_start(payments: pd.DataFrame) -> dt.date:
    """The first day whose payments have complete feature windows: WARMUP_DAYS after the first day with data."""
    first = pd.to_datetime(payments["event_time"], utc=True).min()
    return first.date() + dt.timedelta(days=WARMUP_DAYS)


def check_history_length(payments: pd.DataFrame, window: TrainingWindow, plan: TrainingPlan) -> dt.date:
    """The first modelled day; TrainingDataError in one line when the history is too short for the features'
    warm-up and the split."""
    first_data = pd.to_datetime(payments["event_time"], utc=True).min().date()
    start = modelled_start(payments)
    modelled = (window.end - start).days + 1
    if modelled < plan.min_modelled_days:
        raise TrainingDataError(
            f"history from {first_data} to {window.end} is too short: the feature windows need {WARMUP_DAYS} days "
            f"of warm-up, then {plan.min_modelled_days} days for training, gap and test; "
            f"{plan.min_modelled_days - max(modelled, 0)} more days of history needed"
        )
    return start


def train_candidate(
    payments: pd.DataFrame, window: TrainingWindow, plan: TrainingPlan, registry: ModelRegistry
) -> Candidate:
    """Train on the modelled rows of the window, measure on its test days, refit on all of them, and save
    the production model as a new registry version."""
    first_modelled = check_history_length(payments, window, plan)
    features = compute_features(payments)
    rows = (payments["event_time"] >= pd.Timestamp(first_modelled, tz="UTC")).to_numpy()
    modelled = payments[rows]
    result = train_fraud_model(
        features[rows].reset_index(drop=True),
        modelled["is_fraud"].to_numpy(),
        modelled["event_time"].reset_index(drop=True),
        modelled["customer_id"].to_numpy(),
        test_days=plan.test_days,
        gap_days=plan.gap_days,
        seed=plan.seed,
    )
    metadata = result.registry_metadata(plan.source)
    metadata["training_window"].update(
        {
            "window_start": str(window.start),
            "first_day_with_data": str(pd.to_datetime(payments["event_time"], utc=True).min().date()),
            "warmup_days": WARMUP_DAYS,
            "modelled_start": str(first_modelled),
        }
    )
    version = registry.save(result.model, list(result.feature_names), metadata)
    return Candidate(
        version=version,
        source=plan.source,
        window_start=window.start,
        window_end=window.end,
        modelled_start=first_modelled,
        test_start=result.split.test_start.date(),
        train_rows=result.metrics.n_train,
        train_fraud_rate=result.metrics.n_train_fraud / max(result.metrics.n_train, 1),
        fitted_rows=result.fitted_on.rows,
        review_threshold=result.review_threshold,
        decline_threshold=result.decline_threshold,
    )


def evaluate_candidate(candidate: Candidate, registry: ModelRegistry) -> ModelMetrics:
    """The held-out metrics recorded with the saved candidate, once its files verify and its model loads.

    They were measured on the test days by the same model fitted without them (the promoted one has seen
    them, so rescoring them with it would measure nothing)."""
    loaded = registry.load(candidate.version)
    recorded = loaded.metadata.get("metrics") or {}
    try:
        return ModelMetrics(**{name.name: recorded[name.name] for name in fields(ModelMetrics)})
    except KeyError as exc:
        raise TrainingDataError(f"model {candidate.version} records no test metric {exc}") from None
