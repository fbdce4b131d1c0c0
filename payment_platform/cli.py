"""The `payment-platform` command line (CONTRACTS §4).

Every command exits non-zero with a one-line reason on bad arguments or an unreachable service,
and never prints a password.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm import tqdm

from payment_platform.bench.options import add_arguments as add_bench_arguments
from payment_platform.settings import Settings, SettingsError

logger = logging.getLogger("payment_platform")


class CommandError(Exception):
    """A failure the user can fix; its text is printed as one line."""


def _positive_rate(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of payments per second or 'max', got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("the rate must be positive")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="payment-platform",
        description="Real-time payment fraud scoring on Kafka and MySQL, orchestrated by Dagster.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    broker = commands.add_parser("broker", help="run the embedded Kafka-compatible broker and create the topics")
    broker.add_argument("--port", type=_positive_int, default=9092)

    produce = commands.add_parser("produce", help="send synthetic payments, and their labels later in event time")
    produce.add_argument("--rate", type=_positive_rate, default=10.0, help="mean payments per second, or 'max'")
    produce.add_argument("--count", type=_positive_int, default=None, help="stop after this many payments")
    produce.add_argument("--seed", type=int, default=7)
    produce.add_argument("--label-delay-days", type=_non_negative_float, default=7.0)
    produce.add_argument(
        "--backfill-days",
        type=_non_negative_float,
        default=0.0,
        help="first send the last D days of the training-sized world at full speed, with their labels",
    )
    produce.add_argument(
        "--heartbeat-file", type=Path, default=None, help="touched as payments go out (a container health check)"
    )

    replay = commands.add_parser("replay", help="replay a historical payments file (CSV or Parquet)")
    replay.add_argument("file", type=Path)
    replay.add_argument("--rate", type=_positive_rate, default=None, help="payments per second, or 'max' (default)")
    replay.add_argument("--label-delay-days", type=_non_negative_float, default=7.0)

    train = commands.add_parser("train", help="train, measure, check and promote a model through Dagster")
    train.add_argument("--source", choices=["synthetic", "database"], default="synthetic")
    train.add_argument("--until", type=_date, default=None, help="last day of the training window (event time)")

    score = commands.add_parser("score", help="run the streaming scorer in the foreground")
    score.add_argument("--max-messages", type=_positive_int, default=None)
    score.add_argument("--idle-timeout-s", type=_non_negative_float, default=None)
    score.add_argument("--batch-size", type=_positive_int, default=5_000)

    console = commands.add_parser("console", help="the fraud operations console (web)")
    console.add_argument("--port", type=_positive_int, default=8050)
    console.add_argument(
        "--host", default="127.0.0.1", help="address to bind; anything but loopback makes every page need a login"
    )
    console.add_argument(
        "--hash-password",
        action="store_true",
        help="print the hash of a password (typed or piped) for the accounts file",
    )

    bench = commands.add_parser("bench", help="measure throughput, latency and memory against this machine's ceilings")
    add_bench_arguments(bench)

    dev = commands.add_parser("dev", help="local quick start: embedded broker, Dagster UI on :3000, a producer")
    dev.add_argument("--port", type=_positive_int, default=3000, help="port of the Dagster UI")
    dev.add_argument("--rate", type=_positive_rate, default=10.0, help="producer's mean payments per second")
    dev.add_argument(
        "--backfill-days",
        type=_non_negative_float,
        default=14.0,
        help="days of recent past the producer sends first, with their labels (0: none)",
    )
    dev.add_argument("--console-port", type=_positive_int, default=8050, help="port of the fraud operations console")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler = globals()[f"command_{args.command}"]
    try:
        settings = Settings.from_env()
        return int(handler(args, settings) or 0)
    except SettingsError as exc:
        print(f"payment-platform {args.command}: {exc}", file=sys.stderr)
        return 1
    except CommandError as exc:
        print(f"payment-platform {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _fail_on_service_errors(exc: Exception) -> CommandError:
    return CommandError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def command_broker(args: argparse.Namespace, settings: Settings) -> int:
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


def _feed(settings: Settings, label_delay_days: float):
    from payment_platform.kafka.clients import (
        BrokerUnavailable,
        check_broker,
        ensure_topics,
        payment_producer,
    )
    from payment_platform.sources.feed import PaymentFeed

    try:
        check_broker(settings.kafka_bootstrap)
        ensure_topics(settings.kafka_bootstrap, [settings.payment_topic, settings.labels_topic, settings.dlq_topic])
    except BrokerUnavailable as exc:
        raise CommandError(str(exc)) from None
    return PaymentFeed(
        payment_producer(settings.kafka_bootstrap),
        settings.payment_topic,
        settings.labels_topic,
        label_delay_days,
    )


def command_produce(args: argparse.Namespace, settings: Settings) -> int:
    from payment_platform.sources.synthetic import produce_recent_past, produce_synthetic, rate_now
    from payment_platform.world import World

    feed = _feed(settings, args.label_delay_days)
    stop = _stop_flag()
    beat = _heartbeat(args.heartbeat_file)
    if args.backfill_days:
        # The training-sized world (the one the model learned from): its recent past goes out in seconds.
        past = World(seed=args.seed)
        with tqdm(unit="payment", desc="recent past", mininterval=2, file=sys.stderr) as bar:
            sent = produce_recent_past(
                feed, past, args.backfill_days, should_stop=stop, on_progress=lambda n: beat(bar.update(n - bar.n))
            )
        print(
            f"sent the last {args.backfill_days:g} days of {past}: {sent:,} payments, {feed.labels_sent:,} labels "
            f"({feed.pending_labels:,} more as their due time passes)",
            file=sys.stderr,
        )
    # Paced, the world is sized so its natural rate is the requested one; at full speed, the
    # training-sized world's recent past is replayed, so behaviour matches what the model learned.
    world = World(seed=args.seed) if args.rate is None else World.for_rate(args.rate, seed=args.seed)
    if args.rate is None:
        pace = "full speed"
    else:
        pace = f"a mean of {args.rate:g}/s over the day's rhythm, ~{rate_now(world):.1f}/s this hour"
    print(f"producing to {settings.payment_topic} at {pace} from {world}", file=sys.stderr)
    with tqdm(total=args.count, unit="payment", desc="produce", mininterval=2, file=sys.stderr) as bar:
        sent = produce_synthetic(
            feed,
            world,
            count=args.count,
            paced=args.rate is not None,
            should_stop=stop,
            on_progress=lambda n: beat(bar.update(n - bar.n)),
        )
    feed.flush()
    print(f"sent {sent:,} payments and {feed.labels_sent:,} labels", file=sys.stderr)
    return 0


def command_replay(args: argparse.Namespace, settings: Settings) -> int:
    from payment_platform.sources.replay import ReplayFileError, read_history_file, replay

    try:
        frame = read_history_file(args.file)
    except ReplayFileError as exc:
        raise CommandError(str(exc)) from None
    feed = _feed(settings, args.label_delay_days)
    with tqdm(total=len(frame), unit="payment", desc="replay", mininterval=1, file=sys.stderr) as bar:

        def progress(done: int) -> None:
            bar.update(done - bar.n)

        sent = replay(feed, frame, rate=args.rate, on_progress=progress)
    print(f"replayed {sent:,} payments and {feed.labels_sent:,} labels from {args.file}", file=sys.stderr)
    return 0


def command_train(args: argparse.Namespace, settings: Settings) -> int:
    from payment_platform.defs.operations import TrainingFailed, train_through_dagster

    try:
        version, metrics = train_through_dagster(settings, source=args.source, until=args.until)
    except TrainingFailed as exc:
        raise CommandError(str(exc)) from None
    summary = ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
    print(f"promoted model {version}: {summary}")
    return 0


def command_score(args: argparse.Namespace, settings: Settings) -> int:
    from payment_platform.kafka.clients import BrokerUnavailable
    from payment_platform.kafka.delivery import DeliveryStopped
    from payment_platform.model import ModelRegistryError
    from payment_platform.store.database import StoreUnavailable
    from payment_platform.store.errors import StoreLost, StoreRefused
    from payment_platform.stream.config import ScorerConfig
    from payment_platform.stream.model_source import NoPromotedModel
    from payment_platform.stream.runner import run_scorer

    config = ScorerConfig.from_settings(settings, batch_size=args.batch_size)
    try:
        stats = run_scorer(
            config,
            max_messages=args.max_messages,
            idle_timeout_s=args.idle_timeout_s,
            on_progress=lambda s: logger.info(s.summary()),
        )
    except (NoPromotedModel, ModelRegistryError, BrokerUnavailable, StoreUnavailable, StoreRefused, StoreLost) as exc:
        raise _fail_on_service_errors(exc) from None
    except DeliveryStopped as exc:
        raise CommandError(str(exc)) from None
    print(stats.summary())
    return 0


def command_console(args: argparse.Namespace, settings: Settings) -> int:
    from payment_platform.console.cli import ConsoleStartError, run_console

    try:
        return run_console(args.host, args.port, settings, hash_password=args.hash_password)
    except ConsoleStartError as exc:
        raise CommandError(str(exc)) from None


def command_bench(args: argparse.Namespace, settings: Settings) -> int:
    from payment_platform.bench.run import run

    return run(args)


def command_dev(args: argparse.Namespace, settings: Settings) -> int:
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


HEARTBEAT_EVERY_S = 10.0


def _heartbeat(path: Path | None) -> Callable[[object], None]:
    """A callable that touches `path` (at most every HEARTBEAT_EVERY_S) each time it is called."""
    last = [0.0]

    def beat(_: object = None) -> None:
        now = time.monotonic()
        if path is not None and now - last[0] >= HEARTBEAT_EVERY_S:
            path.touch()
            last[0] = now

    beat()
    return beat


def _stop_flag():
    """A callable that turns true after SIGTERM or SIGINT, so loops end cleanly."""
    stopped = {"flag": False}

    def handle(signum: int, frame: object) -> None:
        stopped["flag"] = True

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return lambda: stopped["flag"]


if __name__ == "__main__":
    sys.exit(main())
