"""The streaming scorer: one loop that turns consumed batches into stored decisions.

Per batch: validate → featurise → score → decide → write (one transaction) → DLQ flush → commit
offsets. Offsets are committed only after the rows are durable, and rows are idempotent on
`transaction_id`, so a crash anywhere replays the batch without losing or duplicating a payment. The
write and flush of one batch run on a write-behind thread while the next batch is read and scored; its
offsets are committed on the loop's own thread once that write is done.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import chain

import numpy as np
import sqlalchemy as sa
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from payment_platform.features import FEATURE_NAMES, FeatureState
from payment_platform.features.definitions import DAY_MS, amount_cents
from payment_platform.features.online import ALLOWED_LATENESS_MS
from payment_platform.store.database import StoreUnavailable
from payment_platform.store.feature_history import read_feature_history
from payment_platform.store.writer import LabelRow, ScoredBatch, ScoreWriter, us_to_datetimes
from payment_platform.stream.alignment import EventTimeAlignment
from payment_platform.stream.decisions import DecisionPolicy, Decisions, decide, evaluate_rules
from payment_platform.stream.faults import crash_point
from payment_platform.stream.model_source import ModelSource, ScoringModel
from payment_platform.stream.validation import InvalidMessage, Label, Payment, parse_label, parse_payment

logger = logging.getLogger(__name__)

_FEATURE_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}
RETRY_FIRST_S, RETRY_MAX_S = 0.5, 30.0  # backoff of a batch's write while the database is unreachable


@dataclass(frozen=True)
class ScorerConfig:
    payment_topic: str
    labels_topic: str
    dlq_topic: str
    batch_size: int = 5_000
    poll_timeout_s: float = 0.1
    progress_interval_s: float = 10.0
    max_skew_ms: int = DAY_MS  # event time by which a payment partition may run ahead of the others


@dataclass
class ScorerStats:
    """Running totals, reported as progress and returned at the end."""

    consumed: int = 0
    scored: int = 0
    duplicates: int = 0
    invalid: int = 0
    labels: int = 0
    batches: int = 0
    lag: int | None = None
    interrupted: bool = False  # stopped by SIGINT/SIGTERM (a run terminated from the UI)
    started: float = field(default_factory=time.monotonic)
    by_status: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.consumed / max(time.monotonic() - self.started, 1e-9)

    def summary(self) -> str:
        lag = "?" if self.lag is None else f"{self.lag:,}"
        return (
            f"scored {self.scored:,} payments ({self.rate:,.0f}/s), {self.invalid:,} to DLQ, "
            f"{self.duplicates:,} duplicates, {self.labels:,} labels, consumer lag ~{lag}"
        )


@dataclass
class _Batch:
    """One consumed batch, split by what each message is."""

    payments: list[Payment] = field(default_factory=list)
    payment_offsets: list[tuple[int, int]] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    invalid: list[tuple[Message, str]] = field(default_factory=list)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    payment_messages: int = 0
    deferred: int = 0  # messages left for later by the event-time alignment


def score_and_decide(model: ScoringModel, features: np.ndarray, amount: np.ndarray) -> tuple[np.ndarray, Decisions]:
    """Fraud probabilities and decisions (status, reason codes) of a featurised batch."""
    score = model.predict_proba(features[:, model.feature_index])

    def feature(name: str) -> np.ndarray:
        return features[:, _FEATURE_INDEX[name]]

    rules = evaluate_rules(
        DecisionPolicy(model.review_threshold, model.decline_threshold),
        score,
        amount,
        feature("card_count_10m"),
        feature("card_count_1h"),
        feature("card_count_30d"),
        feature("amount_to_card_mean_30d"),
    )
    return score, decide(rules, len(score))


@dataclass(frozen=True)
class WriteOutcome:
    scored: int  # payments in the batch
    inserted: int  # of them, new rows (the rest were stored already)


class WriteBehind:
    """Runs each batch's write (rows, then dead letters) on one background thread while the loop reads and
    scores the next batch, and commits the batch's offsets once the write is done.

    At most one batch is in flight, so offsets are committed in order and only after their rows are
    written. `written` (counting and committing) runs on the caller's thread, the consumer's: the Kafka
    client serves one call at a time, and a commit from another thread starves behind a loop of consume()
    calls (and deadlocks a rebalance callback that waits for it). A failed write surfaces in the loop at
    the next batch."""

    def __init__(self, written: Callable[[WriteOutcome, list[TopicPartition]], None]) -> None:
        self._written = written
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="score-writer")
        self._pending: tuple[Future[WriteOutcome], list[TopicPartition]] | None = None

    def submit(self, store: Callable[[], WriteOutcome], offsets: list[TopicPartition]) -> None:
        self.wait()
        self._pending = (self._pool.submit(store), offsets)

    def wait(self) -> None:
        """Until the batch in flight is written, then hand over its outcome and offsets; re-raises a failed
        write."""
        pending, self._pending = self._pending, None
        if pending is not None:
            outcome, offsets = pending
            self._written(outcome.result(), offsets)

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)


def _partition_list(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "no partitions"


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


class PaymentScorer:
    """Consumes payments and labels, scores payments, stores decisions."""

    def __init__(
        self,
        config: ScorerConfig,
        consumer: Consumer,
        dlq_producer: Producer,
        writer: ScoreWriter,
        models: ModelSource,
        features: FeatureState | None = None,
    ) -> None:
        self.config = config
        self.consumer = consumer
        self.dlq = dlq_producer
        self.writer = writer
        self.models = models
        # A payment partition may run max_skew_ms ahead of the others: the state waits that much longer
        # before evicting what the slower ones may still need.
        self.features = features or FeatureState(ALLOWED_LATENESS_MS + config.max_skew_ms)
        self.stats = ScorerStats()
        self._restored_partitions: set[int] = set()
        self.alignment = EventTimeAlignment(consumer, config.payment_topic, config.max_skew_ms)
        # Messages of partitions the alignment holds, in offset order, and the partitions it released.
        self._set_aside: dict[tuple[str, int], list[Message]] = {}
        self._released: list[tuple[str, int]] = []
        self._in_flight = WriteBehind(self._written)
        self._should_stop: Callable[[], bool] = lambda: False

    def run(
        self,
        *,
        max_messages: int | None = None,
        idle_timeout_s: float | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        on_progress: Callable[[ScorerStats], None] | None = None,
    ) -> ScorerStats:
        """Score until stopped, `max_messages` consumed or `idle_timeout_s` without a message."""
        self._should_stop = should_stop
        assigned: dict[str, float | None] = {"at": None}

        def on_assign(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            logger.info("assigned %s", _partition_list(partitions))
            self._restore_features({tp.partition for tp in partitions if tp.topic == self.config.payment_topic})
            self.alignment.assigned(partitions)
            assigned["at"] = assigned["at"] or time.monotonic()

        def on_revoke(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            logger.info("revoked %s (a rebalance, or the group was lost)", _partition_list(partitions))
            self._in_flight.wait()  # commit what was read from them while they are still ours
            self.alignment.revoked(partitions)
            for tp in partitions:  # what was set aside is read again by the partition's next owner
                self._set_aside.pop((tp.topic, tp.partition), None)

        self.consumer.subscribe(
            [self.config.payment_topic, self.config.labels_topic], on_assign=on_assign, on_revoke=on_revoke
        )
        last_message = last_progress = time.monotonic()
        try:
            while not should_stop():
                budget = self.config.batch_size
                if max_messages is not None:
                    budget = min(budget, max_messages - self.stats.consumed)
                    if budget <= 0:
                        break
                messages = self.consumer.consume(budget, self.config.poll_timeout_s)
                had_records = self._process(messages)
                if not had_records:
                    self._in_flight.wait()  # nothing new to overlap with: commit the last batch now
                now = time.monotonic()  # after processing: a wait for the database is not idleness
                if had_records or assigned["at"] is None:
                    last_message = now
                elif idle_timeout_s is not None and now - max(last_message, assigned["at"]) >= idle_timeout_s:
                    logger.info("no message for %.0fs: stopping", idle_timeout_s)
                    break
                if on_progress and now - last_progress >= self.config.progress_interval_s:
                    self.stats.lag = self.consumer_lag()
                    on_progress(self.stats)
                    last_progress = now
        finally:
            try:
                self._in_flight.close()
            finally:
                self.stats.lag = self.consumer_lag()
                self.consumer.close()
            logger.info("scorer stopped: %s", self.stats.summary())
        return self.stats

    def _process(self, messages: list[Message]) -> bool:
        """Handle one consumed batch end to end; False when it held no record."""
        batch = self._split(messages)
        if not batch.offsets:
            self._released = self.alignment.finish_batch()
            return batch.deferred > 0
        if batch.payments:
            crash_point("consumed")
        scored = self._score(batch.payments, batch.payment_offsets)
        if batch.payments:
            crash_point("scored")
        labelled_at = us_to_datetimes(np.fromiter((lb.labelled_us for lb in batch.labels), dtype=np.int64))
        label_rows = [
            LabelRow(lb.transaction_id, lb.is_fraud, at) for lb, at in zip(batch.labels, labelled_at, strict=True)
        ]
        if batch.labels:  # before the next batch is featurised, as when written in line
            self.features.add_labels([lb.transaction_id for lb in batch.labels], [lb.is_fraud for lb in batch.labels])
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in batch.offsets.items()]
        self._in_flight.submit(lambda: self._store(scored, label_rows, batch.invalid), offsets)
        self._released = self.alignment.finish_batch()
        self.stats.consumed += batch.payment_messages
        self.stats.invalid += len(batch.invalid)
        self.stats.labels += len(batch.labels)
        self.stats.batches += 1
        return True

    def _store(self, scored: ScoredBatch, labels: list[LabelRow], invalid: list[tuple[Message, str]]) -> WriteOutcome:
        """Write and dead-letter one batch (on the write-behind thread, batches in order)."""
        scored = replace(scored, scored_at=dt.datetime.now(dt.UTC).replace(tzinfo=None))
        inserted = self._write(scored, labels)
        self._send_to_dlq(invalid)
        if len(scored):
            crash_point("written")
        return WriteOutcome(len(scored), inserted)

    def _written(self, outcome: WriteOutcome, offsets: list[TopicPartition]) -> None:
        """Count a written batch and commit its offsets (on the loop's thread, which alone touches stats)."""
        self.stats.scored += outcome.inserted
        self.stats.duplicates += outcome.scored - outcome.inserted
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # The rows are written: a lost commit only means the batch is read again later, and absorbed.
            logger.warning("offset commit failed (%s): the batch will be read again and absorbed", exc.args[0])

    def _write(self, scored: ScoredBatch, labels: list[LabelRow]) -> int:
        """The batch's write, retried with backoff while the database is unreachable: nothing is committed
        to Kafka meanwhile, and the loop waits (backpressure) instead of piling up batches."""
        delay = RETRY_FIRST_S
        while True:
            try:
                return self.writer.write(scored, labels)
            except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
                self.writer.engine.dispose()  # drop pooled connections to the lost server
                if self._should_stop():
                    raise StoreUnavailable(f"stopping with the score store unreachable: {_first_line(exc)}") from None
                logger.warning(
                    "score store unreachable (%s): %d payments and %d labels not written, offsets not committed; "
                    "retrying in %.1fs",
                    _first_line(exc),
                    len(scored),
                    len(labels),
                    delay,
                )
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    def _restore_features(self, partitions: set[int]) -> None:
        """Rebuild the feature state of newly assigned partitions from the score store, so the first
        payment after a restart or rebalance gets the features an uninterrupted scorer would give it."""
        partitions -= self._restored_partitions
        if not partitions:
            return
        started = time.monotonic()
        history = read_feature_history(
            self.writer.engine, partitions, dt.timedelta(milliseconds=self.features.reach_ms)
        )
        self.features.restore(
            history.payments, history.labels["transaction_id"].tolist(), history.labels["is_fraud"].tolist()
        )
        self._restored_partitions |= partitions
        logger.info(
            "feature state of partitions %s restored from %s stored payments and %s labels in %.1fs: %s cards",
            sorted(partitions),
            f"{len(history.payments):,}",
            f"{len(history.labels):,}",
            time.monotonic() - started,
            f"{self.features.active_cards:,}",
        )

    def _split(self, messages: list[Message]) -> _Batch:
        batch = _Batch()
        alignment = self.alignment
        alignment.start_batch()
        now_us = time.time_ns() // 1_000
        seen: set[str] = set()
        set_aside = self._set_aside
        released = [message for key in self._released for message in set_aside.pop(key, ())]
        self._released = []
        for message in chain(released, messages):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    alignment.at_end((message.topic(), message.partition()))
                    continue
                if error.retriable() or not error.fatal():
                    logger.warning("consumer error (will retry): %s", error.str())
                    continue
                raise RuntimeError(f"fatal Kafka consumer error: {error.str()}")
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            key = (topic, partition)
            if key in set_aside:  # a held partition: its messages wait in order until it is released
                set_aside[key].append(message)
                batch.deferred += 1
                continue
            record_us = message.timestamp()[1] * 1_000
            try:
                if topic == self.config.labels_topic:
                    label = parse_label(message.value(), record_us, now_us)
                    alignment.observe(key, label.labelled_us // 1_000)
                    batch.labels.append(label)
                    batch.offsets[key] = offset
                    continue
                payment = parse_payment(message.value(), record_us, now_us)
            except InvalidMessage as exc:
                alignment.observe(key, 0)  # no trustworthy event time: the partition's progress is unchanged
                batch.invalid.append((message, str(exc)))
                batch.offsets[key] = offset
                batch.payment_messages += topic == self.config.payment_topic
                continue
            if not alignment.admit(key, payment.event_us // 1_000):
                set_aside[key] = [message]
                batch.deferred += 1
                continue
            batch.offsets[key] = offset
            batch.payment_messages += 1
            if payment.transaction_id in seen:  # the first one in the batch stands
                self.stats.duplicates += 1
                continue
            seen.add(payment.transaction_id)
            batch.payments.append(payment)
            batch.payment_offsets.append((partition, offset))
        return batch

    def _score(self, payments: list[Payment], offsets: list[tuple[int, int]]) -> ScoredBatch:
        if not payments:
            return ScoredBatch.empty()
        model = self.models.current()
        n = len(payments)
        transaction_ids, cards, terminals, amounts, currencies, event_times = map(list, zip(*payments, strict=True))
        event_us = np.array(event_times, dtype=np.int64)
        amount = np.array(amounts, dtype=np.float64)
        features = self.features.featurise_columns(transaction_ids, cards, terminals, event_us // 1_000, amount)
        score, decisions = score_and_decide(model, features, amount)
        for status, count in zip(*np.unique(decisions.status, return_counts=True), strict=True):
            self.stats.by_status[status] = self.stats.by_status.get(status, 0) + int(count)
        where = np.array(offsets, dtype=np.int64).reshape(n, 2)
        return ScoredBatch(
            transaction_id=transaction_ids,
            customer_id=cards,
            terminal_id=terminals,
            amount=amount_cents(amount) / 100,  # what the feature state summed, so a restore sums the same
            currency=currencies,
            event_us=event_us,
            score=score,
            status=decisions.status.tolist(),
            reasons=decisions.reasons.tolist(),
            model_version=model.version,
            kafka_partition=where[:, 0],
            kafka_offset=where[:, 1],
        )

    def _send_to_dlq(self, invalid: list[tuple[Message, str]]) -> None:
        """Forward invalid messages unchanged, with the reason; flushed before offsets commit."""
        if not invalid:
            return
        for message, reason in invalid:
            self.dlq.produce(
                self.config.dlq_topic,
                key=message.key(),
                value=message.value(),
                headers=[
                    ("error", reason.encode("utf-8", "replace")),
                    ("source.topic", message.topic().encode()),
                    ("source.partition", str(message.partition()).encode()),
                    ("source.offset", str(message.offset()).encode()),
                ],
            )
        delay = RETRY_FIRST_S
        while remaining := self.dlq.flush(delay):
            if self._should_stop():
                raise RuntimeError(f"stopping with {remaining} DLQ messages not delivered; offsets not committed")
            logger.warning("%d DLQ messages not delivered yet (broker unreachable?); offsets not committed", remaining)
            delay = min(delay * 2, RETRY_MAX_S)

    def consumer_lag(self) -> int | None:
        """Messages behind the end of the assigned partitions (approximate: from watermarks)."""
        try:
            assignment = self.consumer.assignment()
            if not assignment:
                return None
            lag = 0
            for tp in self.consumer.position(assignment):
                _, high = self.consumer.get_watermark_offsets(tp, timeout=1, cached=False)
                if tp.offset >= 0:
                    lag += max(high - tp.offset, 0)
            return lag
        except Exception:  # noqa: BLE001 - lag is informative only
            return None
