"""The benchmark's payment load: realistic synthetic payments (plus some invalid ones), produced at once or paced."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
import pandas as pd
from confluent_kafka import Producer

from payment_platform.sources.feed import payment_values
from payment_platform.world import World

# Cards per payment in the scored load: about three days of a world's traffic, so cards carry some history.
PAYMENTS_PER_CARD = 6


@dataclass(frozen=True)
class Load:
    """Pre-encoded messages in production order; `valid` of them are payments that pass validation."""

    keys: list[bytes]
    values: list[bytes | None]
    frame: pd.DataFrame  # the valid payments, in order
    valid: int

    @property
    def total(self) -> int:
        return len(self.values)


def world_payments(count: int, seed: int = 11) -> pd.DataFrame:
    """`count` payments of a world sized so its recent days hold them, ending yesterday (event time)."""
    world = World(seed=seed, n_cards=max(500, count // PAYMENTS_PER_CARD))
    days = max(1, -(-count // int(world.expected_payments_per_day)))
    last = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    frame = world.days(last - dt.timedelta(days=days), last)
    return frame.iloc[:count].reset_index(drop=True)


def invalid_values(count: int) -> list[bytes | None]:
    """Messages breaking the payment contract in varied ways (they go to the DLQ)."""
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat()
    variants: list[Callable[[int], bytes | None]] = [
        lambda i: b"not json",
        lambda i: b"[1, 2, 3]",
        lambda i: None,
        lambda i: orjson.dumps({"customer_id": "C1", "amount": 10.0}),
        lambda i: orjson.dumps({"transaction_id": f"bad-{i}", "customer_id": "C1", "amount": -5}),
        lambda i: orjson.dumps({"transaction_id": f"bad-{i}", "customer_id": "C1", "amount": 5, "currency": "eur"}),
        lambda i: orjson.dumps({"transaction_id": f"bad-{i}", "customer_id": "C1", "amount": 5, "timestamp": future}),
        lambda i: orjson.dumps({"transaction_id": "x" * 65, "customer_id": "C1", "amount": 10.0}),
    ]
    return [variants[i % len(variants)](i) for i in range(count)]


def build_load(valid: int, invalid: int, seed: int = 11) -> Load:
    """Valid payments with the invalid ones spread evenly among them."""
    frame = world_payments(valid, seed)
    keys = [card.encode() for card in frame["customer_id"].tolist()]
    values: list[bytes | None] = list(payment_values(frame))
    bad = invalid_values(invalid)
    step = max(1, valid // max(invalid, 1))
    for i in reversed(range(invalid)):
        position = min((i + 1) * step, len(values))
        values.insert(position, bad[i])
        keys.insert(position, f"C-bad-{i}".encode())
    return Load(keys, values, frame, valid)


def produce_all(
    producer: Producer, topic: str, keys: list[bytes], values: list[bytes | None], on_progress: Callable[[int], None]
) -> None:
    """Send everything as fast as the client takes it, then wait for delivery."""
    for i, (key, value) in enumerate(zip(keys, values, strict=True)):
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
            on_progress(i)
    remaining = producer.flush(60)
    if remaining:
        raise RuntimeError(f"{remaining} messages not delivered within 60s")
    on_progress(len(values))


def produce_paced(
    producer: Producer,
    topic: str,
    pool: pd.DataFrame,
    *,
    rate: float,
    duration_s: float,
    id_prefix: str,
    on_progress: Callable[[int], None],
    event_time_s: Callable[[int], float] | None = None,
) -> int:
    """Offer `rate` payments/s for `duration_s`: payment n is due n / rate seconds after the start.

    Each is stamped with `event_time_s(n)` (epoch seconds), by default the wall clock as it is sent.
    Cards, terminals and amounts cycle through `pool`; transaction ids are `{id_prefix}{n}`, so the run's
    rows can be told apart afterwards. Returns the number sent.
    """
    cards = pool["customer_id"].tolist()
    terminals = pool["terminal_id"].tolist()
    amounts = pool["amount"].tolist()
    sent = 0
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < duration_s:
        due = int(rate * elapsed) - sent
        for _ in range(due):
            row = sent % len(cards)
            value = orjson.dumps(
                {
                    "transaction_id": f"{id_prefix}{sent}",
                    "customer_id": cards[row],
                    "terminal_id": terminals[row],
                    "amount": amounts[row],
                    "currency": "EUR",
                    "timestamp": time.time() if event_time_s is None else event_time_s(sent),
                }
            )
            producer.produce(topic, key=cards[row].encode(), value=value)
            sent += 1
        producer.poll(0)
        on_progress(sent)
        time.sleep(0.002)
    producer.flush(30)
    return sent
