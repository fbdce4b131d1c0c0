"""The `payment-platform` command line (CONTRACTS §4), one module per group of commands:
`services` (broker, console, bench, dev), `traffic` (produce, replay, score) and `model` (train, verify,
backtest).

Every command exits non-zero with a one-line reason on bad arguments or an unreachable service,
and never prints a password.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from payment_platform.cli import model, services, traffic
from payment_platform.cli.arguments import CommandError
from payment_platform.settings import Settings, SettingsError

__all__ = ["CommandError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="payment-platform",
        description="Real-time payment fraud scoring on Kafka and MySQL, orchestrated by Dagster.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    services.add_broker(commands)
    traffic.add_commands(commands)
    model.add_commands(commands)
    services.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = Settings.from_env()
        return int(args.handler(args, settings) or 0)
    except (SettingsError, CommandError) as exc:
        print(f"payment-platform {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
