"""The commands about the model: train and promote one, verify stored scores against it, backtest it."""

from __future__ import annotations

import argparse

from payment_platform.cli.arguments import CommandError, Subcommands, date
from payment_platform.settings import Settings


def add_commands(commands: Subcommands) -> None:
    train = commands.add_parser("train", help="train, measure, check and promote a model through Dagster")
    train.add_argument("--source", choices=["synthetic", "database"], default="synthetic")
    train.add_argument("--until", type=date, default=None, help="last day of the training window (event time)")
    train.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace, settings: Settings) -> int:
    from payment_platform.defs.operations import TrainingFailed, train_through_dagster

    try:
        version, metrics = train_through_dagster(settings, source=args.source, until=args.until)
    except TrainingFailed as exc:
        raise CommandError(str(exc)) from None
    summary = ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
    print(f"promoted model {version}: {summary}")
    return 0
