"""SQLAlchemy models of the contract tables (CONTRACTS §2), portable across MySQL/MariaDB and SQLite."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.compiler import TypeCompiler

# BIGINT auto-increment on MySQL; SQLite only auto-increments an INTEGER primary key.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# Microsecond precision on MySQL (its DATETIME defaults to whole seconds).
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

# Table options, spelled for both dialect names MariaDB may be reached through.
_UTF8MB4 = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mariadb_charset": "utf8mb4",
    "mariadb_collate": "utf8mb4_bin",
}


class Identifier(sa.String):
    """A VARCHAR(64) id compared byte for byte, trailing spaces included.

    `utf8mb4_bin` is PAD SPACE on MariaDB and MySQL 8, so the unique key would treat "tx" and "tx "
    as one id and drop a payment. The NO PAD binary collation has a different name on each server,
    and MariaDB may be reached through the "mysql" dialect, so it is picked when the DDL is compiled.
    """

    cache_ok = True

    def __init__(self) -> None:
        super().__init__(64)


@compiles(Identifier, "mysql")
@compiles(Identifier, "mariadb")
def _identifier_ddl(type_: Identifier, compiler: TypeCompiler, **kw: object) -> str:
    collation = "utf8mb4_nopad_bin" if getattr(compiler.dialect, "is_mariadb", False) else "utf8mb4_0900_bin"
    return f"VARCHAR({type_.length}) CHARACTER SET utf8mb4 COLLATE {collation}"


class Base(DeclarativeBase):
    pass


class ScoredTransaction(Base):
    """One row per scored payment; `transaction_id` is the idempotency key."""

    __tablename__ = "scored_transactions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    transaction_id: Mapped[str] = mapped_column(Identifier(), nullable=False, unique=True)
    customer_id: Mapped[str] = mapped_column(Identifier(), nullable=False)
    terminal_id: Mapped[str] = mapped_column(Identifier(), nullable=False)
    amount: Mapped[Decimal] = mapped_column(sa.Numeric(12, 2), nullable=False)
    currency: Mapped[str] = mapped_column(sa.CHAR(3), nullable=False)
    event_time: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False, index=True)
    score: Mapped[float] = mapped_column(sa.Double, nullable=False)
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False, index=True)
    reasons: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    model_version: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    scored_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)
    kafka_partition: Mapped[int | None] = mapped_column(sa.Integer)
    kafka_offset: Mapped[int | None] = mapped_column(sa.BigInteger)
    # The partition of the card-keyed stream the payment was scored from: the scorer that owns it restores
    # its cards' state from these rows.
    shard: Mapped[int | None] = mapped_column(sa.SmallInteger)

    __table_args__ = (
        sa.Index("ix_scored_transactions_customer_time", "customer_id", "event_time"),
        sa.Index("ix_scored_transactions_shard_time", "shard", "event_time"),
        _UTF8MB4,
    )


class TransactionLabel(Base):
    """The latest known truth about a payment (chargeback, investigator's verdict)."""

    __tablename__ = "transaction_labels"

    transaction_id: Mapped[str] = mapped_column(Identifier(), primary_key=True)
    is_fraud: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
    labelled_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)

    __table_args__ = (_UTF8MB4,)


class LabelEvent(Base):
    """Every label the platform received, in arrival order: the history behind `transaction_labels`.

    A label takes effect in event time (at its `labelled_at`), so the features of a payment depend on which
    label of a transaction was the latest at that payment's time, not only on the last one: a label that is
    later corrected still counted in between. The same label received twice (same transaction, time and
    verdict) is one event."""

    __tablename__ = "label_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    transaction_id: Mapped[str] = mapped_column(Identifier(), nullable=False)
    is_fraud: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
    labelled_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False, index=True)
    source: Mapped[str | None] = mapped_column(sa.String(64))  # e.g. "chargeback", "analyst:<name>"
    received_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)

    __table_args__ = (
        sa.UniqueConstraint("transaction_id", "labelled_at", "is_fraud", name="uq_label_events_content"),
        _UTF8MB4,
    )


