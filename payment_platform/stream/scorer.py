"""The streaming scorer: one loop that turns consumed messages into stored decisions.

consume → (stage one) validate and re-key payments by card → (stage two) validate labels, merge payments
in event time → featurise → decide → hand off to the sink → commit.

One consumer in the scorer group reads three topics (`routing.py` hands each message to its stage): the
payments (stage one forwards those of the input partitions it owns, `repartition.py`), the card-keyed
payments (stage two scores the shards it owns, `event_time.py`, `batches.py`) and the labels. The sink
(`sink.py`) owns the score store and writes a batch while the next is scored; offsets are committed here,
on the consumer's own thread (the Kafka client serves one call at a time: a commit from another thread
starves behind consume() and deadlocks a rebalance), and only once what they cover is durable.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from payment_platform.features import OnlineFeatures
from payment_platform.features.terminal_feed import TerminalFeed
from payment_platform.kafka.clients import consumer_lag
from payment_platform.store.stream_state import read_progress, stored_payments
from payment_platform.store.terminal_feed import StoreTerminalSource
from payment_platform.stream.batches import BatchMaker
from payment_platform.stream.config import ScorerConfig
from payment_platform.stream.event_time import EventTimeMerge, LabelProgress
from payment_platform.stream.faults import crash_point
from payment_platform.stream.intake import now_us
from payment_platform.stream.model_source import ModelSource
from payment_platform.stream.recovery import restore_cards, watch_orphan_labels
from payment_platform.stream.repartition import Repartitioner
from payment_platform.stream.routing import Router
from payment_platform.stream.shared_watermark import SharedWatermark
from payment_platform.stream.sink import ScoreSink, WriteOutcome
from payment_platform.stream.stats import ScorerStats

logger = logging.getLogger(__name__)


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "no partitions"


class PaymentScorer:
    """Consumes payments and labels, scores payments, stores and publishes decisions."""

    def __init__(
        self,
        config: ScorerConfig,
        consumer: Consumer,
        sink: ScoreSink,
        models: ModelSource,
        repartitioner: Repartitioner | None,
        inputs: int,
        shards: int,
        label_partitions: int,
        ensure_internal_topic: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.consumer = consumer
        self.sink = sink
        self.models = models
        self.repartitioner = repartitioner
        # The card-keyed topic is the platform's own: a broker that lost its topics (the embedded one keeps
        # them in memory) gets it back from this as soon as the group has re-formed.
        self.ensure_internal_topic = ensure_internal_topic
        self.stats = ScorerStats()
        self.features = OnlineFeatures()
        # What an idle input or a caught-up label partition lets through: as far as the group's payments have
        # come, by this scorer's shards or the others' stored progress (never the wall clock), _group_seen_us.
        self.merge = EventTimeMerge(
            inputs, config.repartition, config.max_idle_ms, config.max_buffered, self._group_seen_us
        )
        self.label_progress = LabelProgress(self.merge.group_vouched_us, config.max_idle_ms)
        self.router = Router(config, consumer, self.merge, self.label_progress, repartitioner, self.stats)
        group = config.consumer_group
        self.watermark = SharedWatermark(
            lambda: sink.read(lambda engine: read_progress(engine, group), "reading the group's progress"),
            config.shard_topic,
            shards,
            config.labels_topic,
            label_partitions,
        )
        terminals = StoreTerminalSource(sink.engine, retry=lambda call, what: sink.read(lambda _: call(), what))
        self.batches = BatchMaker(
            config,
            self.features,
            TerminalFeed(self.features.terminals, terminals),
            self.watermark,
            models,
            lambda ids: sink.read(lambda engine: stored_payments(engine, ids), "looking up stored payments"),
            self.stats,
        )
        self._last_cut = 0.0
        self._status_at = 0.0
        self._handing_over = False  # commits wait for the broker while partitions change hands
        self._assigned_at: float | None = None
        self._stopped = threading.Event()

    def _group_seen_us(self) -> int:
        return max(self.merge.newest_seen_us(), self.watermark.newest_payments_us())

    def run(
        self,
        *,
        max_messages: int | None = None,
        idle_timeout_s: float | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        on_progress: Callable[[ScorerStats], None] | None = None,
    ) -> ScorerStats:
        """Score until stopped, `max_messages` payments handled or `idle_timeout_s` without a message."""
        self.sink.should_stop = should_stop
        watch = threading.Thread(
            target=watch_orphan_labels,
            args=(self.sink, self.stats, self.config.orphan_check_s, self._stopped),
            name="orphan-labels",
            daemon=True,
        )
        watch.start()
        topics = [self.config.shard_topic, self.config.labels_topic]
        if self.repartitioner is not None:
            topics.append(self.config.payment_topic)
        self.consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        last_record = last_progress = time.monotonic()
        try:
            while not should_stop():
                if max_messages is not None and self.stats.handled >= max_messages and not self.sink.busy:
                    break
                messages = self.consumer.consume(self.config.batch_size, self.config.poll_timeout_s)
                if self.router.route(messages):
                    last_record = time.monotonic()
                self._cut()
                self._commit(self.repartitioner.committable() if self.repartitioner else [])
                now = time.monotonic()
                if self._assigned_at is None:
                    last_record = now  # idle only counts once the group has given this scorer partitions
                if idle_timeout_s is not None and now - last_record >= idle_timeout_s and not self.sink.busy:
                    logger.info("no message for %.0fs: stopping", idle_timeout_s)
                    break
                if now - last_progress >= self.config.progress_interval_s:
                    self._report(on_progress)
                    last_progress = now
        finally:
            self._stopped.set()
            self._close()
        return self.stats

    # --- batches ------------------------------------------------------------------------------------

    def _cut(self) -> None:
        """Cut and submit a batch when there is something to decide or record; collect finished writes."""
        if (outcome := self.sink.poll()) is not None:
            self._written(outcome)
        now = time.monotonic()
        heartbeat = now - self._last_cut >= self.config.heartbeat_s
        router = self.router
        if not (router.dirty or self.merge.buffered or heartbeat):
            return
        batch = self.batches.cut(self.merge, self.label_progress, router.labels, router.dead_letters, now_us())
        nothing = not (len(batch.scored) or batch.labels or batch.dead_letters or batch.republish)
        if nothing and not heartbeat and not router.dirty:
            return
        router.take()
        self._last_cut = now
        batch.offsets = self._offsets()
        if now - self._status_at >= self.config.progress_interval_s:
            batch.status = self.stats.status_row(self.config.consumer_group, running=True)
            self._status_at = now
        if len(batch.scored):
            crash_point("scored")
        self.stats.batches += 1
        if (outcome := self.sink.submit(batch)) is not None:
            self._written(outcome)
        pause, resume = self.merge.to_pause()
        if pause:
            self.consumer.pause([TopicPartition(self.config.shard_topic, shard) for shard in pause])
        if resume:
            self.consumer.resume([TopicPartition(self.config.shard_topic, shard) for shard in resume])

    def _offsets(self) -> list[TopicPartition]:
        """What this batch covers: each shard up to its oldest payment still held, each label partition
        up to its last label."""
        offsets = []
        for shard in self.merge.shards:
            if (offset := self.merge.commit_offset(shard)) is not None:
                offsets.append(TopicPartition(self.config.shard_topic, shard, offset))
        for partition in self.label_progress.partitions:
            if (offset := self.label_progress.next_offset(partition)) is not None:
                offsets.append(TopicPartition(self.config.labels_topic, partition, offset))
        return offsets

    def _written(self, outcome: WriteOutcome) -> None:
        """A batch is durable: count it, forget what is no longer in flight, commit its offsets."""
        batch = outcome.batch
        self.stats.scored += outcome.inserted
        self.stats.decisions += outcome.decisions
        self.stats.conflicts += len(outcome.lost)
        for row in outcome.lost:  # another payment took its transaction_id meanwhile: it never counted
            self.features.cards(int(batch.scored.shard[row])).remove(
                batch.scored.customer_id[row],
                int(batch.scored.event_us[row]) // 1_000,
                round(float(batch.scored.amount[row]) * 100),
            )
        for (topic, partition), progress in batch.progress.items():
            if topic == self.config.shard_topic:
                self.watermark.advance((topic, partition), progress)
        self.batches.written(batch)
        self._commit(batch.offsets)

    def _drain(self) -> None:
        """Wait for the batch being written, and count and commit it."""
        if (outcome := self.sink.wait()) is not None:
            self._written(outcome)

    def _commit(self, offsets: list[TopicPartition]) -> None:
        """Commit offsets whose records are durable: asynchronously while scoring (a round trip per batch
        would stall the loop; a failure is logged by the client's callback and only means a re-read), and
        waiting for the broker while partitions are handed over or the scorer stops."""
        owned = set(self.consumer.assignment()) if offsets else set()
        offsets = [tp for tp in offsets if TopicPartition(tp.topic, tp.partition) in owned]
        if not offsets:
            return
        try:
            if self._handing_over:
                self.consumer.commit(offsets=offsets, asynchronous=False)
            else:
                self.consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            # What they cover is written: a lost commit only means it is read again, and absorbed.
            logger.warning("offset commit failed (%s): the batch will be read again and absorbed", exc.args[0])

    # --- partitions ---------------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        logger.info("assigned %s", _names(partitions))
        self._assigned_at = self._assigned_at or time.monotonic()
        config = self.config
        self.ensure_internal_topic()
        shards = [tp.partition for tp in partitions if tp.topic == config.shard_topic]
        labels = [tp.partition for tp in partitions if tp.topic == config.labels_topic]
        self.watermark.take_over([(config.shard_topic, s) for s in shards] + [(config.labels_topic, p) for p in labels])
        if self.batches.needs_older_terminals():
            logger.info("a shard taken over lags behind the terminal state: reading it again from the store")
            self._drain()
            self.batches.reread_terminals()
        for shard in shards:
            restore_cards(self.sink, self.features, shard)
            self.merge.assigned(shard)
        for partition in labels:
            self.label_progress.assigned(partition)
        if self.repartitioner is not None:
            self.repartitioner.assigned([tp.partition for tp in partitions if tp.topic == config.payment_topic])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        logger.info("revoked %s (a rebalance, or the group was lost)", _names(partitions))
        self._handing_over = True
        try:
            self._hand_over(consumer, partitions)
        finally:
            self._handing_over = False

    def _hand_over(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._drain()  # commit what was read from them while still ours
        if self.repartitioner is not None:
            self.repartitioner.records.producer.flush(10)
            self.repartitioner.records.poll()
            self._commit(self.repartitioner.committable())
        config = self.config
        for tp in partitions:
            if tp.topic == config.shard_topic:
                self.merge.revoked(tp.partition)
                self.batches.forget(tp.partition)
            elif tp.topic == config.labels_topic:
                self.label_progress.revoked(tp.partition)
            if tp.topic != config.payment_topic:
                self.watermark.give_up([(tp.topic, tp.partition)])
        if self.repartitioner is not None:
            self.repartitioner.revoked([tp.partition for tp in partitions if tp.topic == config.payment_topic])
        # The client keeps a partition's pause across losing it: whoever gets it next must find it flowing.
        with contextlib.suppress(KafkaException):
            consumer.resume(partitions)

    # --- reporting and shutdown ---------------------------------------------------------------------

    def _report(self, on_progress: Callable[[ScorerStats], None] | None) -> None:
        self.stats.lag = consumer_lag(self.consumer)
        self.stats.buffered = self.merge.buffered
        waiting = self.merge.waiting()
        self.stats.waiting_on = ", ".join(f"shard {s}: {why}" for s, why in sorted(waiting.items())[:3])
        if on_progress is not None:
            on_progress(self.stats)

    def _close(self) -> None:
        self._handing_over = True
        try:
            if (outcome := self.sink.close()) is not None:
                self._written(outcome)
            if self.repartitioner is not None:
                self.repartitioner.flush()
                self.repartitioner.records.producer.flush(10)
                self.repartitioner.records.poll()
                self._commit(self.repartitioner.committable())
        finally:
            self.stats.lag = consumer_lag(self.consumer)
            self.stats.buffered = self.merge.buffered
            self.consumer.close()
            with contextlib.suppress(Exception):  # best effort: the health row says it stopped
                self.sink.write_status(self.stats.status_row(self.config.consumer_group, running=False))
            self.sink.close_store()
            logger.info("scorer stopped: %s", self.stats.summary())
