"""What the scorer writes, as it produces it: scored batches column by column, labels, progress."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from itertools import repeat

import numpy as np

from payment_platform.store.bulk_load import tsv_columns, tsv_text_column

SCORED_COLUMNS = (
    "transaction_id",
    "customer_id",
    "terminal_id",
    "amount",
    "currency",
    "event_time",
    "score",
    "status",
    "reasons",
    "model_version",
    "scored_at",
    "kafka_partition",
    "kafka_offset",
    "shard",
)
LABEL_EVENT_COLUMNS = ("transaction_id", "is_fraud", "labelled_at", "source", "received_at")


# A scored payment as a row: values in SCORED_COLUMNS order.
ScoredRow = list[object]


@dataclass(frozen=True)
class ScoredBatch:
    """One batch of scored payments, column by column, as the scorer produces it.

    Columns keep the per-row Python work of a 5,000-row batch out of the write: the bulk file is built
    column-wise (`tsv`), and rows are made only for the INSERT fallbacks (`rows`)."""

    transaction_id: list[str]
    customer_id: list[str]
    terminal_id: list[str]
    amount: np.ndarray  # float64, rounded to cents
    currency: list[str]
    event_us: np.ndarray  # int64 epoch microseconds UTC
    score: np.ndarray  # float64
    status: list[str]
    reasons: list[str]
    model_version: str
    kafka_partition: np.ndarray  # int64
    kafka_offset: np.ndarray  # int64
    shard: np.ndarray  # int64: the card-keyed partition scored from
    scored_at: dt.datetime | None = None  # stamped when the write begins

    def __len__(self) -> int:
        return len(self.transaction_id)

    @classmethod
    def empty(cls) -> ScoredBatch:
        none = np.empty(0, dtype=np.int64)
        return cls([], [], [], none.astype(np.float64), [], none, none.astype(np.float64), [], [], "", none, none, none)

    def rows(self) -> list[ScoredRow]:
        """The batch as rows in SCORED_COLUMNS order."""
        return [
            list(row)
            for row in zip(
                self.transaction_id,
                self.customer_id,
                self.terminal_id,
                self.amount.tolist(),
                self.currency,
                us_to_datetimes(self.event_us),
                self.score.tolist(),
                self.status,
                self.reasons,
                repeat(self.model_version),
                repeat(self.scored_at),
                self.kafka_partition.tolist(),
                self.kafka_offset.tolist(),
                self.shard.tolist(),
            )
        ]

    def tsv(self) -> bytes:
        """The batch as LOAD DATA's text format, SCORED_COLUMNS order (what `bulk_load.tsv` makes of `rows()`)."""
        assert self.scored_at is not None, "stamp scored_at before writing"
        n = len(self)
        event_time = np.datetime_as_string(self.event_us.astype("datetime64[us]")).tolist()  # ISO, no zone
        return tsv_columns(
            [
                tsv_text_column(self.transaction_id),
                tsv_text_column(self.customer_id),
                tsv_text_column(self.terminal_id),
                map(repr, self.amount.tolist()),
                tsv_text_column(self.currency),
                event_time,
                map(repr, self.score.tolist()),
                tsv_text_column(self.status),
                tsv_text_column(self.reasons),
                repeat(tsv_text_column([self.model_version])[0], n),
                repeat(self.scored_at.isoformat(" "), n),
                map(str, self.kafka_partition.tolist()),
                map(str, self.kafka_offset.tolist()),
                map(str, self.shard.tolist()),
            ]
        )


@dataclass(frozen=True)
class LabelRow:
    transaction_id: str
    is_fraud: bool
    labelled_at: dt.datetime
    source: str | None = None


# How far a partition of the group's streams is written: (topic, partition) → epoch microseconds.
Progress = dict[tuple[str, int], int]


def us_to_datetimes(epoch_us: np.ndarray) -> list[dt.datetime]:
    """Naive UTC datetimes (what DATETIME(6) columns hold) from epoch microseconds."""
    return epoch_us.astype("datetime64[us]").astype(object).tolist()
