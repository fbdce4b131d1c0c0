"""The commands that move payments: send synthetic ones, replay a file, score the stream."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from payment_platform.cli.arguments import (
    CommandError,
    Subcommands,
    non_negative_float,
    non_negative_int,
    positive_int,
    positive_rate,
    service_error,
)
from payment_platform.settings import Settings

if TYPE_CHECKING:
    from payment_platform.sources.feed import PaymentFeed

logger = logging.getLogger("payment_platform")


def add_commands(commands: Subcommands) -> None:
    produce = commands.add_parser("produce", help="send synthetic payments, and their labels later in event time")
    produce.add_argument("--rate", type=positive_rate, default=10.0, help="mean payments per second, or 'max'")
    produce.add_argument("--count", type=positive_int, default=None, help="stop after this many payments")
    produce.add_argument("--seed", type=int, default=7)
    produce.add_argument("--label-delay-days", type=non_negative_float, default=7.0)
    produce.add_argument(
        "--backfill-days",
        type=non_negative_float,
        default=0.0,
        help="first send the last D days of the training-sized world at full speed, with their labels",
    )
    produce.add_argument(
        "--heartbeat-file", type=Path, default=None, help="touched as payments go out (a container health check)"
    )
    produce.set_defaults(handler=run_produce)

    replay = commands.add_parser("replay", help="replay a historical payments file (CSV or Parquet)")
    replay.add_argument("file", type=Path)
    replay.add_argument("--rate", type=positive_rate, default=None, help="payments per second, or 'max' (default)")
    replay.add_argument("--label-delay-days", type=non_negative_float, default=7.0)
    replay.set_defaults(handler=run_replay)

    score = commands.add_parser("score", help="run the streaming scorer in the foreground")
    score.add_argument("--max-messages", type=positive_int, default=None)
    score.add_argument("--idle-timeout-s", type=non_negative_float, default=None)
    score.add_argument("--batch-size", type=positive_int, default=5_000)
    score.add_argument(
        "--max-idle-ms",
        type=non_negative_int,
        default=20,
        help="how long a partition at its end holds the others back before it counts as idle (replays: more)",
    )
    score.set_defaults(handler=run_score)


def payment_feed(settings: Settings, label_delay_days: float) -> PaymentFeed:
    from payment_platform.kafka.clients import BrokerUnavailable
    from payment_platform.sources.feed import open_payment_feed

    try:
        return open_payment_feed(settings, label_delay_days)
    except BrokerUnavailable as exc:
        raise CommandError(str(exc)) from None


def run_produce(args: argparse.Namespace, settings: Settings) -> int:
    from payment_platform.sources.synthetic import produce_recent_past, produce_synthetic, rate_now
    from payment_platform.world import World

    feed = payment_feed(settings, args.label_delay_days)
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


def run_replay(args: argparse.Namespace, settings: Settings) -> int:
    from payment_platform.sources.replay import ReplayFileError, read_history_file, replay

    try:
        frame = read_history_file(args.file)
    except ReplayFileError as exc:
        raise CommandError(str(exc)) from None
    feed = payment_feed(settings, args.label_delay_days)
    with tqdm(total=len(frame), unit="payment", desc="replay", mininterval=1, file=sys.stderr) as bar:

        def progress(done: int) -> None:
            bar.update(done - bar.n)

        sent = replay(feed, frame, rate=args.rate, on_progress=progress)
    print(f"replayed {sent:,} payments and {feed.labels_sent:,} labels from {args.file}", file=sys.stderr)
    return 0


def run_score(args: argparse.Namespace, settings: Settings) -> int:
    from payment_platform.kafka.clients import BrokerUnavailable
    from payment_platform.kafka.delivery import DeliveryStopped
    from payment_platform.model import ModelRegistryError
    from payment_platform.store.database import StoreUnavailable
    from payment_platform.store.errors import StoreLost, StoreRefused
    from payment_platform.stream.config import ScorerConfig
    from payment_platform.stream.model_source import NoPromotedModel
    from payment_platform.stream.runner import run_scorer

    config = ScorerConfig.from_settings(settings, batch_size=args.batch_size, max_idle_ms=args.max_idle_ms)
    try:
        stats = run_scorer(
            config,
            max_messages=args.max_messages,
            idle_timeout_s=args.idle_timeout_s,
            on_progress=lambda s: logger.info(s.summary()),
        )
    except (NoPromotedModel, ModelRegistryError, BrokerUnavailable, StoreUnavailable, StoreRefused, StoreLost) as exc:
        raise service_error(exc) from None
    except DeliveryStopped as exc:
        raise CommandError(str(exc)) from None
    print(stats.summary())
    return 0


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


def _stop_flag() -> Callable[[], bool]:
    """A callable that turns true after SIGTERM or SIGINT, so loops end cleanly."""
    stopped = {"flag": False}

    def handle(signum: int, frame: object) -> None:
        stopped["flag"] = True

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return lambda: stopped["flag"]
