"""The benchmark's payment load: realistic synthetic payments (plus some invalid ones) and their labels,
produced at once or paced."""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd
from confluent_kafka import Producer

from payment_platform.sources.feed import PaymentFeed
from payment_platform.world import World
from payment_platform.world.population import MEAN_PAYMENTS_PER_CARD

# Days of event time the scored load spans: more than the label delay, so that the labels the feed sends
# 7 days after each payment arrive inside the stream, as they do live (about half the payments get one).
LOAD_DAYS = 14
LABEL_DELAY_DAYS = 7.0
PAYMENTS, LABELS = "payments", "labels"


@dataclass(frozen=True)
class Load:
    """Pre-encoded messages in production order; `valid` of the payment messages pass validation."""

    keys: list[bytes | None]
    values: list[bytes | None]
    label_keys: list[bytes | None]
    label_values: list[bytes | None]
    frame: pd.DataFrame  # the valid payments, in order
    valid: int

    @property
    def total(self) -> int:
        return len(self.values)

    @property
    def labels(self) -> int:
        return len(self.label_values)


class RecordingProducer:
    """Stands in for a Kafka producer under `PaymentFeed`: keeps what the feed sends, by topic, so the
    messages are made once and the bench times only the broker."""

    def __init__(self) -> None:
        self.sent: dict[str, list[tuple[bytes | None, bytes | None]]] = defaultdict(list)

    def produce(self, topic: str, key: bytes | None = None, value: bytes | None = None, **_: Any) -> None:
        self.sent[topic].append((key, value))

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = 0) -> int:
        return 0


def world_payments(count: int, seed: int = 11, days: int = LOAD_DAYS) -> pd.DataFrame:
    """`count` payments of a world sized so that about `days` days hold them, ending yesterday (event time)."""
    world = World(seed=seed, n_cards=max(50, round(count / (days * MEAN_PAYMENTS_PER_CARD))))
    span = max(1, -(-count // int(world.expected_payments_per_day)))
    last = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    frame = world.days(last - dt.timedelta(days=span), last)
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
    """Valid payments keyed by card as the synthetic feed sends them, with the labels it sends within the
    stream (7 days after each payment, event time), and the invalid messages spread evenly among them."""
    frame = world_payments(valid, seed)
    recorder = RecordingProducer()
    PaymentFeed(recorder, PAYMENTS, LABELS, LABEL_DELAY_DAYS).send(frame)  # type: ignore[arg-type]
    keys, values = (list(column) for column in zip(*recorder.sent[PAYMENTS], strict=True))
    label_pairs = recorder.sent.get(LABELS, [])
    label_keys = [key for key, _ in label_pairs]
    label_values = [value for _, value in label_pairs]
    bad = invalid_values(invalid)
    step = max(1, valid // max(invalid, 1))
    for i in reversed(range(invalid)):
        position = min((i + 1) * step, len(values))
        values.insert(position, bad[i])
        keys.insert(position, f"C-bad-{i}".encode())
    return Load(keys, values, label_keys, label_values, frame, valid)


def produce_all(
    producer: Producer,
    topic: str,
    keys: list[bytes | None],
    values: list[bytes | None],
    on_progress: Callable[[int], None],
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
) -> np.ndarray:
    """Offer `rate` payments/s for `duration_s`: payment n is due n / rate seconds after the start.

    Each is stamped with `event_time_s(n)` (epoch seconds), by default the wall clock as it is sent.
    Cards, terminals and amounts cycle through `pool`; transaction ids are `{id_prefix}{n}`, so the run's
    rows and decisions can be told apart. Returns when each payment was handed to the producer (epoch
    seconds, by n): the start of its latency.
    """
    cards = pool["customer_id"].tolist()
    terminals = pool["terminal_id"].tolist()
    amounts = pool["amount"].tolist()
    produced: list[float] = []
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < duration_s:
        due = int(rate * elapsed) - len(produced)
        for _ in range(due):
            n = len(produced)
            row = n % len(cards)
            now = time.time()
            value = orjson.dumps(
                {
                    "transaction_id": f"{id_prefix}{n}",
                    "customer_id": cards[row],
                    "terminal_id": terminals[row],
                    "amount": amounts[row],
                    "currency": "EUR",
                    "timestamp": now if event_time_s is None else event_time_s(n),
                }
            )
            producer.produce(topic, key=cards[row].encode(), value=value)
            produced.append(now)
        producer.poll(0)
        on_progress(len(produced))
        time.sleep(0.001)
    producer.flush(30)
    return np.array(produced)
