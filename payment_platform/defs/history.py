"""Synthetic labelled payment history, one partition per UTC day, with its fraud-rate check per day."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from payment_platform.defs.partitions import daily_partitions, partition_days
from payment_platform.defs.resources import PaymentHomeResource
from payment_platform.world import World

HISTORY_FRAUD_RATE_CHECK = "fraud_rate_in_band"
FRAUD_RATE_CHECK_SPEC = dg.AssetCheckSpec(HISTORY_FRAUD_RATE_CHECK, asset="transaction_history")


class HistoryConfig(dg.Config):
    """Which synthetic world to draw from, and the fraud-rate band each day must lie in."""

    seed: int = 7
    n_cards: int = 5000
    min_fraud_rate: float = 0.003
    max_fraud_rate: float = 0.03


@dg.asset(
    key="transaction_history",
    group_name="training_data",
    partitions_def=daily_partitions,
    check_specs=[FRAUD_RATE_CHECK_SPEC],
    kinds={"parquet", "pandas"},
)
def transaction_history(
    context: dg.AssetExecutionContext, config: HistoryConfig, payment_home: PaymentHomeResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckEvaluation | dg.Output[None]]:
    """Labelled payments of the synthetic world, one Parquet file per day (re-running a day replaces it).

    A run may cover a range of days (the keep_scoring sensor and `payment-platform train` launch the
    missing window as one run); each day gets its own check result, tied to its partition."""
    world = World(seed=config.seed, n_cards=config.n_cards)
    store = payment_home.history()
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
    series = pd.Series(rates)
    yield dg.MaterializeResult(
        metadata={
            "days": len(days),
            "payments": counts,
            "fraud_rate": float(series.mean()),
            "path": dg.MetadataValue.path(str(store.root)),
        }
    )
    band = f"[{config.min_fraud_rate:.2%}, {config.max_fraud_rate:.2%}]"
    for partition, rate in rates.items():
        passed = config.min_fraud_rate <= rate <= config.max_fraud_rate
        yield dg.AssetCheckEvaluation(
            asset_key=FRAUD_RATE_CHECK_SPEC.asset_key,
            check_name=HISTORY_FRAUD_RATE_CHECK,
            partition=partition,
            passed=passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"fraud rate {rate:.2%} {'within' if passed else 'outside'} {band}",
            metadata={"fraud_rate": rate},
        )
    # The per-day evaluations above are the check's results; this closes its step output.
    yield dg.Output(None, output_name=FRAUD_RATE_CHECK_SPEC.get_python_identifier())


# In one process: a day of history takes ~0.2 s, less than starting a step's own process.
history_job = dg.define_asset_job(
    "materialize_history",
    selection=dg.AssetSelection.assets(transaction_history),
    executor_def=dg.in_process_executor,
)

history_schedule = dg.build_schedule_from_partitioned_job(
    history_job,
    hour_of_day=0,
    minute_of_hour=20,
    name="daily_history_schedule",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