class ScorerStatus(Base):
    """One row per scorer process, refreshed with each progress report: what operators and the console
    show as the scorer's health."""

    __tablename__ = "scorer_status"

    scorer_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)  # host:pid:start
    consumer_group: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    started_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)
    running: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
    consumed: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)  # payment messages read
    scored: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)  # rows written
    dead_lettered: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    labels: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    payments_per_s: Mapped[float] = mapped_column(sa.Double, nullable=False)
    consumer_lag: Mapped[int | None] = mapped_column(sa.BigInteger)
    model_version: Mapped[str | None] = mapped_column(sa.String(64))
    orphan_labels: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)  # labels whose payment never came
    mis_keyed: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)  # payments not keyed by customer_id

    __table_args__ = (_UTF8MB4,)


class StreamProgress(Base):
    """How far each partition of the scorer group's streams is durably written, in event time: every
    payment of a card-keyed partition, or label of a label partition, with an earlier time is in the store.

    Scorers write their partitions' progress in the same transaction as the rows, and read the others':
    the minimum is the group's shared watermark, which says when another scorer's payments and labels can
    be read back for the terminal windows."""

    __tablename__ = "stream_progress"

    consumer_group: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    topic: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    partition: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    progress_us: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)  # epoch microseconds
    updated_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)

    __table_args__ = (_UTF8MB4,)


scored_transactions: sa.Table = ScoredTransaction.__table__  # type: ignore[assignment]
transaction_labels: sa.Table = TransactionLabel.__table__  # type: ignore[assignment]
label_events: sa.Table = LabelEvent.__table__  # type: ignore[assignment]
scorer_status: sa.Table = ScorerStatus.__table__  # type: ignore[assignment]
stream_progress: sa.Table = StreamProgress.__table__  # type: ignore[assignment]


def create_tables(engine: sa.Engine) -> None:
    """Create the platform's tables where missing; safe to call at every start. A score store made before
    `shard` existed gets the column and its index."""
    Base.metadata.create_all(engine, checkfirst=True)
    columns = {column["name"] for column in sa.inspect(engine).get_columns(ScoredTransaction.__tablename__)}
    if "shard" not in columns:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE scored_transactions ADD COLUMN shard SMALLINT"))
            next(i for i in scored_transactions.indexes if i.name == "ix_scored_transactions_shard_time").create(conn)


class DailyScoringReport(Base):
    """What was scored on one UTC day (event time): the `daily_scoring_report` asset, one row per day."""

    __tablename__ = "daily_scoring_reports"

    day: Mapped[dt.date] = mapped_column(sa.Date, primary_key=True)
    payments: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    approved: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    review: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    declined: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    flagged_share: Mapped[float] = mapped_column(sa.Double, nullable=False)
    labelled_fraud_rate: Mapped[float | None] = mapped_column(sa.Double)
    amount_total: Mapped[float] = mapped_column(sa.Double, nullable=False)
    amount_mean: Mapped[float] = mapped_column(sa.Double, nullable=False)
    amount_p50: Mapped[float] = mapped_column(sa.Double, nullable=False)
    amount_p99: Mapped[float] = mapped_column(sa.Double, nullable=False)
    amount_max: Mapped[float] = mapped_column(sa.Double, nullable=False)
    latency_p50_ms: Mapped[float] = mapped_column(sa.Double, nullable=False)
    latency_p95_ms: Mapped[float] = mapped_column(sa.Double, nullable=False)
    latency_p99_ms: Mapped[float] = mapped_column(sa.Double, nullable=False)
    generated_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)


daily_scoring_reports: sa.Table = DailyScoringReport.__table__  # type: ignore[assignment]


# The console keeps its own tables (pre-aggregates, review desk) on the same Base: created with the rest.
import payment_platform.console.tables  # noqa: E402, F401
