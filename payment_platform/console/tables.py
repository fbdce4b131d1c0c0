"""The console's own tables, on the store's `Base` so that `create_tables` creates them with the rest.

Three kinds:
- pre-aggregates of `scored_transactions` that the console maintains itself (`rollup.py`), so that no page
  ever scans the whole table: per scored minute (status, latency and score histograms, reason codes), lifetime
  totals, per card, and the REVIEW payments that make up the review queue;
- the review desk: leases on cases (who has one open, until when) and `reviews`, the audit trail of verdicts;
- the live quality of matured days, computed in the background because a day is too many rows for a page.

Minutes are whole minutes since the Unix epoch of `scored_at` (UTC): integers group and range cheaply on
every database.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from payment_platform.store.tables import Base, BigId, Identifier, Timestamp

_UTF8MB4 = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mariadb_charset": "utf8mb4",
    "mariadb_collate": "utf8mb4_bin",
}


class RollupCursor(Base):
    """How far the pre-aggregates have read `scored_transactions`: every id up to `last_id` is folded in,
    or is one of the pending gaps."""

    __tablename__ = "console_rollup_cursor"

    source: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    last_id: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)

    __table_args__ = (_UTF8MB4,)


class RollupGap(Base):
    """Ids below the cursor not seen yet: a write still in flight (another scorer's transaction commits
    later), or an id no row will ever have (ids a bulk load reserved and did not use, a duplicate it
    skipped). Re-read until `seen_at` is older than the grace period."""

    __tablename__ = "console_rollup_gaps"

    first_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    seen_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)
    # scored_at of the first row after the gap. A writer stamps scored_at before it takes its ids, so a row
    # that fills the gap was stamped before that row's ids were taken: about this time, or earlier.
    next_scored_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)


class MinuteStatus(Base):
    """Decisions of one scored minute and status: count, latency sum and maximum, the lowest row id."""

    __tablename__ = "console_minute_status"

    minute: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    payments: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    latency_sum_ms: Mapped[float] = mapped_column(sa.Double, nullable=False)
    latency_max_ms: Mapped[float] = mapped_column(sa.Double, nullable=False)
    # Rows scored in this minute have ids >= first_id: recent-window panels start their primary-key range here.
    first_id: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)

    __table_args__ = (_UTF8MB4,)


class MinuteHistogram(Base):
    """Payments per bucket of a metric, `latency` (20 log buckets a decade) or `score`, in each minute and in
    each 10 minutes (`span`): a day's chart reads a tenth of the rows."""

    __tablename__ = "console_minute_histograms"

    # metric and span first: a window of one metric at one resolution is one contiguous range of the key.
    metric: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    span: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True, autoincrement=False)  # minutes: 1 or 10
    minute: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)  # the span's first
    bucket: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True, autoincrement=False)
    payments: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)

    __table_args__ = (_UTF8MB4,)


class MinuteReason(Base):
    """Payments of one scored minute that carry a reason code (a payment counts once per code it carries)."""

    __tablename__ = "console_minute_reasons"

    minute: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    reason: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    payments: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)

    __table_args__ = (_UTF8MB4,)


class StatusTotal(Base):
    """Lifetime decisions per status: the seed's status totals without its full-table COUNT."""

    __tablename__ = "console_status_totals"

    status: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    payments: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    latency_sum_ms: Mapped[float] = mapped_column(sa.Double, nullable=False)
    latency_max_ms: Mapped[float] = mapped_column(sa.Double, nullable=False)
    score_sum: Mapped[float] = mapped_column(sa.Double, nullable=False)

    __table_args__ = (_UTF8MB4,)


class ReasonTotal(Base):
    """Lifetime payments per reason code."""

    __tablename__ = "console_reason_totals"

    reason: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    payments: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)

    __table_args__ = (_UTF8MB4,)


class CardTotal(Base):
    """Lifetime decisions of one card, ranked by the index for the top-risk panel."""

    __tablename__ = "console_card_totals"

    customer_id: Mapped[str] = mapped_column(Identifier(), primary_key=True)
    payments: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    review: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    declined: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    score_sum: Mapped[float] = mapped_column(sa.Double, nullable=False)
    max_score: Mapped[float] = mapped_column(sa.Double, nullable=False)
    last_event_time: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)

    __table_args__ = (sa.Index("ix_console_card_totals_risk", "declined", "review", "max_score"), _UTF8MB4)


