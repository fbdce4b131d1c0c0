"""The live synthetic producer: the same world the model trained on, streamed with event time = now."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator

import pandas as pd

from payment_platform.sources.feed import PaymentFeed, event_us
from payment_platform.world import World

logger = logging.getLogger(__name__)

SEND_TICK_S = 0.02
BACKFILL_CHUNK = 10_000


def world_days_from(world: World, start: dt.datetime) -> Iterator[pd.DataFrame]:
    """The world's payments from `start` on, day by day, in event-time order."""
    day = start.date()
    start_us = int(start.timestamp() * 1_000_000)
    while True:
        frame = world.day(day)
        yield frame[event_us(frame) >= start_us]
        day += dt.timedelta(days=1)


def rate_now(world: World, now: dt.datetime | None = None) -> float:
    """Payments per second the paced world sends in the current hour: it follows a daily rhythm
    (night to evening peak) around its mean rate, so this is what a watcher sees now."""
    now = now or dt.datetime.now(dt.UTC)
    times = world.day(now.date())["event_time"]
    return float((times.dt.hour == now.hour).sum()) / 3600


def produce_recent_past(
    feed: PaymentFeed,
    world: World,
    days: float,
    *,
    now: dt.datetime | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Send the world's payments of the last `days` days before `now` at full speed; the number sent.

    This is the platform's recent past: the labels already due (payment time + delay before now) go
    out with it, the others stay pending in the feed and go out as the live stream passes their due
    time. A fresh install then has scored days with matured labels in its first minute."""
    now = now or dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(days=days)
    start_us, now_us = int(start.timestamp() * 1_000_000), int(now.timestamp() * 1_000_000)
    sent = 0
    day = start.date()
    while day <= now.date():
        frame = world.day(day)
        times = event_us(frame)
        frame = frame[(times >= start_us) & (times < now_us)]
        for position in range(0, len(frame), BACKFILL_CHUNK):
            if should_stop():
                return sent
            chunk = frame.iloc[position : position + BACKFILL_CHUNK]
            feed.send(chunk)
            sent += len(chunk)
            feed.producer.poll(0)
            if on_progress:
                on_progress(sent)
        day += dt.timedelta(days=1)
    feed.send_due_labels(now_us)
    feed.flush()
    return sent


def produce_synthetic(
    feed: PaymentFeed,
    world: World,
    *,
    count: int | None = None,
    paced: bool = True,
    should_stop: Callable[[], bool] = lambda: False,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Stream the world's payments until `count` are sent or stopped; the number sent.

    Paced: each payment is sent when its event time arrives, so the rate follows the world's daily
    rhythm around the requested mean. Unpaced: the payments of the last stretch of time before now
    (as many as `count`) go out at full speed, event times in the past.
    """
    now = dt.datetime.now(dt.UTC)
    if paced:
        start = now
    else:
        span_s = (count or world.expected_payments_per_day) / world.expected_payments_per_day * 86_400
        start = now - dt.timedelta(seconds=span_s)
    sent = 0
    for frame in world_days_from(world, start):
        if count is not None:
            frame = frame.iloc[: count - sent]
        times = event_us(frame)
        position = 0
        while position < len(frame):
            if should_stop():
                return sent
            if paced:
                due = int(times.searchsorted(time.time_ns() // 1_000, side="right"))
                if due <= position:
                    time.sleep(SEND_TICK_S)
                    feed.send_due_labels(time.time_ns() // 1_000)
                    continue
            else:
                due = min(position + 10_000, len(frame))
            feed.send(frame.iloc[position:due])
            sent += due - position
            position = due
            feed.producer.poll(0)
            if on_progress:
                on_progress(sent)
        if count is not None and sent >= count:
            break
    feed.flush()
    return sent
