"""Parity of the two drivers on a whole payment frame: what the live scorer would compute, row by row,
against what training computes. Used by the tests and by the asset check on every new model's data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from payment_platform.features.definitions import FEATURE_NAMES, TERMINAL_LABEL_DELAY_MS, event_time_ms
from payment_platform.features.offline import compute_features
from payment_platform.features.online import FeatureState

# Relative and absolute tolerance of a feature value: sums are accumulated in different orders.
RTOL, ATOL = 1e-6, 1e-9


def stream_online(payments: pd.DataFrame, batch_size: int = 2_000) -> np.ndarray:
    """The online features of `payments` (row order = stream order), fed batch by batch as the scorer
    does; before each batch, the labels (`is_fraud`) of payments at least the label delay older than the
    batch's newest payment, as the label feed would have delivered them by then."""
    t_ms = event_time_ms(payments["event_time"])
    ids = payments["transaction_id"].to_numpy()
    labels = payments["is_fraud"].fillna(0).to_numpy().astype(bool) if "is_fraud" in payments else None
    by_due = np.argsort(t_ms, kind="stable")
    due = t_ms[by_due] + TERMINAL_LABEL_DELAY_MS
    state = FeatureState()
    delivered = 0
    parts = []
    for start in range(0, len(payments), batch_size):
        stop = start + batch_size
        if labels is not None:
            known = max(delivered, int(np.searchsorted(due, t_ms[start:stop].max(), "right")))
            fresh = by_due[delivered:known]
            state.add_labels(ids[fresh].tolist(), labels[fresh].tolist())
            delivered = known
        parts.append(state.featurise(payments.iloc[start:stop]))
    return np.vstack(parts) if parts else np.empty((0, len(FEATURE_NAMES)))


@dataclass(frozen=True)
class ParityReport:
    rows: int
    mismatched_rows: int
    worst_feature: str | None
    max_abs_difference: float

    @property
    def passed(self) -> bool:
        return self.mismatched_rows == 0


def compare_drivers(payments: pd.DataFrame, batch_size: int = 2_000) -> ParityReport:
    """Every row's online vector against its offline one."""
    offline = compute_features(payments).to_numpy()
    online = stream_online(payments, batch_size)
    close = np.isclose(online, offline, rtol=RTOL, atol=ATOL)
    difference = np.abs(online - offline)
    worst = int(np.argmax(difference.max(axis=0))) if difference.size else 0
    mismatched = int((~close.all(axis=1)).sum())
    return ParityReport(
        rows=len(payments),
        mismatched_rows=mismatched,
        worst_feature=FEATURE_NAMES[worst] if mismatched else None,
        max_abs_difference=float(difference.max()) if difference.size else 0.0,
    )
