"""Synthetic labelled payment history, one partition per UTC day, with its fraud-rate check."""

import datetime as dt

import dagster as dg
import pandas as pd

from payment_platform.defs.partitions import daily_partitions
from payment_platform.resources import HistoryStoreResource
from payment_platform.world import World

HISTORY_FRAUD_RATE_CHECK = "fraud_rate_in_band"


class HistoryConfig(dg.Config):
    """Which synthetic world to draw from, and the fraud-rate band each day must lie in."""

    seed: int = 7
    n_cards: int = 5000
    min_fraud_rate: float = 0.003
    max_fraud_rate: float = 0.03


def partition_days(context: dg.AssetExecutionContext) -> list[dt.date]:
    window = context.partition_time_window
    first, last = window.start.date(), (window.end - dt.timedelta(microseconds=1)).date()
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


@dg.asset(
    key="transaction_history",
    group_name="training_data",
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[dg.AssetCheckSpec(HISTORY_FRAUD_RATE_CHECK, asset="transaction_history")],
    kinds={"parquet", "pandas"},
)
def transaction_history(
    context: dg.AssetExecutionContext, config: HistoryConfig, history: HistoryStoreResource
) -> dg.Output[None] | object:
    """Labelled payments of the synthetic world, one Parquet file per day (re-running a day replaces it)."""
    world = World(seed=config.seed, n_cards=config.n_cards)
    store = history.store()
    rates: dict[str, float] = {}
    counts = 0
    days = partition_days(context)
    for i, day in enumerate(days, start=1):
        payments = world.day(day)
        store.write_day(day, payments)
        rates[day.isoformat()] = float(payments["is_fraud"].mean())
        counts += len(payments)
        if i % 10 == 0 or i == len(days):
            context.log.info(f"generated {i}/{len(days)} days ({counts:,} payments)")
    out_of_band = {
        day: rate for day, rate in rates.items() if not config.min_fraud_rate <= rate <= config.max_fraud_rate
    }
    series = pd.Series(rates)
    yield dg.MaterializeResult(
        metadata={
            "days": len(days),
            "payments": counts,
            "fraud_rate": float(series.mean()),
            "path": dg.MetadataValue.path(str(store.root)),
        }
    )
    yield dg.AssetCheckResult(
        check_name=HISTORY_FRAUD_RATE_CHECK,
        passed=not out_of_band,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"daily fraud rate within [{config.min_fraud_rate:.2%}, {config.max_fraud_rate:.2%}]",
        metadata={
            "min_daily_fraud_rate": float(series.min()),
            "max_daily_fraud_rate": float(series.max()),
            "days_out_of_band": len(out_of_band),
            "first_out_of_band": next(iter(out_of_band), ""),
        },
    )


history_job = dg.define_asset_job(
    "materialize_history",
    selection=dg.AssetSelection.assets(transaction_history),
    partitions_def=daily_partitions,
)

history_schedule = dg.build_schedule_from_partitioned_job(
    history_job,
    hour_of_day=0,
    minute_of_hour=20,
    name="daily_history_schedule",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
