"""The live decisions of a day next to what turned out to be true: the scorer's rows joined with labels."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from payment_platform.store.tables import scored_transactions, transaction_labels

OUTCOME_COLUMNS = ["customer_id", "event_time", "score", "status", "model_version", "is_fraud"]


def day_rows(engine: sa.Engine, day: dt.date, columns: list[str]) -> pd.DataFrame:
    """Columns of the payments scored with event time on `day` (UTC), each with its label if any: names
    of `scored_transactions` columns, or `is_fraud` (None where no label came back)."""
    start = dt.datetime.combine(day, dt.time())
    t, lb = scored_transactions.c, transaction_labels.c
    query = (
        sa.select(*(lb.is_fraud if name == "is_fraud" else t[name] for name in columns))
        .select_from(scored_transactions.outerjoin(transaction_labels, lb.transaction_id == t.transaction_id))
        .where(t.event_time >= start, t.event_time < start + dt.timedelta(days=1))
    )
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).all(), columns=columns)


def read_day_outcomes(engine: sa.Engine, day: dt.date) -> pd.DataFrame:
    """The payments scored with event time on `day` (UTC): score, status, model and label (NaN: no label)."""
    rows = day_rows(engine, day, OUTCOME_COLUMNS)
    rows["event_time"] = pd.to_datetime(rows["event_time"]).dt.tz_localize("UTC")
    rows["is_fraud"] = rows["is_fraud"].astype(float)
    return rows


@dataclass(frozen=True)
class FlagCounts:
    """How many recently scored payments were flagged, and how many of those by the model score."""

    payments: int
    flagged: int  # DECLINED or REVIEW
    model_flagged: int  # whose first reason is the model score

    def shares(self) -> dict[str, float]:
        return {
            "flagged_share": self.flagged / self.payments if self.payments else 0.0,
            "model_flagged_share": self.model_flagged / self.payments if self.payments else 0.0,
        }


def recent_flag_counts(engine: sa.Engine, since: dt.datetime) -> FlagCounts:
    """Counts over the payments written (scored_at, UTC) since `since`."""
    t = scored_transactions.c
    query = sa.select(
        sa.func.count(),
        sa.func.sum(sa.case((t.status != "APPROVED", 1), else_=0)),
        sa.func.sum(sa.case((t.reasons.like("model_score%"), 1), else_=0)),
    ).where(t.scored_at >= since.replace(tzinfo=None))
    with engine.connect() as conn:
        total, flagged, model_flagged = conn.execute(query).one()
    return FlagCounts(int(total), int(flagged or 0), int(model_flagged or 0))
