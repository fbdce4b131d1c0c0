"""The `payment-platform` command line (CONTRACTS §4).

Every command exits non-zero with a one-line reason on bad arguments or an unreachable service,
and never prints a password.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from payment_platform.bench.options import add_arguments as add_bench_arguments
from payment_platform.settings import Settings

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
    dev.add_argument("--rate", type=_positive_rate, default=10.0, help="producer rate in payments per second")
    dev.add_argument("--console-port", type=_positive_int, default=8050, help="port of the fraud operations console")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    settings = Settings.from_env()
    handler = globals()[f"command_{args.command}"]
    try:
        return int(handler(args, settings) or 0)
    except CommandError as exc:
        print(f"payment-platform {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _fail_on_service_errors(exc: Exception) -> CommandError:
    return CommandError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def command_broker(args: argparse.Namespace, settings: Settings) -> int:
    from payment_platform.kafka.clients import ensure_topics
    from payment_platform.kafka.embedded_broker import BrokerStartError, start_embedded_broker

    try:
        process = start_embedded_broker(port=args.port)
    except BrokerStartError as exc:
        raise CommandError(str(exc)) from None
    bootstrap = f"127.0.0.1:{args.port}"
    ensure_topics(bootstrap, [settings.payment_topic, settings.labels_topic, settings.dlq_topic])
    print(f"embedded broker listening on {bootstrap} (memory only: a restart loses the topics); Ctrl-C stops it")
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        process.wait(10)
        return 0


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
    from payment_platform.sources.synthetic import produce_synthetic
    from payment_platform.world import World

    feed = _feed(settings, args.label_delay_days)
    # Paced, the world is sized so its natural rate is the requested one; at full speed, the
    # training-sized world's recent past is replayed, so behaviour matches what the model learned.
    world = World(seed=args.seed) if args.rate is None else World.for_rate(args.rate, seed=args.seed)
    stop = _stop_flag()
    pace = "full speed" if args.rate is None else f"~{args.rate:g}/s"
    print(f"producing to {settings.payment_topic} at {pace} from {world}", file=sys.stderr)
    with tqdm(total=args.count, unit="payment", desc="produce", mininterval=2, file=sys.stderr) as bar:
        sent = produce_synthetic(
            feed,
            world,
            count=args.count,
            paced=args.rate is not None,
            should_stop=stop,
            on_progress=lambda n: bar.update(n - bar.n),
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
        sent = replay(feed, frame, rate=args.rate, on_progress=lambda n: bar.update(n - bar.n))
    print(f"replayed {sent:,} payments and {feed.labels_sent:,} labels from {args.file}", file=sys.stderr)
    return 0


def command_train(args: argparse.Namespace, settings: Settings) -> int:
    from payment_platform.operations import TrainingFailed, train_through_dagster

    try:
        version, metrics = train_through_dagster(settings, source=args.source, until=args.until)
    except TrainingFailed as exc:
        raise CommandError(str(exc)) from None
    summary = ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
    print(f"promoted model {version}: {summary}")
    return 0


def command_score(args: argparse.Namespace, settings: Settings) -> int:
    from payment_platform.kafka.clients import BrokerUnavailable
    from payment_platform.model import ModelRegistryError
    from payment_platform.store.database import StoreUnavailable
    from payment_platform.stream.model_source import NoPromotedModel
    from payment_platform.stream.runner import ScorerSetup, run_scorer

    setup = ScorerSetup(
        bootstrap=settings.kafka_bootstrap,
        consumer_group=settings.consumer_group,
        payment_topic=settings.payment_topic,
        labels_topic=settings.labels_topic,
        dlq_topic=settings.dlq_topic,
        db_url=settings.db_url,
        model_dir=settings.model_dir,
        batch_size=args.batch_size,
    )
    try:
        stats = run_scorer(
            setup,
            max_messages=args.max_messages,
            idle_timeout_s=args.idle_timeout_s,
            on_progress=lambda s: logger.info(s.summary()),
        )
    except (NoPromotedModel, ModelRegistryError, BrokerUnavailable, StoreUnavailable) as exc:
        raise _fail_on_service_errors(exc) from None
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
    from payment_platform.kafka.clients import ensure_topics
    from payment_platform.kafka.embedded_broker import (
        port_is_open,
        start_embedded_broker,
        stop_embedded_broker,
    )
    from payment_platform.operations import write_embedded_instance_config

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    write_embedded_instance_config(settings)
    env = {**os.environ, "PAYMENT_HOME": str(settings.home), "DAGSTER_HOME": str(settings.dagster_home)}
    host, _, port = settings.kafka_bootstrap.rpartition(":")
    broker = None
    if port_is_open(host or "127.0.0.1", int(port)):
        print(f"using the Kafka broker already listening at {settings.kafka_bootstrap}", file=sys.stderr)
    else:
        broker = start_embedded_broker(port=int(port), log_path=settings.home / "broker.log")
        print(f"started the embedded broker at {settings.kafka_bootstrap}", file=sys.stderr)
    children: list[subprocess.Popen[bytes]] = []
    try:
        ensure_topics(settings.kafka_bootstrap, [settings.payment_topic, settings.labels_topic, settings.dlq_topic])
        rate = "max" if args.rate is None else f"{args.rate:g}"
        producer_log = open(settings.home / "producer.log", "ab")  # noqa: SIM115 - owned by the child
        children.append(
            subprocess.Popen(
                [sys.executable, "-m", "payment_platform.cli", "produce", "--rate", rate],
                env=env,
                stdout=producer_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        from payment_platform.console.accounts import DEV_ANALYST, ensure_dev_account

        users, password_file = ensure_dev_account(settings.home)
        console_env = {**env, "PAYMENT_CONSOLE_USERS_FILE": os.environ.get("PAYMENT_CONSOLE_USERS_FILE", str(users))}
        children.append(
            subprocess.Popen(
                [sys.executable, "-m", "payment_platform.cli", "console", "--port", str(args.console_port)],
                env=console_env,
                start_new_session=True,
            )
        )
        print(
            f"fraud operations console on http://127.0.0.1:{args.console_port} — log in as {DEV_ANALYST} with the "
            f"password in {password_file}",
            file=sys.stderr,
        )
        children.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dagster",
                    "dev",
                    "-m",
                    "payment_platform.definitions",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(args.port),
                ],
                env=env,
                start_new_session=True,
            )
        )
        print(
            f"Dagster UI on http://127.0.0.1:{args.port} — the keep_scoring sensor trains a model if none is "
            f"promoted, then scores the stream into {settings.home}; Ctrl-C stops everything",
            file=sys.stderr,
        )
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        failed = [c for c in children if c.poll() not in (None, 0)]
        return 1 if failed else 0
    except KeyboardInterrupt:
        return 0
    finally:
        # Each child leads its own process group: the signal reaches Dagster's webserver, daemon,
        # code servers and the scoring run too, which then commits its last batch and exits.
        for child in children:
            _signal_group(child, signal.SIGINT)
        for child in children:
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                _signal_group(child, signal.SIGKILL)
            time.sleep(1)
            _signal_group(child, signal.SIGTERM)  # anything of the group still running
        if broker is not None:
            stop_embedded_broker(broker)


def _signal_group(child: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signum)


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
