"""The daily scoring report: what was decided on one day, how much, and how fast."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa

from payment_platform.store.outcomes import day_rows
from payment_platform.store.tables import daily_scoring_reports


@dataclass(frozen=True)
class DailyReport:
    day: dt.date
    payments: int
    approved: int
    review: int
    declined: int
    flagged_share: float
    labelled_fraud_rate: float | None  # share of fraud among the day's payments whose label is known
    amount_total: float
    amount_mean: float
    amount_p50: float
    amount_p99: float
    amount_max: float
    latency_p50_ms: float  # row written − payment event time
    latency_p95_ms: float
    latency_p99_ms: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def build_daily_report(engine: sa.Engine, day: dt.date) -> DailyReport:
    """Summarise the payments whose event time falls on `day` (UTC)."""
    rows = day_rows(engine, day, ["status", "amount", "event_time", "scored_at", "is_fraud"])
    n = len(rows)
    if n == 0:
        return DailyReport(day, 0, 0, 0, 0, 0.0, None, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    status = rows["status"].value_counts()
    amount = rows["amount"].astype(float).to_numpy()
    latency_ms = (
        pd.to_datetime(rows["scored_at"]) - pd.to_datetime(rows["event_time"])
    ).dt.total_seconds().to_numpy() * 1e3
    labels = rows["is_fraud"].dropna()
    p50, p95, p99 = np.percentile(latency_ms, [50, 95, 99])
    return DailyReport(
        day=day,
        payments=n,
        approved=int(status.get("APPROVED", 0)),
        review=int(status.get("REVIEW", 0)),
        declined=int(status.get("DECLINED", 0)),
        flagged_share=float((rows["status"] != "APPROVED").mean()),
        labelled_fraud_rate=float(labels.astype(float).mean()) if len(labels) else None,
        amount_total=float(amount.sum()),
        amount_mean=float(amount.mean()),
        amount_p50=float(np.percentile(amount, 50)),
        amount_p99=float(np.percentile(amount, 99)),
        amount_max=float(amount.max()),
        latency_p50_ms=float(p50),
        latency_p95_ms=float(p95),
        latency_p99_ms=float(p99),
    )


def save_daily_report(engine: sa.Engine, report: DailyReport) -> None:
    """Replace the day's row: re-running a partition is safe."""
    with engine.begin() as conn:
        conn.execute(sa.delete(daily_scoring_reports).where(daily_scoring_reports.c.day == report.day))
        conn.execute(
            sa.insert(daily_scoring_reports),
            [{**report.as_dict(), "generated_at": dt.datetime.now(dt.UTC).replace(tzinfo=None)}],
        )
