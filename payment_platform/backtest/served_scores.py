"""The stored scores of a time range against the offline rescoring of the same rows, each by the model
that served it (`model_version`): the platform's promise that online = offline, checked on a user's own
history (`payment-platform verify`, `payment-platform backtest`).

The offline features come from the store alone: every stored payment the windows of the range reach
(`FEATURE_REACH_MS` before it) and every label the platform received for them (`label_events`, in arrival
order), through the offline driver. The live scorer's state was built from the same record, so any row
whose stored score differs is a row the live path got wrong.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa

from payment_platform.features import compute_features
from payment_platform.features.definitions import FEATURE_REACH_MS
from payment_platform.features.labels import LABEL_EVENT_COLUMNS
from payment_platform.model.registry import ModelRegistry, ModelRegistryError
from payment_platform.store.database import connect_store
from payment_platform.store.tables import label_events, scored_transactions
from payment_platform.stream.decisions import score_and_decide
from payment_platform.stream.model_source import bind

_STORED_COLUMNS = (
    "transaction_id",
    "customer_id",
    "terminal_id",
    "amount",
    "currency",
    "event_time",
    "score",
    "status",
    "model_version",
)


@dataclass(frozen=True)
class RescoredRows:
    """The stored rows of the range, in event-time order, with their offline score and status (NaN and ''
    where the serving model is not in the registry)."""

    rows: pd.DataFrame  # _STORED_COLUMNS, offline_score, offline_status
    missing_versions: tuple[str, ...]

    @property
    def differing(self) -> np.ndarray:
        """Rows whose stored score or status is not the offline one (rows of a missing model excluded)."""
        known = ~self.unverifiable
        score_differs = self.rows["score"].to_numpy() != self.rows["offline_score"].to_numpy()
        status_differs = self.rows["status"].to_numpy() != self.rows["offline_status"].to_numpy()
        return known & (score_differs | status_differs)

    @property
    def unverifiable(self) -> np.ndarray:
        return self.rows["model_version"].isin(self.missing_versions).to_numpy()

    def summary(self) -> str:
        versions = ", ".join(sorted(self.rows["model_version"].unique()))
        line = (
            f"{len(self.rows):,} stored rows (models {versions or 'none'}): "
            f"{int(self.differing.sum()):,} differ from the offline rescoring"
        )
        if self.missing_versions:
            line += f"; {int(self.unverifiable.sum()):,} not verifiable, their models are not in the registry: " + (
                ", ".join(self.missing_versions)
            )
        return line


def rescore_stored(db_url: str, registry: ModelRegistry, start: dt.datetime, end: dt.datetime) -> RescoredRows:
    """Every stored row with start <= event_time < end (naive UTC), rescored offline by its own model."""
    reach_start = start - dt.timedelta(milliseconds=FEATURE_REACH_MS)
    payments, labels = _read_record(db_url, reach_start, end)
    in_range = (payments["event_time"] >= pd.Timestamp(start, tz="UTC")).to_numpy()
    rows = payments.loc[in_range, list(_STORED_COLUMNS)].reset_index(drop=True)
    rows["offline_score"] = np.nan
    rows["offline_status"] = ""
    if rows.empty:
        return RescoredRows(rows, ())
    features = compute_features(payments, labels).to_numpy()[in_range]
    amount = rows["amount"].to_numpy(dtype=np.float64)
    missing = []
    for version, positions in rows.groupby("model_version").indices.items():
        try:
            model = bind(registry.load(str(version)))
        except ModelRegistryError:
            missing.append(str(version))
            continue
        score, decisions = score_and_decide(model, features[positions], amount[positions])
        rows.loc[positions, "offline_score"] = score
        rows.loc[positions, "offline_status"] = np.asarray(decisions.status, dtype=object)
    return RescoredRows(rows, tuple(sorted(missing)))


def stored_range(db_url: str) -> tuple[dt.datetime, dt.datetime] | None:
    """(first, last) event time of the stored rows (naive UTC); None when the store is empty."""
    t = scored_transactions.c
    engine = connect_store(db_url)
    try:
        with engine.connect() as conn:
            first, last = conn.execute(sa.select(sa.func.min(t.event_time), sa.func.max(t.event_time))).one()
    finally:
        engine.dispose()
    return None if first is None else (first, last)


def _read_record(db_url: str, start: dt.datetime, end: dt.datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stored payments with start <= event_time < end, in event-time order, and the label events of them."""
    t, le = scored_transactions.c, label_events.c
    in_range = sa.and_(t.event_time >= start, t.event_time < end)
    payments_query = sa.select(*(t[name] for name in _STORED_COLUMNS)).where(in_range).order_by(t.event_time, t.id)
    labels_query = (
        sa.select(le.transaction_id, le.is_fraud, le.labelled_at, le.id)
        .select_from(label_events.join(scored_transactions, t.transaction_id == le.transaction_id))
        .where(in_range)
    )
    engine = connect_store(db_url)
    try:
        with engine.connect() as conn:
            payments = pd.DataFrame(conn.execute(payments_query).all(), columns=list(_STORED_COLUMNS))
            labels = pd.DataFrame(conn.execute(labels_query).all(), columns=["transaction_id", "is_fraud", "at", "seq"])
    finally:
        engine.dispose()
    payments["amount"] = payments["amount"].astype(np.float64)
    payments["score"] = payments["score"].astype(np.float64)
    payments["event_time"] = pd.to_datetime(payments["event_time"]).dt.tz_localize("UTC")
    labels["is_fraud"] = labels["is_fraud"].astype(bool)
    labelled_at = pd.to_datetime(labels["at"])
    labels["labelled_us"] = (labelled_at - pd.Timestamp(0)) // pd.Timedelta(microseconds=1)
    return payments, labels[LABEL_EVENT_COLUMNS]
