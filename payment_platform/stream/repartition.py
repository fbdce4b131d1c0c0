"""Stage one of the scorer: the payments of the input partitions this process owns, re-keyed by card.

Producers key payments however they like, or not at all; a card's state must nevertheless live with one
scorer and see the card's payments in event-time order. So each valid payment is forwarded to the
platform's card-keyed topic (Kafka Streams' repartition topic), invalid ones go to the DLQ, and after the
payments of each input partition comes a watermark record to every partition of the card-keyed topic:
"this input has sent everything before this event time", or "this input is idle, at its end for
max_idle_ms". From those, the scorer of each card-keyed partition knows when no earlier payment can still
come (stream/event_time.py), however many processes forward.

Input offsets are committed once the broker has confirmed every record they produced.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass

from confluent_kafka import Message, TopicPartition

from payment_platform.kafka.delivery import DeliveryTracker
from payment_platform.stream.intake import DeadLetter, keyed_by_card, payment_of
from payment_platform.stream.records import MAX_BATCH, PaymentBatch, RoutedPayment, Watermark, encode, shard_of

logger = logging.getLogger(__name__)


@dataclass
class _Input:
    event_us: int | None = None  # newest event time forwarded
    paused: bool = False
    end_since: float | None = None  # monotonic time since the partition is at its end
    sent: tuple[int | None, bool] | None = None  # the last watermark sent: (event_us, idle)
    sent_at: float = 0.0
    offset: int | None = None  # last consumed offset, not yet in a ticket


@dataclass
class RepartitionCounts:
    forwarded: int = 0
    dead_lettered: int = 0
    mis_keyed: int = 0


class Repartitioner:
    """Forwards owned input partitions to the card-keyed topic, with watermarks."""

    def __init__(
        self,
        records: DeliveryTracker,
        payment_topic: str,
        by_card_topic: str,
        dlq_topic: str,
        shards: int,
        max_idle_ms: int,
        heartbeat_s: float,
        max_skew_ms: int,
    ) -> None:
        self.records = records
        self.payment_topic = payment_topic
        self.by_card_topic = by_card_topic
        self.dlq_topic = dlq_topic
        self.shards = shards
        self.max_idle_s = max_idle_ms / 1_000
        self.heartbeat_s = heartbeat_s
        self.max_skew_us = max_skew_ms * 1_000
        self.counts = RepartitionCounts()
        self._inputs: dict[int, _Input] = {}
        self._ticket = records.open()
        self._ticket_offsets: dict[int, int] = {}
        self._in_flight: deque[tuple[int, dict[int, int]]] = deque()
        self._mis_keyed_logged = 0.0
        self._outgoing: list[list[RoutedPayment]] = [[] for _ in range(shards)]

    def assigned(self, partitions: list[int]) -> None:
        for partition in partitions:
            self._inputs.setdefault(partition, _Input())

    def revoked(self, partitions: list[int]) -> None:
        for partition in partitions:
            self._inputs.pop(partition, None)
            self._ticket_offsets.pop(partition, None)

    def take(self, message: Message, partition: int, offset: int, now_us: int) -> None:
        """One consumed message of an owned input partition, at `partition` and `offset`."""
        state = self._inputs.setdefault(partition, _Input())
        state.end_since = None
        state.offset = offset
        self._ticket_offsets[partition] = offset
        routed = payment_of(message, partition, offset, now_us)
        if isinstance(routed, DeadLetter):
            self.records.send(self._ticket, self.dlq_topic, routed.value, routed.key, routed.headers)
            self.counts.dead_lettered += 1
            return
        if not keyed_by_card(message, routed):
            self._mis_keyed(routed)
        self._outgoing[shard_of(routed.customer_id, self.shards)].append(routed)
        self.counts.forwarded += 1
        if state.event_us is None or routed.event_us > state.event_us:
            state.event_us = routed.event_us

    def at_end(self, partition: int) -> None:
        state = self._inputs.get(partition)
        if state is not None and state.end_since is None:
            state.end_since = time.monotonic()

    def flush(self) -> None:
        """Send this round's payments, a batch per card-keyed partition, then the watermarks that moved (or
        are due again) after them, and close the round's ticket."""
        for shard, payments in enumerate(self._outgoing):
            for start in range(0, len(payments), MAX_BATCH):
                value = encode(PaymentBatch(payments[start : start + MAX_BATCH]))
                self.records.send(self._ticket, self.by_card_topic, value, partition=shard)
        self._outgoing = [[] for _ in range(self.shards)]
        now = time.monotonic()
        for partition, state in self._inputs.items():
            idle = state.end_since is not None and now - state.end_since >= self.max_idle_s
            mark = (state.event_us, idle)
            if state.event_us is None and not idle:
                continue  # nothing known yet: the input holds the others until it has a payment or is idle
            if mark != state.sent or now - state.sent_at >= self.heartbeat_s:
                value = encode(Watermark(partition, state.event_us or 0, idle))
                for shard in range(self.shards):
                    self.records.send(self._ticket, self.by_card_topic, value, partition=shard)
                state.sent, state.sent_at = mark, now
        self.records.close(self._ticket)
        self._in_flight.append((self._ticket, self._ticket_offsets))
        self._ticket, self._ticket_offsets = self.records.open(), {}
        self.records.poll()

    def to_pause(self) -> tuple[list[int], list[int]]:
        """(inputs to pause, inputs to resume): an input more than max_skew ahead of the slowest active one
        waits. Every card-keyed partition releases a payment only once all inputs have passed it, so an
        input the client happens to fetch first would only fill their buffers (watermark alignment)."""
        now = time.monotonic()
        active = [
            state.event_us
            for state in self._inputs.values()
            if state.event_us is not None
            and not (state.end_since is not None and now - state.end_since >= self.max_idle_s)
        ]
        slowest = min(active, default=None)
        pause, resume = [], []
        for partition, state in self._inputs.items():
            ahead = slowest is not None and state.event_us is not None and state.event_us - slowest
            if not state.paused and ahead and ahead > self.max_skew_us:
                state.paused = True
                pause.append(partition)
            elif state.paused and not (ahead and ahead > self.max_skew_us // 2):
                state.paused = False
                resume.append(partition)
        return pause, resume

    def committable(self) -> list[TopicPartition]:
        """Input offsets whose records are all delivered, in order."""
        ready: dict[int, int] = {}
        while self._in_flight and self.records.done(self._in_flight[0][0]):
            _, offsets = self._in_flight.popleft()
            ready.update(offsets)
        return [
            TopicPartition(self.payment_topic, partition, offset + 1)
            for partition, offset in ready.items()
            if partition in self._inputs
        ]

    def _mis_keyed(self, routed: RoutedPayment) -> None:
        self.counts.mis_keyed += 1
        now = time.monotonic()
        if now - self._mis_keyed_logged >= 60:
            self._mis_keyed_logged = now
            logger.info(
                "payments not keyed by customer_id (%s so far, e.g. from %s[%d]): scored the same, one hop later; "
                "key payments by customer_id to save it",
                f"{self.counts.mis_keyed:,}",
                self.payment_topic,
                routed.source_partition,
            )
