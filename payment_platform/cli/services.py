"""The commands that run a service in the foreground: the embedded broker, the console, the bench and the
local quick start."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from payment_platform.bench.options import add_arguments as add_bench_arguments
from payment_platform.cli.arguments import CommandError, Subcommands, non_negative_float, positive_int, positive_rate
from payment_platform.settings import Settings


def add_broker(commands: Subcommands) -> None:
    broker = commands.add_parser("broker", help="run the embedded Kafka-compatible broker and create the topics")
    broker.add_argument("--port", type=positive_int, default=9092)
    broker.set_defaults(handler=run_broker)


def add_commands(commands: Subcommands) -> None:
    console = commands.add_parser("console", help="the fraud operations console (web)")
    console.add_argument("--port", type=positive_int, default=8050)
    console.add_argument(
        "--host", default="127.0.0.1", help="address to bind; anything but loopback makes every page need a login"
    )
    console.add_argument(
        "--hash-password",
        action="store_true",
        help="print the hash of a password (typed or piped) for the accounts file",
    )
    console.set_defaults(handler=run_console_command)

    bench = commands.add_parser("bench", help="measure throughput, latency and memory against this machine's ceilings")
    add_bench_arguments(bench)
    bench.set_defaults(handler=run_bench)

    dev = commands.add_parser("dev", help="local quick start: embedded broker, Dagster UI on :3000, a producer")
    dev.add_argument("--port", type=positive_int, default=3000, help="port of the Dagster UI")
    dev.add_argument("--rate", type=positive_rate, default=10.0, help="producer's mean payments per second")
    dev.add_argument(
        "--backfill-days",
        type=non_negative_float,
        default=14.0,
        help="days of recent past the producer sends first, with their labels (0: none)",
    )
    dev.add_argument("--console-port", type=positive_int, default=8050, help="port of the fraud operations console")
    dev.set_defaults(handler=run_dev)


def run_broker(args: argparse.Namespace, settings: Settings) -> int:
    from payment_platform.kafka.clients import ensure_topics
    from payment_platform.kafka.embedded_broker import BrokerStartError, start_embedded_broker, stop_embedded_broker

    # SIGTERM (a service manager, `kill`) stops it as Ctrl-C does: the broker binary goes with it (and dies
    # with this process in any case, see start_embedded_broker).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    process = None
    try:
        process = start_embedded_broker(port=args.port)
        bootstrap = f"127.0.0.1:{args.port}"
        ensure_topics(bootstrap, [settings.payment_topic, settings.labels_topic, settings.dlq_topic])
        print(f"embedded broker listening on {bootstrap} (memory only: a restart loses the topics); Ctrl-C stops it")
        return process.wait()
    except BrokerStartError as exc:
        raise CommandError(str(exc)) from None
    except KeyboardInterrupt:
        return 0
    finally:
        if process is not None:
            stop_embedded_broker(process)


def run_console_command(args: argparse.Namespace, settings: Settings) -> int:
    from payment_platform.console.cli import ConsoleStartError, run_console

    try:
        return run_console(args.host, args.port, settings, hash_password=args.hash_password)
    except ConsoleStartError as exc:
        raise CommandError(str(exc)) from None


def run_bench(args: argparse.Namespace, settings: Settings) -> int:
    from payment_platform.bench.run import run

    return run(args)


def run_dev(args: argparse.Namespace, settings: Settings) -> int:
    from payment_platform.kafka.embedded_broker import BrokerStartError
    from payment_platform.local_stack import LocalStack

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    settings.home.mkdir(parents=True, exist_ok=True)
    stack = LocalStack(
        settings, ui_port=args.port, rate=args.rate, backfill_days=args.backfill_days, console_port=args.console_port
    )
    try:
        stack.start()
        print(
            f"Dagster UI on http://127.0.0.1:{args.port} — the keep_scoring sensor trains a model if none is "
            f"promoted, then scores the stream into {settings.home}; Ctrl-C stops everything",
            file=sys.stderr,
        )
        code = stack.wait()
    except KeyboardInterrupt:
        code = 0
    except BrokerStartError as exc:
        raise CommandError(str(exc)) from None
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the ordered stop short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
    # Every process of the stack is gone and every file closed: skip the interpreter's teardown of the
    # Dagster, pandas and scikit-learn modules this process loaded, which takes seconds of the user's wait.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
