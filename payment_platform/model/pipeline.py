"""From a window of labelled history to a saved candidate model, and its independent evaluation.

The window is split by time: the first `warmup_days` only give the behavioural features their
history, the model trains on the following days, then a gap as long as the label delay, then the
test days. Evaluation reloads the saved artifact from the registry (checksum verified) and scores
the test days again, so the metrics describe exactly what would be promoted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pydantic
import sqlalchemy as sa

from payment_platform.features import compute_features
from payment_platform.model.metrics import ModelMetrics, evaluate_scores
from payment_platform.model.registry import ModelRegistry
from payment_platform.model.training import train_fraud_model
from payment_platform.store.history import HistoryStore


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
    window_days: int = pydantic.Field(default=72, description="days of history in the window, warm-up included")
    warmup_days: int = pydantic.Field(
        default=14, description="first days of the window, used only to give behavioural features their history"
    )
    test_days: int = pydantic.Field(default=14, description="last days of the window, held out to measure the model")
    gap_days: int = pydantic.Field(default=7, description="days left out before the test days: the label delay")
    seed: int = pydantic.Field(default=0, description="seed of the model's training")

    @property
    def last_day(self) -> dt.date | None:
        """`until` as a date (None: the latest day available)."""
        if self.until is None:
            return None
        try:
            return dt.date.fromisoformat(self.until)
        except ValueError:
            raise TrainingDataError(f"until must be a date YYYY-MM-DD, got {self.until!r}") from None


@dataclass(frozen=True)
class Candidate:
    """A trained model saved in the registry, not yet promoted."""

    version: str
    source: str
    window_start: dt.date
    window_end: dt.date
    test_start: dt.date
    train_rows: int
    train_fraud_rate: float
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


def missing_history_days(history: HistoryStore, until: dt.date, window_days: int) -> list[dt.date]:
    """Days of the window ending `until` that have no history partition yet: what to materialize first."""
    return [day for day in training_window(until, window_days).days() if not history.path(day).exists()]


def load_training_payments(
    plan: TrainingPlan, history: HistoryStore, db_url: str
) -> tuple[pd.DataFrame, TrainingWindow]:
    """Labelled payments of the plan's window, in event-time order, and the window itself."""
    if plan.source == "synthetic":
        days = history.days()
        if not days:
            raise TrainingDataError("no transaction_history partitions yet: materialize the history first")
        window = training_window(plan.last_day or days[-1], plan.window_days)
        return history.read(window.start, window.end), window
    if plan.source == "database":
        last_day = plan.last_day
        if last_day is None:
            raise TrainingDataError("training from the database needs --until (the last day of the window)")
        window = training_window(last_day, plan.window_days)
        return read_labelled_payments(db_url, window), window
    raise TrainingDataError(f"unknown training source {plan.source!r}: use 'synthetic' or 'database'")


def read_labelled_payments(db_url: str, window: TrainingWindow) -> pd.DataFrame:
    """The platform's own scored payments of the window joined with their labels (unlabelled: genuine)."""
    from payment_platform.store.database import connect_store
    from payment_platform.store.tables import scored_transactions, transaction_labels

    t, lb = scored_transactions.c, transaction_labels.c
    start = dt.datetime.combine(window.start, dt.time())
    end = dt.datetime.combine(window.end + dt.timedelta(days=1), dt.time())
    query = (
        sa.select(
            t.transaction_id,
            t.customer_id,
            t.terminal_id,
            t.amount,
            t.currency,
            t.event_time,
            sa.func.coalesce(lb.is_fraud, False).label("is_fraud"),
        )
        .select_from(scored_transactions.outerjoin(transaction_labels, lb.transaction_id == t.transaction_id))
        .where(t.event_time >= start, t.event_time < end)
        .order_by(t.event_time, t.id)
    )
    engine = connect_store(db_url)
    try:
        with engine.connect() as conn:
            payments = pd.DataFrame(conn.execute(query).all(), columns=list(query.selected_columns.keys()))
    finally:
        engine.dispose()
    if payments.empty:
        raise TrainingDataError(f"no scored payments between {window.start} and {window.end} in the score store")
    payments["amount"] = payments["amount"].astype(float)
    payments["event_time"] = pd.to_datetime(payments["event_time"]).dt.tz_localize("UTC")
    payments["is_fraud"] = payments["is_fraud"].astype("int8")
    return payments


def _modelled_rows(payments: pd.DataFrame, window: TrainingWindow, warmup_days: int) -> np.ndarray:
    """Rows after the warm-up days: their behavioural features have history behind them."""
    first = pd.Timestamp(window.start + dt.timedelta(days=warmup_days), tz="UTC")
    return (payments["event_time"] >= first).to_numpy()


def train_candidate(
    payments: pd.DataFrame, window: TrainingWindow, plan: TrainingPlan, registry: ModelRegistry
) -> Candidate:
    """Train on the window (time split with a gap) and save the model as a new registry version."""
    features = compute_features(payments)
    rows = _modelled_rows(payments, window, plan.warmup_days)
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
    metadata["training_window"].update({"window_start": str(window.start), "warmup_days": plan.warmup_days})
    version = registry.save(result.model, list(result.feature_names), metadata)
    train_mask = result.split.train_mask(modelled["event_time"]).to_numpy()
    return Candidate(
        version=version,
        source=plan.source,
        window_start=window.start,
        window_end=window.end,
        test_start=result.split.test_start.date(),
        train_rows=int(train_mask.sum()),
        train_fraud_rate=float(modelled["is_fraud"].to_numpy()[train_mask].mean()),
        review_threshold=result.review_threshold,
        decline_threshold=result.decline_threshold,
    )


def evaluate_candidate(
    candidate: Candidate, history: HistoryStore, db_url: str, registry: ModelRegistry
) -> ModelMetrics:
    """Metrics of the saved artifact on the candidate's test days, from its own training window."""
    window = TrainingWindow(candidate.window_start, candidate.window_end)
    if candidate.source == "synthetic":
        payments = history.read(window.start, window.end)
    else:
        payments = read_labelled_payments(db_url, window)
    loaded = registry.load(candidate.version)
    features = compute_features(payments)[list(loaded.feature_names)]
    test = (payments["event_time"] >= pd.Timestamp(candidate.test_start, tz="UTC")).to_numpy()
    scores = loaded.predict_proba(features[test].to_numpy())
    return evaluate_scores(
        payments["is_fraud"].to_numpy()[test],
        scores,
        payments["customer_id"].to_numpy()[test],
        payments["event_time"][test].reset_index(drop=True),
        review_threshold=loaded.review_threshold,
        decline_threshold=loaded.decline_threshold,
        n_train=candidate.train_rows,
        n_train_fraud=round(candidate.train_rows * candidate.train_fraud_rate),
    )
