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


def world_days_from(world: World, start: dt.datetime) -> Iterator[pd.DataFrame]:
    """The world's payments from `start` on, day by day, in event-time order."""
    day = start.date()
    start_us = int(start.timestamp() * 1_000_000)
    while True:
        frame = world.day(day)
        yield frame[event_us(frame) >= start_us]
        day += dt.timedelta(days=1)


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
