"""When a payment counts as fraud for the terminal features: from its labels to spans of event time.

A transaction may be labelled more than once (a chargeback, then an investigator's correction). At any
event time the latest of its labels visible by then decides (`definitions.label_visible_s`): the one with
the later `labelled_at`, ties broken by arrival (`seq`). So each label is in force from its visible second
until the next label's, and a transaction is fraud during the spans of its fraud labels. Both drivers
build these spans here, from the label history when they have it, or from a single `is_fraud` label per
payment taken to have come the standard label delay after it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from payment_platform.features.definitions import DEFAULT_LABEL_DELAY_US, event_time_us, label_visible_s

FOREVER_S = 2**62  # the end of a span no later label closes

LABEL_EVENT_COLUMNS = ["transaction_id", "is_fraud", "labelled_us", "seq"]


class LabelEvent(NamedTuple):
    """One label as received: which transaction, the verdict, its labelled_at, its arrival order."""

    transaction_id: str
    is_fraud: bool
    labelled_us: int
    seq: int


def fraud_spans(events: list[LabelEvent]) -> list[tuple[int, int]]:
    """[start, end) seconds during which the transaction of these events (one transaction) is fraud."""
    ordered = sorted(events, key=lambda e: (e.labelled_us, e.seq))
    spans = []
    for this, after in zip(ordered, [*ordered[1:], None], strict=True):
        start = label_visible_s(this.labelled_us)
        end = FOREVER_S if after is None else label_visible_s(after.labelled_us)
        if this.is_fraud and end > start:
            spans.append((start, end))
    return spans


def label_events_of(payments: pd.DataFrame) -> pd.DataFrame:
    """The label history of a labelled payment frame without one: a label per payment with `is_fraud`
    (NaN: none), at its `labelled_at` if the frame has one, else the standard delay after the payment."""
    if "is_fraud" not in payments.columns:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in LABEL_EVENT_COLUMNS})
    known = payments["is_fraud"].notna().to_numpy()
    if "labelled_at" in payments.columns:
        labelled_us = event_time_us(payments["labelled_at"].where(known, payments["event_time"]))
    else:
        labelled_us = event_time_us(payments["event_time"]) + DEFAULT_LABEL_DELAY_US
    return pd.DataFrame(
        {
            "transaction_id": payments["transaction_id"].to_numpy()[known],
            "is_fraud": payments["is_fraud"].to_numpy()[known].astype(bool),
            "labelled_us": labelled_us[known],
            "seq": np.zeros(int(known.sum()), dtype=np.int64),
        }
    )


def fraud_span_frame(events: pd.DataFrame) -> pd.DataFrame:
    """`fraud_spans` of every transaction of a label history (LABEL_EVENT_COLUMNS), vectorised:
    transaction_id, start_s, end_s, one row per span."""
    if events.empty:
        return pd.DataFrame({"transaction_id": [], "start_s": [], "end_s": []})
    ordered = events.sort_values(["transaction_id", "labelled_us", "seq"], kind="stable")
    tx = ordered["transaction_id"].to_numpy()
    start = label_visible_s(ordered["labelled_us"].to_numpy(dtype=np.int64))
    same_next = np.r_[tx[1:] == tx[:-1], False]
    end = np.where(same_next, np.r_[start[1:], 0], FOREVER_S)
    keep = ordered["is_fraud"].to_numpy(dtype=bool) & (end > start)
    return pd.DataFrame({"transaction_id": tx[keep], "start_s": start[keep], "end_s": end[keep]})
