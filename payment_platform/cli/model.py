"""The commands about the model: train and promote one, verify stored scores against it, backtest it."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from payment_platform.cli.arguments import (
    CommandError,
    Subcommands,
    date,
    non_negative_float,
    positive_int,
    service_error,
)
from payment_platform.settings import Settings


def add_commands(commands: Subcommands) -> None:
    train = commands.add_parser("train", help="train, measure, check and promote a model through Dagster")
    train.add_argument("--source", choices=["synthetic", "database"], default="synthetic")
    train.add_argument("--until", type=date, default=None, help="last day of the training window (event time)")
    train.set_defaults(handler=run_train)

    verify = commands.add_parser(
        "verify", help="rescore stored rows offline with the model that served them; exit 1 if any score differs"
    )
    verify.add_argument("--from", dest="start", type=date, default=None, help="first day (event time); default: all")
    verify.add_argument("--to", dest="end", type=date, default=None, help="last day, inclusive; default: all")
    verify.set_defaults(handler=run_verify)

    backtest = commands.add_parser(
        "backtest", help="replay a labelled history, retrain from the store, replay the next file, measure"
    )
    backtest.add_argument("history", type=Path, help="labelled payments (CSV or Parquet) to learn from")
    backtest.add_argument("--train-until", type=date, required=True, help="last day of the training window")
    backtest.add_argument("--test", type=Path, required=True, help="labelled payments of the following days")
    backtest.add_argument("--label-delay-days", type=non_negative_float, default=7.0)
    backtest.add_argument("--test-days", type=positive_int, default=None, help="held-out days of the retraining")
    backtest.add_argument("--max-modelled-days", type=positive_int, default=None, help="most days to learn from")
    backtest.set_defaults(handler=run_backtest)


def run_train(args: argparse.Namespace, settings: Settings) -> int:
    from payment_platform.defs.operations import TrainingFailed, train_through_dagster

    try:
        version, metrics = train_through_dagster(settings, source=args.source, until=args.until)
    except TrainingFailed as exc:
        raise CommandError(str(exc)) from None
    summary = ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
    print(f"promoted model {version}: {summary}")
    return 0


def run_verify(args: argparse.Namespace, settings: Settings) -> int:
    from payment_platform.backtest.served_scores import rescore_stored, stored_range
    from payment_platform.model import ModelRegistry
    from payment_platform.store.database import StoreUnavailable

    try:
        stored = stored_range(settings.db_url)
        if stored is None:
            raise CommandError("the score store holds no scored payments")
        start = dt.datetime.combine(args.start, dt.time()) if args.start else stored[0]
        end = dt.datetime.combine(args.end + dt.timedelta(days=1), dt.time()) if args.end else stored[1]
        if not args.end:
            end += dt.timedelta(microseconds=1)
        rescored = rescore_stored(settings.db_url, ModelRegistry(settings.model_dir), start, end)
    except StoreUnavailable as exc:
        raise service_error(exc) from None
    print(f"{start:%Y-%m-%d %H:%M:%S} to {end:%Y-%m-%d %H:%M:%S}: {rescored.summary()}")
    differing = rescored.rows[rescored.differing]
    for row in differing.head(5).itertuples():
        print(
            f"  {row.transaction_id} at {row.event_time}: stored {row.score!r} {row.status}, "
            f"offline {row.offline_score!r} {row.offline_status} (model {row.model_version})"
        )
    return 1 if len(differing) or rescored.missing_versions else 0


def run_backtest(args: argparse.Namespace, settings: Settings) -> int:
    from payment_platform.backtest.run import BacktestError, BacktestPlan
    from payment_platform.backtest.run import run_backtest as backtest
    from payment_platform.kafka.clients import BrokerUnavailable
    from payment_platform.kafka.delivery import DeliveryStopped
    from payment_platform.model import ModelRegistryError
    from payment_platform.sources.replay import ReplayFileError
    from payment_platform.store.database import StoreUnavailable
    from payment_platform.store.errors import StoreLost, StoreRefused

    training = {"test_days": args.test_days, "max_modelled_days": args.max_modelled_days}
    plan = BacktestPlan(
        history=args.history,
        train_until=args.train_until,
        test=args.test,
        label_delay_days=args.label_delay_days,
        training={name: value for name, value in training.items() if value is not None},
    )
    try:
        report = backtest(settings, plan, say=lambda line: print(line, file=sys.stderr, flush=True))
    except (BacktestError, ReplayFileError, DeliveryStopped) as exc:
        raise CommandError(str(exc)) from None
    except (ModelRegistryError, BrokerUnavailable, StoreUnavailable, StoreRefused, StoreLost) as exc:
        raise service_error(exc) from None
    print(report.table())
    return 0
