"""The batch writer: one transaction per consumed batch, idempotent on `transaction_id`.

A replayed batch (after a crash between the write and the offset commit) is absorbed by the
unique key: the first stored row stands. Rows go to the database as one multi-row statement per
chunk, never as per-row ORM objects. On MySQL through PyMySQL the rows go straight to the driver's
`executemany` (still parameterised), because compiling and binding 13 parameters per row through
SQLAlchemy costs more than the database's own work.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite

from payment_platform.store.tables import scored_transactions, transaction_labels

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

    def write(self, scored: Sequence[dict[str, object]], labels: Sequence[LabelRow] = ()) -> int:
        """Write one batch in one transaction; the number of new scored rows."""
        inserted = 0
        with self.engine.begin() as conn:
            if scored and self._driver_batches:
                inserted = self._insert_many(conn, scored)
            elif scored:
                inserted = conn.execute(self._insert_scored, list(scored)).rowcount
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
    def _insert_many(conn: sa.Connection, scored: Sequence[dict[str, object]]) -> int:
        """INSERT IGNORE through the driver's `executemany` on the connection's own transaction; the rows
        inserted. Parameters stay parameters: PyMySQL escapes them and packs them into multi-row INSERTs."""
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(_INSERT_MANY, [tuple(row[column] for column in SCORED_COLUMNS) for row in scored])
            return int(cursor.rowcount)
        finally:
            cursor.close()
