"""Reads back what the scorer's feature state is made of, so a restarted scorer can rebuild it.

Every payment the scorer ever featurised is a row of `scored_transactions` (offsets are committed only
after the write), and every label it fed its state is a row of `transaction_labels`. The state of an
uninterrupted scorer is therefore a function of these rows: the payments of its partitions within reach
of every window, in the order they were consumed (auto-increment id order, which within one partition is
offset order), with their latest labels, plus the labels still waiting for their payment.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from payment_platform.store.tables import scored_transactions, transaction_labels


@dataclass(frozen=True)
class FeatureHistory:
    """Payments (transaction_id, customer_id, terminal_id, amount, event_time UTC), in consumption
    order, and labels (transaction_id, is_fraud) to feed before them."""

    payments: pd.DataFrame
    labels: pd.DataFrame


def read_feature_history(engine: sa.Engine, partitions: Collection[int], reach: dt.timedelta) -> FeatureHistory:
    """The stored payments of `partitions` no older than `reach` before the newest stored event time,
    and the labels of those payments and of payments not scored yet."""
    t, lb = scored_transactions.c, transaction_labels.c
    with engine.connect() as conn:
        newest = conn.execute(sa.select(sa.func.max(t.event_time))).scalar()
        if newest is None or not partitions:
            return FeatureHistory(_empty_payments(), pd.DataFrame({"transaction_id": [], "is_fraud": []}))
        since = newest - reach
        payments = pd.DataFrame(
            conn.execute(
                sa.select(t.transaction_id, t.customer_id, t.terminal_id, t.amount, t.event_time, lb.is_fraud)
                .select_from(scored_transactions.outerjoin(transaction_labels, lb.transaction_id == t.transaction_id))
                .where(t.event_time > since, t.kafka_partition.in_(sorted(partitions)))
                .order_by(t.id)
            ).all(),
            columns=["transaction_id", "customer_id", "terminal_id", "amount", "event_time", "is_fraud"],
        )
        waiting = pd.DataFrame(
            conn.execute(
                sa.select(lb.transaction_id, lb.is_fraud)
                .select_from(transaction_labels.outerjoin(scored_transactions, lb.transaction_id == t.transaction_id))
                .where(t.id.is_(None), lb.labelled_at > since)
            ).all(),
            columns=["transaction_id", "is_fraud"],
        )
    labelled = payments.loc[payments["is_fraud"].notna(), ["transaction_id", "is_fraud"]]
    labels = pd.concat([labelled, waiting], ignore_index=True)
    labels["is_fraud"] = labels["is_fraud"].astype(bool)
    payments = payments.drop(columns="is_fraud")
    payments["amount"] = payments["amount"].astype(float)
    payments["event_time"] = pd.to_datetime(payments["event_time"]).dt.tz_localize("UTC")
    return FeatureHistory(payments, labels)


def _empty_payments() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "transaction_id": pd.Series(dtype=object),
            "customer_id": pd.Series(dtype=object),
            "terminal_id": pd.Series(dtype=object),
            "amount": pd.Series(dtype=float),
            "event_time": pd.Series(dtype="datetime64[us, UTC]"),
        }
    )
