"""The scorer's intake: each consumed message handed to its stage.

- a payment of the input topic goes to stage one (`repartition.py`), which validates it and re-keys it by
  card; without repartitioning it is validated here and goes straight to the event-time merge;
- a batch of card-keyed payments (the platform's own topic) goes to the event-time merge, a watermark
  record to the merge's per-input bounds;
- a label is validated and held for the next batch; its labelled_at advances the labels' progress.
Invalid messages become dead letters, sent with the next batch, never dropped.
"""

from __future__ import annotations

import logging

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from payment_platform.kafka.messages import position
from payment_platform.stream.config import ScorerConfig
from payment_platform.stream.event_time import EventTimeMerge, LabelProgress
from payment_platform.stream.faults import crash_point
from payment_platform.stream.intake import DeadLetter, keyed_by_card, label_of, now_us, payment_of
from payment_platform.stream.records import PaymentBatch, decode
from payment_platform.stream.repartition import Repartitioner
from payment_platform.stream.stats import ScorerStats
from payment_platform.stream.validation import Label

logger = logging.getLogger(__name__)


class Router:
    """Routes consumed messages; holds the labels and dead letters of the next batch."""

    def __init__(
        self,
        config: ScorerConfig,
        consumer: Consumer,
        merge: EventTimeMerge,
        label_progress: LabelProgress,
        repartitioner: Repartitioner | None,
        stats: ScorerStats,
    ) -> None:
        self.config = config
        self.consumer = consumer
        self.merge = merge
        self.label_progress = label_progress
        self.repartitioner = repartitioner
        self.stats = stats
        self.labels: list[tuple[int, Label]] = []
        self.dead_letters: list[DeadLetter] = []
        self.dirty = False  # something consumed since the last batch
        self._stage_one_invalid = 0

    def take(self) -> tuple[list[tuple[int, Label]], list[DeadLetter]]:
        """The labels and dead letters held for a batch, handed over."""
        taken = self.labels, self.dead_letters
        self.labels, self.dead_letters, self.dirty = [], [], False
        return taken

    def route(self, messages: list[Message]) -> int:
        """Hand each message to its stage; the number of payments and labels among them."""
        now = now_us()
        records = added = 0
        config, stats, merge = self.config, self.stats, self.merge
        for message in messages:
            error = message.error()
            if error is not None:
                self._consumer_error(message, error)
                continue
            topic, partition, offset = position(message)
            if topic == config.labels_topic:
                label = label_of(message, now)
                if isinstance(label, DeadLetter):
                    self.dead_letters.append(label)
                    stats.invalid += 1
                    self.label_progress.consumed(partition, offset, None)
                else:
                    self.labels.append((partition, label))
                    stats.labels += 1
                    self.label_progress.consumed(partition, offset, label.labelled_us)
                records += 1
            elif self.repartitioner is not None and topic == config.payment_topic:
                self.repartitioner.take(message, partition, offset, now)
                stats.consumed += 1
                records += 1
                continue  # stage one: no batch needed for it
            elif self.repartitioner is not None:
                record = decode(message.value())  # our own topic: payments or a watermark
                if isinstance(record, PaymentBatch):
                    for carried in record.payments:
                        merge.add(partition, offset, carried)
                    records += len(record.payments)
                    added += len(record.payments)
                else:
                    merge.watermark(partition, offset, record)
            else:
                routed = payment_of(message, partition, offset, now)
                stats.consumed += 1
                records += 1
                if isinstance(routed, DeadLetter):
                    self.dead_letters.append(routed)
                    stats.invalid += 1
                    merge.skipped(partition, offset)
                    continue
                if not keyed_by_card(message, routed):
                    stats.mis_keyed += 1
                merge.add(partition, offset, routed)
                added += 1
            self.dirty = True
        if self.repartitioner is not None:
            self._stage_one_done()
        if added:
            crash_point("consumed", added)
        return records

    def _stage_one_done(self) -> None:
        """Send what stage one batched, and hold back the inputs that run too far ahead in event time."""
        assert self.repartitioner is not None
        self.repartitioner.flush()
        pause, resume = self.repartitioner.to_pause()
        topic = self.config.payment_topic
        if pause:
            self.consumer.pause([TopicPartition(topic, p) for p in pause])
        if resume:
            self.consumer.resume([TopicPartition(topic, p) for p in resume])
        counts = self.repartitioner.counts
        self.stats.invalid += counts.dead_lettered - self._stage_one_invalid
        self._stage_one_invalid = counts.dead_lettered
        self.stats.mis_keyed = counts.mis_keyed

    def _consumer_error(self, message: Message, error: KafkaError) -> None:
        """The end of a partition moves its clock on; other errors are retried by the client or fatal."""
        if error.code() == KafkaError._PARTITION_EOF:
            topic, partition, _ = position(message)
            if topic == self.config.labels_topic:
                self.label_progress.at_end(partition)
                self.dirty = True
            elif self.repartitioner is not None and topic == self.config.payment_topic:
                self.repartitioner.at_end(partition)
            else:
                self.merge.at_end(partition)
                self.dirty = True
            return
        if error.retriable() or not error.fatal():
            logger.warning("consumer error (will retry): %s", error.str())
            return
        raise RuntimeError(f"fatal Kafka consumer error: {error.str()}")
