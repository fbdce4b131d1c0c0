"""The batch writer: one transaction per consumed batch, idempotent on `transaction_id`.

A replayed batch (after a crash between the write and the offset commit) is absorbed by the
unique key: the first stored row stands. Rows go to the database as one multi-row statement per
chunk, never as per-row ORM objects. On MySQL through PyMySQL the rows go straight to the driver's
`executemany` (still parameterised), because compiling and binding 13 parameters per row through
SQLAlchemy costs more than the database's own work.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite

from payment_platform.store.bulk_load import (
    LOCAL_INFILE_REFUSED,
    load_data_statement,
    spool_path,
    tsv,
    tsv_columns,
    tsv_text_column,
)
from payment_platform.store.tables import scored_transactions, transaction_labels

logger = logging.getLogger(__name__)

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
)
_INSERT_MANY = (
    f"INSERT IGNORE INTO {scored_transactions.name} ({', '.join(SCORED_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(SCORED_COLUMNS))})"
)


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
    scored_at: dt.datetime | None = None  # stamped when the write begins

    def __len__(self) -> int:
        return len(self.transaction_id)

    @classmethod
    def empty(cls) -> ScoredBatch:
        none = np.empty(0, dtype=np.int64)
        return cls([], [], [], none.astype(np.float64), [], none, none.astype(np.float64), [], [], "", none, none)

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
            ]
        )


@dataclass(frozen=True)
class LabelRow:
    transaction_id: str
    is_fraud: bool
    labelled_at: dt.datetime


def us_to_datetimes(epoch_us: np.ndarray) -> list[dt.datetime]:
    """Naive UTC datetimes (what DATETIME(6) columns hold) from epoch microseconds."""
    return epoch_us.astype("datetime64[us]").astype(object).tolist()


class ScoreWriter:
    """Writes scored payments and labels to the score store."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        dialect = engine.dialect.name
        self._driver_batches = dialect in ("mysql", "mariadb") and engine.dialect.driver == "pymysql"
        self._spool: Path | None = spool_path() if self._driver_batches else None
        if self._spool is not None and not self._load_data_works():
            self._close_spool()
        if dialect in ("mysql", "mariadb"):
            self._insert_scored = mysql.insert(scored_transactions).prefix_with("IGNORE")
            upsert = mysql.insert(transaction_labels)
            newer = upsert.inserted.labelled_at >= transaction_labels.c.labelled_at
            # MySQL applies assignments left to right: decide is_fraud before moving labelled_at.
            self._upsert_label = upsert.on_duplicate_key_update(
                [
                    (
                        "is_fraud",
                        sa.case((newer, upsert.inserted.is_fraud), else_=transaction_labels.c.is_fraud),
                    ),
                    (
                        "labelled_at",
                        sa.func.greatest(transaction_labels.c.labelled_at, upsert.inserted.labelled_at),
                    ),
                ]
            )
        elif dialect == "sqlite":
            self._insert_scored = sqlite.insert(scored_transactions).on_conflict_do_nothing(
                index_elements=["transaction_id"]
            )
            upsert_sqlite = sqlite.insert(transaction_labels)
            self._upsert_label = upsert_sqlite.on_conflict_do_update(
                index_elements=["transaction_id"],
                set_={
                    "is_fraud": upsert_sqlite.excluded.is_fraud,
                    "labelled_at": upsert_sqlite.excluded.labelled_at,
                },
                where=upsert_sqlite.excluded.labelled_at >= transaction_labels.c.labelled_at,
            )
        else:
            raise ValueError(f"unsupported score store dialect: {dialect}")

    def write(
        self, scored: ScoredBatch | Sequence[ScoredRow | dict[str, object]], labels: Sequence[LabelRow] = ()
    ) -> int:
        """Write one batch in one transaction; the number of new scored rows. Scored payments come as the
        scorer's ScoredBatch, as lists in SCORED_COLUMNS order, or as dicts by column name."""
        inserted = 0
        with self.engine.begin() as conn:
            if len(scored) and self._spool is not None:
                inserted = self._load_data(conn, scored)
                scored = ()
            rows = _as_rows(scored)
            if rows and self._driver_batches:
                inserted = self._insert_many(conn, rows)
            elif rows:
                inserted = conn.execute(
                    self._insert_scored, [dict(zip(SCORED_COLUMNS, row, strict=True)) for row in rows]
                ).rowcount
            if labels:
                conn.execute(
                    self._upsert_label,
                    [
                        {
                            "transaction_id": lb.transaction_id,
                            "is_fraud": lb.is_fraud,
                            "labelled_at": lb.labelled_at,
                        }
                        for lb in labels
                    ],
                )
        return max(inserted, 0)

    @staticmethod
    def _insert_many(conn: sa.Connection, rows: Sequence[ScoredRow]) -> int:
        """INSERT IGNORE through the driver's `executemany` on the connection's own transaction; the rows
        inserted. Parameters stay parameters: PyMySQL escapes them and packs them into multi-row INSERTs."""
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(_INSERT_MANY, [tuple(row) for row in rows])
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def _load_data(self, conn: sa.Connection, scored: ScoredBatch | Sequence[ScoredRow | dict[str, object]]) -> int:
        """LOAD DATA LOCAL INFILE of the batch on the connection's own transaction; falls back to
        `executemany` for good when the server refuses it."""
        assert self._spool is not None
        self._spool.write_bytes(scored.tsv() if isinstance(scored, ScoredBatch) else tsv(_as_rows(scored)))
        cursor = conn.connection.cursor()
        try:
            cursor.execute(load_data_statement(scored_transactions.name, SCORED_COLUMNS, self._spool))
            return int(cursor.rowcount)
        except Exception as exc:
            if getattr(exc, "args", (None,))[0] not in LOCAL_INFILE_REFUSED:
                raise
            logger.warning("the database refuses LOAD DATA LOCAL INFILE (%s): writing with INSERT instead", exc)
            self._close_spool()
            return self._insert_many(conn, _as_rows(scored))
        finally:
            cursor.close()

    def _load_data_works(self) -> bool:
        """Try LOAD DATA with an empty file: both the client and the server must allow it."""
        assert self._spool is not None
        self._spool.write_bytes(b"")
        try:
            with self.engine.begin() as conn:
                cursor = conn.connection.cursor()
                try:
                    cursor.execute(load_data_statement(scored_transactions.name, SCORED_COLUMNS, self._spool))
                finally:
                    cursor.close()
        except Exception as exc:  # noqa: BLE001 - any refusal means: use INSERT
            logger.info("LOAD DATA LOCAL INFILE not available (%s): writing with INSERT", str(exc).splitlines()[0])
            return False
        return True

    def _close_spool(self) -> None:
        if self._spool is not None:
            self._spool.unlink(missing_ok=True)
            self._spool = None

    def __del__(self) -> None:
        self._close_spool()


def _as_rows(scored: ScoredBatch | Sequence[ScoredRow | dict[str, object]]) -> list[ScoredRow]:
    if isinstance(scored, ScoredBatch):
        return scored.rows()
    return [[row[c] for c in SCORED_COLUMNS] if isinstance(row, dict) else row for row in scored]
