"""The batch writer: one transaction per scored batch, idempotent on `transaction_id`.

A replayed batch (after a crash between the write and the offset commit) is absorbed by the unique key:
the first stored row stands. The same transaction records the batch's labels (their history in
`label_events`, the latest per transaction in `transaction_labels`), how far the scorer's partitions are
now written (`stream_progress`) and the scorer's health (`scorer_status`), so that none of them can claim
more than the rows do. Rows go to the database as one multi-row statement per chunk, never as per-row ORM
objects; on MySQL through PyMySQL as one `LOAD DATA` file (`bulk_load.py`), or the driver's `executemany`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from itertools import repeat
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite

from payment_platform.store.bulk_load import (
    LOCAL_INFILE_REFUSED,
    load_data_statement,
    remove_spool,
    spool_path,
    tsv,
    tsv_columns,
    tsv_field,
    tsv_text_column,
)
from payment_platform.store.rows import (
    LABEL_EVENT_COLUMNS,
    SCORED_COLUMNS,
    LabelRow,
    Progress,
    ScoredBatch,
    ScoredRow,
)
from payment_platform.store.tables import (
    label_events,
    scored_transactions,
    scorer_status,
    stream_progress,
    transaction_labels,
)

logger = logging.getLogger(__name__)

_INSERT_MANY = (
    f"INSERT IGNORE INTO {scored_transactions.name} ({', '.join(SCORED_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(SCORED_COLUMNS))})"
)


class ScoreWriter:
    """Writes scored payments and labels to the score store."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        dialect = engine.dialect.name
        self._driver_batches = dialect in ("mysql", "mariadb") and engine.dialect.driver == "pymysql"
        self._spool: Path | None = spool_path() if self._driver_batches else None
        if self._spool is not None and not self._load_data_works():
            self._close_spool()
        # The statements of either dialect: MySQL's INSERT IGNORE / ON DUPLICATE KEY, SQLite's ON CONFLICT.
        self._insert_scored: sa.Insert
        self._insert_label_event: sa.Insert
        self._refresh_latest: sa.Insert
        self._upsert_progress: sa.Insert
        self._upsert_status: sa.Insert
        if dialect in ("mysql", "mariadb"):
            self._insert_scored = mysql.insert(scored_transactions).prefix_with("IGNORE")
            self._insert_label_event = mysql.insert(label_events).prefix_with("IGNORE")
            latest = mysql.insert(transaction_labels).from_select(
                ["transaction_id", "is_fraud", "labelled_at"], _latest_labels()
            )
            self._refresh_latest = latest.on_duplicate_key_update(
                is_fraud=latest.inserted.is_fraud, labelled_at=latest.inserted.labelled_at
            )
            progress = mysql.insert(stream_progress)
            self._upsert_progress = progress.on_duplicate_key_update(
                progress_us=sa.func.greatest(stream_progress.c.progress_us, progress.inserted.progress_us),
                updated_at=progress.inserted.updated_at,
            )
            status = mysql.insert(scorer_status)
            self._upsert_status = status.on_duplicate_key_update(
                {c.name: status.inserted[c.name] for c in scorer_status.c if c.name != "scorer_id"}
            )
        elif dialect == "sqlite":
            self._insert_scored = sqlite.insert(scored_transactions).on_conflict_do_nothing(
                index_elements=["transaction_id"]
            )
            self._insert_label_event = sqlite.insert(label_events).on_conflict_do_nothing()
            latest_sqlite = sqlite.insert(transaction_labels).from_select(
                ["transaction_id", "is_fraud", "labelled_at"], _latest_labels()
            )
            self._refresh_latest = latest_sqlite.on_conflict_do_update(
                index_elements=["transaction_id"],
                set_={"is_fraud": latest_sqlite.excluded.is_fraud, "labelled_at": latest_sqlite.excluded.labelled_at},
            )
            progress_sqlite = sqlite.insert(stream_progress)
            self._upsert_progress = progress_sqlite.on_conflict_do_update(
                index_elements=["consumer_group", "topic", "partition"],
                set_={
                    "progress_us": sa.func.max(stream_progress.c.progress_us, progress_sqlite.excluded.progress_us),
                    "updated_at": progress_sqlite.excluded.updated_at,
                },
            )
            status_sqlite = sqlite.insert(scorer_status)
            self._upsert_status = status_sqlite.on_conflict_do_update(
                index_elements=["scorer_id"],
                set_={c.name: status_sqlite.excluded[c.name] for c in scorer_status.c if c.name != "scorer_id"},
            )
        else:
            raise ValueError(f"unsupported score store dialect: {dialect}")

    def write(
        self,
        scored: ScoredBatch | Sequence[ScoredRow | dict[str, object]],
        labels: Sequence[LabelRow] = (),
        *,
        progress: Progress | None = None,
        consumer_group: str = "",
        status: dict[str, object] | None = None,
    ) -> int:
        """Write one batch in one transaction; the number of new scored rows. Scored payments come as the
        scorer's ScoredBatch, as lists in SCORED_COLUMNS order, or as dicts by column name."""
        inserted = 0
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
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
                self._write_labels(conn, labels, now)
            if progress:
                conn.execute(
                    self._upsert_progress,
                    [
                        {
                            "consumer_group": consumer_group,
                            "topic": topic,
                            "partition": partition,
                            "progress_us": us,
                            "updated_at": now,
                        }
                        for (topic, partition), us in progress.items()
                    ],
                )
            if status:
                conn.execute(self._upsert_status, [{**status, "updated_at": now}])
        return max(inserted, 0)

    def _write_labels(self, conn: sa.Connection, labels: Sequence[LabelRow], now: dt.datetime) -> None:
        """Add the labels to the history (a label received again is one event), then make each labelled
        transaction's row of `transaction_labels` its latest label: the one with the latest labelled_at,
        ties to the later arrival (the larger history id). Deriving the row from the history makes the two
        agree whatever order labels came in."""
        events = [(lb.transaction_id, lb.is_fraud, lb.labelled_at, lb.source, now) for lb in labels]
        if self._spool is not None:
            self._spool.write_bytes(
                tsv_columns(
                    [
                        tsv_text_column([lb.transaction_id for lb in labels]),
                        ["1" if lb.is_fraud else "0" for lb in labels],
                        [lb.labelled_at.isoformat(" ") for lb in labels],
                        [tsv_field(lb.source) for lb in labels],
                        repeat(now.isoformat(" "), len(labels)),
                    ]
                )
            )
            cursor = conn.connection.cursor()
            try:
                cursor.execute(load_data_statement(label_events.name, LABEL_EVENT_COLUMNS, self._spool))
            finally:
                cursor.close()
        else:
            conn.execute(
                self._insert_label_event, [dict(zip(LABEL_EVENT_COLUMNS, event, strict=True)) for event in events]
            )
        transaction_ids = sorted({lb.transaction_id for lb in labels})
        for start in range(0, len(transaction_ids), _LABEL_CHUNK):
            conn.execute(self._refresh_latest, {"ids": transaction_ids[start : start + _LABEL_CHUNK]})

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
        """Try LOAD DATA with an empty file: both the client and the server must allow it. Only their refusal
        means INSERT from now on; any other failure (a lock, a lost connection) says nothing about it."""
        assert self._spool is not None
        self._spool.write_bytes(b"")
        try:
            with self.engine.begin() as conn:
                cursor = conn.connection.cursor()
                try:
                    cursor.execute(load_data_statement(scored_transactions.name, SCORED_COLUMNS, self._spool))
                finally:
                    cursor.close()
        except Exception as exc:  # noqa: BLE001 - the driver's or SQLAlchemy's, read by code
            code = getattr(getattr(exc, "orig", exc), "args", (None,))[0]
            if code in LOCAL_INFILE_REFUSED:
                logger.info("LOAD DATA LOCAL INFILE not available (%s): writing with INSERT", str(exc).splitlines()[0])
                return False
        return True

    def _close_spool(self) -> None:
        if self._spool is not None:
            remove_spool(self._spool)
            self._spool = None

    def close(self) -> None:
        """Remove the spool (the scorer calls this when it stops)."""
        self._close_spool()

    def __del__(self) -> None:
        self._close_spool()


_LABEL_CHUNK = 5_000


def _latest_labels() -> sa.Select:
    """The latest label event of each transaction in the bound list `ids`."""
    ranked = (
        sa.select(
            label_events.c.transaction_id,
            label_events.c.is_fraud,
            label_events.c.labelled_at,
            sa.func.row_number()
            .over(
                partition_by=label_events.c.transaction_id,
                order_by=(label_events.c.labelled_at.desc(), label_events.c.id.desc()),
            )
            .label("rank"),
        )
        .where(label_events.c.transaction_id.in_(sa.bindparam("ids", expanding=True)))
        .subquery()
    )
    return sa.select(ranked.c.transaction_id, ranked.c.is_fraud, ranked.c.labelled_at).where(ranked.c.rank == 1)


def _as_rows(scored: ScoredBatch | Sequence[ScoredRow | dict[str, object]]) -> list[ScoredRow]:
    if isinstance(scored, ScoredBatch):
        return scored.rows()
    return [[row.get(c) for c in SCORED_COLUMNS] if isinstance(row, dict) else row for row in scored]
