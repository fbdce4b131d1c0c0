"""Analyst verdicts sent as fraud labels on the labels topic (CONTRACTS §1, Label), so the scorer's features
and the next training run learn from them like from any chargeback."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import orjson
from confluent_kafka import KafkaError, Message, Producer

from payment_platform.kafka.clients import payment_producer


class LabelNotDelivered(RuntimeError):
    """The broker did not acknowledge every label of a verdict."""


@dataclass(frozen=True)
class AnalystLabel:
    transaction_id: str
    is_fraud: bool
    labelled_at: dt.datetime  # naive UTC
    analyst: str

    @property
    def source(self) -> str:
        return f"analyst:{self.analyst}"

    def value(self) -> bytes:
        return orjson.dumps(
            {
                "transaction_id": self.transaction_id,
                "is_fraud": self.is_fraud,
                "labelled_at": self.labelled_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "source": self.source,
            }
        )


class LabelSink(Protocol):
    def publish(self, labels: Sequence[AnalystLabel]) -> None: ...


class KafkaLabelSink:
    """Produces labels keyed by transaction_id and waits until the broker has them all (acks=all)."""

    def __init__(self, bootstrap: str, topic: str, timeout_s: float = 15.0) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.timeout_s = timeout_s
        self._producer: Producer | None = None
        self._lock = threading.Lock()

    def _client(self) -> Producer:
        with self._lock:
            if self._producer is None:
                self._producer = payment_producer(self.bootstrap, **{"linger.ms": 0, "message.timeout.ms": 10_000})
            return self._producer

    def publish(self, labels: Sequence[AnalystLabel]) -> None:
        producer = self._client()
        failures: list[str] = []
        delivered = 0

        def report(error: KafkaError | None, _message: Message) -> None:
            nonlocal delivered
            if error is None:
                delivered += 1
            else:
                failures.append(error.str())

        for label in labels:
            producer.produce(
                self.topic, key=label.transaction_id.encode("utf-8"), value=label.value(), on_delivery=report
            )
        producer.flush(self.timeout_s)
        if failures or delivered != len(labels):
            reason = failures[0] if failures else f"no acknowledgement within {self.timeout_s:g} s"
            raise LabelNotDelivered(f"{len(labels) - delivered} of {len(labels)} labels not delivered: {reason}")

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.flush(self.timeout_s)
                self._producer = None
