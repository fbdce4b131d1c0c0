"""Live detection quality of recent matured days, measured in the background and kept for the health page.

The measure is the `live_model_performance` asset's (unlabelled payments count as genuine): AUC, average
precision, CP@100, precision of the alerts and of the declines, on what the scorer decided on a day whose
labels have had time to come back. A day is a few hundred thousand rows, too many for a page: the console's
maintenance measures one day at a time and stores the figures, and measures a day again every few hours
while labels may still arrive.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import sqlalchemy as sa

from payment_platform.console.portable_sql import merge_replace
from payment_platform.console.tables import live_quality_days
from payment_platform.model.metrics import UndefinedMetricError, average_precision, daily_card_precision_at_k, roc_auc
from payment_platform.store.outcomes import read_day_outcomes

logger = logging.getLogger(__name__)

LABEL_LAG_DAYS = 8  # the 7-day label delay and a day of margin, as the live quality schedule
DAYS_SHOWN = 7
REMEASURE_AFTER = dt.timedelta(hours=6)


@dataclass(frozen=True)
class DayQuality:
    day: dt.date
    payments: int
    labelled: int
    frauds: int
    model_versions: str
    roc_auc: float | None
    average_precision: float | None
    card_precision_at_k: float | None
    precision_of_alerts: float | None
    precision_of_declines: float | None
    computed_at: dt.datetime


def matured_days(today: dt.date) -> list[dt.date]:
    """The days shown, newest first: from LABEL_LAG_DAYS back, DAYS_SHOWN of them."""
    newest = today - dt.timedelta(days=LABEL_LAG_DAYS)
    return [newest - dt.timedelta(days=i) for i in range(DAYS_SHOWN)]


def measure_day(engine: sa.Engine, day: dt.date, now: dt.datetime) -> DayQuality:
    """The day's live metrics from the store (one read of the day's rows and labels)."""
    rows = read_day_outcomes(engine, day)
    labelled = int(rows["is_fraud"].notna().sum()) if len(rows) else 0
    labels = rows["is_fraud"].fillna(0).to_numpy(dtype=int)
    alerts = (rows["status"] != "APPROVED").to_numpy()
    declined = (rows["status"] == "DECLINED").to_numpy()
    auc = ap = cp = None
    try:
        auc = roc_auc(labels, rows["score"])
        ap = average_precision(labels, rows["score"])
        cp = float(daily_card_precision_at_k(rows["score"], labels, rows["customer_id"], rows["event_time"]).mean())
    except UndefinedMetricError:
        pass  # one class only (or no rows): nothing to rank
    return DayQuality(
        day=day,
        payments=len(rows),
        labelled=labelled,
        frauds=int(labels.sum()),
        model_versions=", ".join(sorted(rows["model_version"].unique()))[:255] if len(rows) else "",
        roc_auc=auc,
        average_precision=ap,
        card_precision_at_k=cp,
        precision_of_alerts=float(labels[alerts].mean()) if alerts.any() else None,
        precision_of_declines=float(labels[declined].mean()) if declined.any() else None,
        computed_at=now,
    )


def refresh_one_day(reader: sa.Engine, writer: sa.Engine, today: dt.date, now: dt.datetime) -> dt.date | None:
    """Measure the first shown day never measured, or measured more than REMEASURE_AFTER ago; the day, if any."""
    days = matured_days(today)
    with reader.connect() as conn:
        measured = dict(
            conn.execute(
                sa.select(live_quality_days.c.day, live_quality_days.c.computed_at).where(
                    live_quality_days.c.day.in_(days)
                )
            )
            .tuples()
            .all()
        )
    due = [d for d in days if d not in measured or now - measured[d] > REMEASURE_AFTER]
    if not due:
        return None
    day = due[0]
    quality = measure_day(reader, day, now)
    with writer.begin() as conn:
        merge_replace(conn, live_quality_days, [vars(quality)])
    logger.info("measured live quality of %s: %d payments, %d labelled", day, quality.payments, quality.labelled)
    return day


def shown_days(conn: sa.Connection, today: dt.date) -> list[DayQuality]:
    rows = conn.execute(
        sa.select(live_quality_days)
        .where(live_quality_days.c.day.in_(matured_days(today)))
        .order_by(live_quality_days.c.day.desc())
    )
    return [DayQuality(**r._mapping) for r in rows]
