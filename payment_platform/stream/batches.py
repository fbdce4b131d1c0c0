"""From what the event-time merge releases to one batch of decisions for the sink.

Each cut: apply the labels this scorer consumed; work out how far the group's shared watermark lets
payments go; release them; drop what was already decided; bring the terminal state up to what the batch
needs from the store; featurise each shard's payments; score and decide; and hand the sink a `WriteBatch`
that also says how far each partition is now written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection

import numpy as np

from payment_platform.features import FEATURE_NAMES, OnlineFeatures
from payment_platform.features.definitions import (
    HOUR_MS,
    LABEL_SETTLE_S,
    TERMINAL_LABEL_DELAY_S,
    amount_cents,
)
from payment_platform.features.labels import LabelEvent
from payment_platform.features.terminal_feed import TerminalFeed
from payment_platform.store.event_time import datetime_of
from payment_platform.store.rows import LabelRow, ScoredBatch
from payment_platform.store.stream_state import StoredPayment
from payment_platform.stream.config import ScorerConfig
from payment_platform.stream.decisions import score_and_decide
from payment_platform.stream.duplicates import deduplicate
from payment_platform.stream.event_time import ALWAYS, NEVER, EventTimeMerge, LabelProgress
from payment_platform.stream.intake import CONFLICT, DeadLetter, routed_dead_letter
from payment_platform.stream.model_source import ModelSource
from payment_platform.stream.records import RoutedPayment
from payment_platform.stream.shared_watermark import SharedWatermark
from payment_platform.stream.sink import WriteBatch
from payment_platform.stream.stats import ScorerStats
from payment_platform.stream.validation import MAX_FUTURE_US, Label

logger = logging.getLogger(__name__)

SWEEP_EVERY_MS = 6 * HOUR_MS  # evict the state each time the released watermark moves this far
_LOCAL_SEQ = -(2**62)  # labels applied before they have a store id order before every stored one


class BatchMaker:
    """Cuts batches of decisions; keeps what must survive between cuts."""

    def __init__(
        self,
        config: ScorerConfig,
        features: OnlineFeatures,
        feed: TerminalFeed,
        watermark: SharedWatermark,
        models: ModelSource,
        lookup: Callable[[Collection[str]], dict[str, StoredPayment]],
        stats: ScorerStats,
    ) -> None:
        self.config = config
        self.features = features
        self.feed = feed
        self.watermark = watermark
        self.models = models
        self.lookup = lookup
        self.stats = stats
        self.in_flight: dict[str, RoutedPayment] = {}  # the batch being written, by transaction_id
        self.unwritten_frauds: list[LabelEvent] = []  # own fraud labels not yet in the store
        self._seq = _LOCAL_SEQ
        self._released_ms: dict[int, int] = {}  # per shard: the newest event time featurised
        self._swept_ms = NEVER

    def cut(
        self,
        merge: EventTimeMerge,
        label_progress: LabelProgress,
        labels: list[tuple[int, Label]],
        dead_letters: list[DeadLetter],
        now_us: int,
    ) -> WriteBatch:
        """The next batch: payments the watermarks let through, the labels and dead letters given."""
        events = self._apply_own_labels(labels, label_progress)
        # Until written, the store's reads cannot bring these: the terminal feed applies them again.
        self.unwritten_frauds += [event for event in events if event.is_fraud]
        payment_us, label_us = self.watermark.payments_us(), self.watermark.labels_us()
        released = merge.release(min(_label_bound_ms(label_us), _terminal_bound_ms(payment_us)))
        found = deduplicate(released, self.in_flight, self.lookup)
        self.stats.duplicates += found.repeats + len(found.replays)
        self.stats.conflicts += len(found.conflicts)
        letters = list(dead_letters)
        letters += [routed_dead_letter(routed, self.config.payment_topic, CONFLICT) for routed, _ in found.conflicts]
        scored = self._score(found.fresh, payment_us, label_us)
        self._sweep(merge)
        return WriteBatch(
            scored=scored,
            labels=[
                LabelRow(label.transaction_id, label.is_fraud, datetime_of(label.labelled_us), label.source)
                for _, label in labels
            ],
            progress=self._progress(merge, label_progress, now_us),
            dead_letters=letters,
            republish=found.replays,
            originals=[routed for _, (routed, _offset) in found.fresh],
        )

    def _progress(self, merge: EventTimeMerge, labels: LabelProgress, now_us: int) -> dict[tuple[str, int], int]:
        """How far each owned partition is written once this batch is: shards up to their oldest payment
        still held (never past the wall clock), label partitions up to what they delivered (never past the
        latest valid labelled_at)."""
        progress = {}
        for shard in merge.shards:
            if (written := merge.written_before_us(shard)) > NEVER:
                progress[self.config.shard_topic, shard] = min(written, now_us)
        for partition in labels.partitions:
            if (delivered := labels.progress_us(partition)) > NEVER:
                progress[self.config.labels_topic, partition] = min(delivered, now_us + MAX_FUTURE_US)
        return progress

    def _sweep(self, merge: EventTimeMerge) -> None:
        """Evict, each time the newest featurised time has moved SWEEP_EVERY_MS, what no owned shard can
        reach: a shard's watermark is its newest featurised payment, or its oldest one still held if older."""
        newest = max(self._released_ms.values(), default=NEVER)
        if newest - self._swept_ms < SWEEP_EVERY_MS:
            return
        watermarks = {  # a shard yet to release anything (days behind the others, maybe) holds eviction back
            shard: min(self._released_ms.get(shard, ALWAYS), merge.written_before_us(shard) // 1_000)
            for shard in merge.shards
        }
        self.features.evict(watermarks)
        self._swept_ms = newest

    def _oldest_owned_ms(self) -> int:
        """Where the slowest shard this scorer owns has written up to: no payment still to come from it is
        older, but for late ones."""
        return self.watermark.oldest_own_payments_us() // 1_000

    def needs_older_terminals(self) -> bool:
        """After an assignment: whether a shard taken over lags behind what the terminal state still holds
        (it may be days behind the others), so that the state must be read again from the store."""
        oldest_ms = self._oldest_owned_ms() - self.features.allowed_lateness_ms
        return self.feed.started and not self.feed.serves(oldest_ms)

    def reread_terminals(self) -> None:
        """Drop the terminal state: the next batch reads it again from the store, from the slowest shard on.
        The sink must be idle: every label applied here is then in the store."""
        self.feed.reset()

    def forget(self, shard: int) -> None:
        """A shard taken away: its cards and watermark go."""
        self._released_ms.pop(shard, None)
        self.features.shards.pop(shard, None)

    def written(self, batch: WriteBatch) -> None:
        """A batch is in the store: its payments and labels are there for the feed and the lookup."""
        for tx in batch.scored.transaction_id:
            self.in_flight.pop(tx, None)
        labelled = {label.transaction_id for label in batch.labels}
        self.unwritten_frauds = [event for event in self.unwritten_frauds if event.transaction_id not in labelled]

    def _apply_own_labels(self, labels: list[tuple[int, Label]], progress: LabelProgress) -> list[LabelEvent]:
        """Apply the labels this scorer consumed now (before they are written: none waits for the store),
        and count their partitions' progress in the shared watermark."""
        events = []
        for _, label in labels:
            self._seq += 1
            events.append(LabelEvent(label.transaction_id, label.is_fraud, label.labelled_us, self._seq))
        if events:
            self.feed.apply_labels(events)
        for partition in progress.partitions:
            self.watermark.advance((self.config.labels_topic, partition), progress.progress_us(partition))
        return events

    def _score(self, fresh: list, payment_us: int, label_us: int) -> ScoredBatch:
        if not fresh:
            return ScoredBatch.empty()
        payments = [routed for _, (routed, _offset) in fresh]
        t_ms = np.fromiter((p.event_us // 1_000 for p in payments), dtype=np.int64, count=len(payments))
        self._feed_terminals(int(t_ms.min()), int(t_ms.max()))
        shards = np.fromiter((shard for shard, _ in fresh), dtype=np.int64, count=len(fresh))
        amount = np.fromiter((p.amount for p in payments), dtype=np.float64, count=len(payments))
        matrix = np.empty((len(payments), len(FEATURE_NAMES)))
        for shard in np.unique(shards).tolist():
            rows = np.flatnonzero(shards == shard)
            chosen = [payments[i] for i in rows.tolist()]
            matrix[rows] = self.features.featurise(
                [p.customer_id for p in chosen], [p.terminal_id for p in chosen], t_ms[rows], amount[rows], shard
            )
        model = self.models.current()
        self.stats.model_version = model.version
        score, decisions = score_and_decide(model, matrix, amount)
        for status, count in zip(*np.unique(decisions.status, return_counts=True), strict=True):
            self.stats.by_status[status] = self.stats.by_status.get(status, 0) + int(count)
        for payment in payments:
            self.in_flight[payment.transaction_id] = payment
        for shard in np.unique(shards).tolist():
            newest = int(t_ms[shards == shard].max())
            self._released_ms[shard] = max(self._released_ms.get(shard, NEVER), newest)
        routed = payments
        return ScoredBatch(
            transaction_id=[p.transaction_id for p in payments],
            customer_id=[p.customer_id for p in payments],
            terminal_id=[p.terminal_id for p in payments],
            amount=amount_cents(amount) / 100,  # what the card state summed, so a restore sums the same
            currency=[p.currency for p in payments],
            event_us=np.fromiter((p.event_us for p in payments), dtype=np.int64, count=len(payments)),
            score=score,
            status=decisions.status.tolist(),
            reasons=decisions.reasons.tolist(),
            model_version=model.version,
            kafka_partition=np.fromiter((r.source_partition for r in routed), dtype=np.int64, count=len(routed)),
            kafka_offset=np.fromiter((r.source_offset for r in routed), dtype=np.int64, count=len(routed)),
            shard=shards,
        )

    def _feed_terminals(self, first_ms: int, last_ms: int) -> None:
        """Bring the terminal state up to what payments up to last_ms need (starting, on the first batch,
        from the oldest time a payment of any owned shard may still need: shards may be days apart)."""
        if not self.feed.started:
            self.feed.start_for(min(first_ms, self._oldest_owned_ms()) - self.features.allowed_lateness_ms)
            self.feed.apply_labels(self.unwritten_frauds)
        started = time.monotonic()
        self.feed.advance_for(last_ms)
        # Own fraud labels applied before their payment was within reach, and not yet in the store
        # where the payment's read would find them: apply them again now that it may be.
        self.feed.apply_labels(self.unwritten_frauds)
        if time.monotonic() - started > 5:
            logger.info("terminal state read up to %s from the store", datetime_of(self.feed.payments_until_us or 0))


def _label_bound_ms(label_us: int) -> int:
    """Payments before this (epoch ms, exclusive) see only labels the group has applied or written: a
    label counts from LABEL_SETTLE_S after its labelled_at."""
    if label_us <= NEVER:
        return NEVER
    return min(ALWAYS, (label_us // 1_000_000 + LABEL_SETTLE_S) * 1_000)


def _terminal_bound_ms(payment_us: int) -> int:
    """Payments before this (epoch ms, exclusive) have terminal windows the group has fully written."""
    if payment_us <= NEVER:
        return NEVER
    return min(ALWAYS, (payment_us // 1_000_000 + TERMINAL_LABEL_DELAY_S) * 1_000)
