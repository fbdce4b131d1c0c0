"""An in-memory Kafka for the scorer's unit tests: topics of partitioned logs, a producer that appends to
them (reporting deliveries when polled, or failing them on demand), and a one-member consumer group that
reads them with end-of-partition events. Integration tests use the real broker; this double only makes the
scorer's own logic quick to test."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, TopicPartition


@dataclass
class FakeMessage:
    _topic: str
    _partition: int
    _offset: int
    _key: bytes | None
    _value: bytes | None
    _headers: list[tuple[str, bytes]] | None = None
    _error: KafkaError | None = None
    _timestamp_ms: int = 0

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def error(self) -> KafkaError | None:
        return self._error

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp_ms)


@dataclass
class FakeBroker:
    partitions: int = 4
    logs: dict[str, list[list[FakeMessage]]] = field(default_factory=dict)
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    commits: list[list[TopicPartition]] = field(default_factory=list)

    def log(self, topic: str) -> list[list[FakeMessage]]:
        return self.logs.setdefault(topic, [[] for _ in range(self.partitions)])

    def append(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        partition: int | None,
        headers: Any = None,
        timestamp_ms: int = 0,
    ) -> FakeMessage:
        log = self.log(topic)
        if partition is None or partition < 0:
            partition = zlib.crc32(key) % self.partitions if key is not None else 0
        message = FakeMessage(topic, partition, len(log[partition]), key, value, headers, None, timestamp_ms)
        log[partition].append(message)
        return message

    def messages(self, topic: str) -> list[FakeMessage]:
        return [m for partition in self.log(topic) for m in partition]


class FakeProducer:
    """Appends on produce; reports each delivery at the next poll/flush (or a failure, while `failing`)."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.failing = False
        self._pending: list[tuple[Callable[..., None] | None, tuple[Any, ...]]] = []

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int = -1,
        headers: Any = None,
        on_delivery: Callable[..., None] | None = None,
        **_: Any,
    ) -> None:
        self._pending.append((on_delivery, (topic, value, key, partition, headers)))

    def poll(self, timeout: float = 0) -> int:
        pending, self._pending = self._pending, []
        for callback, (topic, value, key, partition, headers) in pending:
            if self.failing:
                failed = FakeMessage(topic, partition, -1, key, value, headers)
                if callback:
                    callback(KafkaError(KafkaError._MSG_TIMED_OUT), failed)
                continue
            message = self.broker.append(topic, value, key, partition, headers)
            if callback:
                callback(None, message)
        return len(pending)

    def flush(self, timeout: float = 0) -> int:
        self.poll()
        return 0

    def __len__(self) -> int:
        return len(self._pending)


class FakeConsumer:
    """One member of a group: on subscribe it is given every partition of the topics."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.positions: dict[tuple[str, int], int] = {}
        self.paused: set[tuple[str, int]] = set()
        self.at_end: set[tuple[str, int]] = set()
        self.closed = False
        self._assigned: list[TopicPartition] = []

    def subscribe(
        self,
        topics: list[str],
        on_assign: Callable[..., None] | None = None,
        on_revoke: Callable[..., None] | None = None,
        **_: Any,
    ) -> None:
        self._assigned = [TopicPartition(t, p) for t in topics for p in range(self.broker.partitions)]
        for tp in self._assigned:
            self.positions[tp.topic, tp.partition] = self.broker.committed.get((tp.topic, tp.partition), 0)
        if on_assign:
            on_assign(self, list(self._assigned))

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        out: list[Any] = []
        for tp in self._assigned:
            key = (tp.topic, tp.partition)
            if key in self.paused:
                continue
            log = self.broker.log(tp.topic)[tp.partition]
            position = self.positions[key]
            taken = log[position : position + max(num_messages - len(out), 0)]
            out += taken
            self.positions[key] = position + len(taken)
            if self.positions[key] >= len(log) and key not in self.at_end:
                self.at_end.add(key)
                out.append(
                    FakeMessage(
                        tp.topic,
                        tp.partition,
                        self.positions[key],
                        None,
                        None,
                        _error=KafkaError(KafkaError._PARTITION_EOF),
                    )
                )
            elif taken:
                self.at_end.discard(key)
        return out

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = False) -> None:
        self.broker.commits.append(offsets)
        for tp in offsets:
            self.broker.committed[tp.topic, tp.partition] = tp.offset

    def assignment(self) -> list[TopicPartition]:
        return list(self._assigned)

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused |= {(tp.topic, tp.partition) for tp in partitions}

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused -= {(tp.topic, tp.partition) for tp in partitions}

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.positions[tp.topic, tp.partition]) for tp in partitions]

    def get_watermark_offsets(self, tp: TopicPartition, **_: Any) -> tuple[int, int]:
        return 0, len(self.broker.log(tp.topic)[tp.partition])

    def close(self) -> None:
        self.closed = True
