"""The scorer's health as the store sees it: the `scorer_status` rows each scorer process refreshes with every
progress report (rate, consumer lag, DLQ count, model), and how far the console's own aggregates lag."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from payment_platform.console.tables import rollup_cursor, rollup_gaps
from payment_platform.store.tables import scored_transactions, scorer_status

# A scorer reports every 10 s; one silent for this long is shown as stale, one not running as stopped.
STALE_AFTER = dt.timedelta(seconds=60)
SHOWN_SCORERS = 20


@dataclass(frozen=True)
class ScorerHealth:
    scorer_id: str
    consumer_group: str
    started_at: dt.datetime
    updated_at: dt.datetime
    running: bool
    consumed: int
    scored: int
    dead_lettered: int
    labels: int
    payments_per_s: float
    consumer_lag: int | None
    model_version: str | None
    orphan_labels: int
    mis_keyed: int
    state: str  # "running", "stale" or "stopped"


def scorers(conn: sa.Connection, now: dt.datetime) -> list[ScorerHealth]:
    """The most recently reporting scorer processes, live ones first."""
    s = scorer_status.c
    rows = conn.execute(sa.select(scorer_status).order_by(s.updated_at.desc()).limit(SHOWN_SCORERS))
    found = []
    shown = [f.name for f in dataclasses.fields(ScorerHealth) if f.name != "state"]
    for r in rows:
        values = r._mapping
        state = "stopped" if not r.running else "stale" if now - r.updated_at > STALE_AFTER else "running"
        found.append(
            ScorerHealth(**{name: values[name] for name in shown}, state=state)
        )  # columns added later: unshown
    return sorted(found, key=lambda h: (h.state != "running", -h.updated_at.timestamp()))


@dataclass(frozen=True)
class ScoringTotals:
    """The live scorers together: what the health tiles show."""

    running: int
    payments_per_s: float
    consumer_lag: int | None
    dead_lettered: int


def scoring_totals(health: list[ScorerHealth]) -> ScoringTotals:
    live = [h for h in health if h.state == "running"]
    lags = [h.consumer_lag for h in live if h.consumer_lag is not None]
    return ScoringTotals(
        running=len(live),
        payments_per_s=sum(h.payments_per_s for h in live),
        consumer_lag=sum(lags) if lags else None,
        dead_lettered=sum(h.dead_lettered for h in health),
    )


@dataclass(frozen=True)
class AggregatesHealth:
    last_id: int
    store_max_id: int
    pending_gaps: int
    updated_at: dt.datetime | None

    @property
    def behind(self) -> int:
        return max(self.store_max_id - self.last_id, 0)


def aggregates_health(conn: sa.Connection) -> AggregatesHealth:
    cursor = conn.execute(sa.select(rollup_cursor.c.last_id, rollup_cursor.c.updated_at)).first()
    store_max = conn.execute(sa.select(sa.func.max(scored_transactions.c.id))).scalar() or 0
    gaps = conn.execute(sa.select(sa.func.count()).select_from(rollup_gaps)).scalar_one()
    return AggregatesHealth(
        last_id=int(cursor.last_id) if cursor else 0,
        store_max_id=int(store_max),
        pending_gaps=int(gaps),
        updated_at=cursor.updated_at if cursor else None,
    )
