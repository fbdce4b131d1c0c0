"""Where training payments come from: the synthetic history's daily partitions, or the platform's own
scored and labelled payments in the score store.

It sits between `model` (which trains on any labelled payment frame and knows no storage) and `store`
(which knows the tables and the Parquet history, not the training plan); the Dagster assets and the
command line call it.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from payment_platform.features.definitions import DEFAULT_LABEL_DELAY_US
from payment_platform.model.pipeline import TrainingDataError, TrainingPlan, TrainingWindow, training_window
from payment_platform.store.database import connect_store
from payment_platform.store.history import HistoryStore
from payment_platform.store.tables import scored_transactions, transaction_labels


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
    """The platform's own scored payments of the window joined with their labels (unlabelled: genuine).

    Each keeps its label's `labelled_at`, so the terminal fraud shares are computed from when the labels
    really came, as the live path computed them; an unlabelled payment's genuine label is dated the
    standard delay after it (a genuine label changes no feature)."""
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
            lb.labelled_at,
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
    labelled_at = pd.to_datetime(payments["labelled_at"]).dt.tz_localize("UTC")
    standard = payments["event_time"] + pd.Timedelta(microseconds=DEFAULT_LABEL_DELAY_US)
    payments["labelled_at"] = labelled_at.fillna(standard)
    return payments