class ReviewItem(Base):
    """A payment the scorer sent to REVIEW: the review queue groups the open ones by card into cases."""

    __tablename__ = "console_review_items"

    transaction_id: Mapped[str] = mapped_column(Identifier(), primary_key=True)
    row_id: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)  # scored_transactions.id
    customer_id: Mapped[str] = mapped_column(Identifier(), nullable=False)
    score: Mapped[float] = mapped_column(sa.Double, nullable=False)
    event_time: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)
    reviewed: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)

    __table_args__ = (
        # Covers the queue's GROUP BY customer_id over open items, and a card's open items.
        sa.Index("ix_console_review_items_open", "reviewed", "customer_id", "score", "event_time"),
        _UTF8MB4,
    )


class CaseLease(Base):
    """Who has a card's case open, until when: another analyst sees it as taken until it expires."""

    __tablename__ = "console_case_leases"

    customer_id: Mapped[str] = mapped_column(Identifier(), primary_key=True)
    analyst: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    taken_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)
    expires_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)

    __table_args__ = (_UTF8MB4,)


class Review(Base):
    """The audit trail: one row per payment an analyst gave a verdict on, with who, when and why."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(Identifier(), nullable=False, index=True)
    transaction_id: Mapped[str] = mapped_column(Identifier(), nullable=False, index=True)
    analyst: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    verdict: Mapped[str] = mapped_column(sa.String(16), nullable=False)  # "fraud" or "genuine"
    note: Mapped[str] = mapped_column(sa.String(1000), nullable=False)
    reviewed_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False, index=True)

    __table_args__ = (_UTF8MB4,)


class LiveQualityDay(Base):
    """The live scores of one matured day measured against the labels that came back (unlabelled: genuine)."""

    __tablename__ = "console_live_quality"

    day: Mapped[dt.date] = mapped_column(sa.Date, primary_key=True)
    payments: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    labelled: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    frauds: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    model_versions: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    roc_auc: Mapped[float | None] = mapped_column(sa.Double)
    average_precision: Mapped[float | None] = mapped_column(sa.Double)
    card_precision_at_k: Mapped[float | None] = mapped_column(sa.Double)
    precision_of_alerts: Mapped[float | None] = mapped_column(sa.Double)
    precision_of_declines: Mapped[float | None] = mapped_column(sa.Double)
    computed_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)

    __table_args__ = (_UTF8MB4,)


rollup_cursor: sa.Table = RollupCursor.__table__  # type: ignore[assignment]
rollup_gaps: sa.Table = RollupGap.__table__  # type: ignore[assignment]
minute_status: sa.Table = MinuteStatus.__table__  # type: ignore[assignment]
minute_histograms: sa.Table = MinuteHistogram.__table__  # type: ignore[assignment]
minute_reasons: sa.Table = MinuteReason.__table__  # type: ignore[assignment]
status_totals: sa.Table = StatusTotal.__table__  # type: ignore[assignment]
reason_totals: sa.Table = ReasonTotal.__table__  # type: ignore[assignment]
card_totals: sa.Table = CardTotal.__table__  # type: ignore[assignment]
review_items: sa.Table = ReviewItem.__table__  # type: ignore[assignment]
case_leases: sa.Table = CaseLease.__table__  # type: ignore[assignment]
reviews: sa.Table = Review.__table__  # type: ignore[assignment]
live_quality_days: sa.Table = LiveQualityDay.__table__  # type: ignore[assignment]

# What the rollup rebuilds from nothing when the store it read is gone (reviews and leases stay: they are
# the analysts' own record, not derived from the store).
DERIVED_TABLES = (
    rollup_gaps,
    minute_status,
    minute_histograms,
    minute_reasons,
    status_totals,
    reason_totals,
    card_totals,
    review_items,
    live_quality_days,
    rollup_cursor,
)
