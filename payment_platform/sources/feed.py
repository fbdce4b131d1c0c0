"""Sends payment frames to Kafka as contract messages, and their labels a delay later in event time."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np
import orjson
import pandas as pd
from confluent_kafka import Producer

from payment_platform.settings import Settings

US_PER_DAY = 86_400 * 1_000_000


def event_us(frame: pd.DataFrame) -> np.ndarray:
    """Event times of a payment frame as epoch microseconds."""
    return frame["event_time"].dt.tz_convert("UTC").dt.as_unit("us").astype("int64").to_numpy()


def payment_values(frame: pd.DataFrame) -> list[bytes]:
    """The `payments` message values (CONTRACTS §1) of a payment frame."""
    stamps = np.datetime_as_string(event_us(frame).astype("datetime64[us]"), unit="us")
    columns = zip(
        frame["transaction_id"].tolist(),
        frame["customer_id"].tolist(),
        frame["terminal_id"].tolist(),
        frame["amount"].tolist(),
        frame["currency"].tolist(),
        stamps.tolist(),
        strict=True,
    )
    return [
        orjson.dumps(
            {
                "transaction_id": tx,
                "customer_id": card,
                "terminal_id": terminal,
                "amount": amount,
                "currency": currency,
                "timestamp": stamp + "Z",
            }
        )
        for tx, card, terminal, amount, currency, stamp in columns
    ]


@dataclass
class PaymentFeed:
    """Produces payments keyed by card, and each label once the stream passes its due time."""

    producer: Producer
    payment_topic: str
    labels_topic: str
    label_delay_days: float
    payments_sent: int = 0
    labels_sent: int = 0
    _pending: list[tuple[int, str, bool]] = field(default_factory=list)

    def send(self, frame: pd.DataFrame) -> None:
        """Send the frame's payments in order; schedule their labels if the frame has `is_fraud`."""
        if frame.empty:
            return
        times = event_us(frame)
        for key, value in zip(frame["customer_id"].tolist(), payment_values(frame), strict=True):
            self._produce(self.payment_topic, key, value)
        self.payments_sent += len(frame)
        if "is_fraud" in frame and self.label_delay_days >= 0:
            due = times + round(self.label_delay_days * US_PER_DAY)
            flags = frame["is_fraud"].fillna(0).astype(bool).tolist()
            for item in zip(due.tolist(), frame["transaction_id"].tolist(), flags, strict=True):
                heapq.heappush(self._pending, item)
        self.send_due_labels(int(times.max()))

    def send_due_labels(self, stream_us: int) -> None:
        """Labels whose payment time + delay the stream has passed."""
        while self._pending and self._pending[0][0] <= stream_us:
            due, transaction_id, is_fraud = heapq.heappop(self._pending)
            self._send_label(transaction_id, is_fraud, due)

    def send_pending_labels(self) -> None:
        """The labels still pending at the end of a file: history loaded file by file is complete."""
        while self._pending:
            due, transaction_id, is_fraud = heapq.heappop(self._pending)
            self._send_label(transaction_id, is_fraud, due)

    @property
    def pending_labels(self) -> int:
        return len(self._pending)

    def flush(self, timeout_s: float = 60.0) -> None:
        remaining = self.producer.flush(timeout_s)
        if remaining:
            raise RuntimeError(f"{remaining} messages not delivered to Kafka within {timeout_s:.0f}s")

    def _send_label(self, transaction_id: str, is_fraud: bool, due_us: int) -> None:
        stamp = np.datetime_as_string(np.datetime64(due_us, "us"), unit="us") + "Z"
        value = orjson.dumps({"transaction_id": transaction_id, "is_fraud": is_fraud, "labelled_at": stamp})
        self._produce(self.labels_topic, transaction_id, value)
        self.labels_sent += 1

    def _produce(self, topic: str, key: str, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(topic, key=key.encode(), value=value)
                return
            except BufferError:  # local queue full: let deliveries drain
                self.producer.poll(0.05)


def open_payment_feed(settings: Settings, label_delay_days: float) -> PaymentFeed:
    """A feed to the configured topics (created when missing); BrokerUnavailable when none answers."""
    from payment_platform.kafka.clients import check_broker, ensure_topics, payment_producer

    check_broker(settings.kafka_bootstrap)
    ensure_topics(settings.kafka_bootstrap, [settings.payment_topic, settings.labels_topic, settings.dlq_topic])
    return PaymentFeed(
        payment_producer(settings.kafka_bootstrap), settings.payment_topic, settings.labels_topic, label_delay_days
    )
