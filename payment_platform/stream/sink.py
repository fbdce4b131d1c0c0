"""The write side of the scorer: rows, then decisions, then dead letters, then (in the loop) offsets.

One batch at a time runs on a background thread while the loop reads and scores the next. Its steps are in
the order that makes a crash anywhere safe (quix-streams' checkpoint order):
1. one database transaction: the scored rows, the labels, the partitions' progress, the scorer's status;
2. the decisions of the rows stored, on `payments.decisions`, confirmed by the broker;
3. the dead letters, confirmed by the broker;
4. back on the loop's thread, the offsets are committed.
A crash before 4 replays the batch: its stored rows are found again and their decisions sent again,
identical. A database error is retried with backoff when it can pass (a lock, a lost connection) and
stops the scorer in one line when it cannot (a privilege, the schema), commits held either way.

The sink owns the score store: the reads the scorer needs (cards to restore, stored payments, the group's
progress, terminal history) go through `read`, with the same retry policy as the writes.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np
import sqlalchemy as sa
from confluent_kafka import Producer, TopicPartition

from payment_platform.features.definitions import amount_cents
from payment_platform.kafka.delivery import DeliveryTracker
from payment_platform.store.errors import with_retries
from payment_platform.store.event_time import epoch_us_of
from payment_platform.store.rows import LabelRow, Progress, ScoredBatch
from payment_platform.store.stream_state import StoredPayment, stored_payments
from payment_platform.store.writer import ScoreWriter
from payment_platform.stream.decisions import decision_message, iso_z
from payment_platform.stream.faults import crash_point
from payment_platform.stream.intake import CONFLICT, DeadLetter, routed_dead_letter
from payment_platform.stream.records import RoutedPayment

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class WriteBatch:
    """Everything one batch writes, and the offsets to commit once it is written."""

    scored: ScoredBatch
    labels: list[LabelRow] = field(default_factory=list)
    progress: Progress = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    republish: list[tuple[str, StoredPayment]] = field(default_factory=list)  # duplicates of stored rows
    originals: list[RoutedPayment] = field(default_factory=list)  # each row's message
    offsets: list[TopicPartition] = field(default_factory=list)
    status: dict[str, object] | None = None


@dataclass(frozen=True)
class WriteOutcome:
    batch: WriteBatch
    inserted: int  # new rows
    lost: list[int]  # rows of the batch that lost their transaction_id to another payment meanwhile
    decisions: int
    dead_letters: int


class ScoreSink:
    """Writes batches to the score store and sends their decisions and dead letters."""

    def __init__(
        self,
        writer: ScoreWriter,
        producer: Producer,
        decisions_topic: str,
        dlq_topic: str,
        payment_topic: str,
        consumer_group: str,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.writer = writer
        self.decisions_topic = decisions_topic
        self.dlq_topic = dlq_topic
        self.payment_topic = payment_topic
        self.consumer_group = consumer_group
        self.should_stop = should_stop
        self.records = DeliveryTracker(producer, "decision/DLQ")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="score-sink")
        self._pending: Future[WriteOutcome] | None = None

    @property
    def engine(self) -> sa.Engine:
        return self.writer.engine

    def read(self, call: Callable[[sa.Engine], T], what: str) -> T:
        """A read of the score store that rides out an outage (the loop then waits, offsets held)."""
        return with_retries(lambda: call(self.engine), what, self.should_stop, self.engine.dispose)

    def write_status(self, status: dict[str, object]) -> None:
        """The scorer's health row alone, once (at a stop: best effort, no retry)."""
        self.writer.write([], status=status)

    @property
    def busy(self) -> bool:
        return self._pending is not None and not self._pending.done()

    def submit(self, batch: WriteBatch) -> WriteOutcome | None:
        """Start writing a batch; first waits for the one in flight and returns its outcome."""
        previous = self.wait()
        self._pending = self._pool.submit(self._write, batch)
        return previous

    def poll(self) -> WriteOutcome | None:
        """The outcome of the batch in flight if it is done (re-raising its failure), else None."""
        if self._pending is None or not self._pending.done():
            return None
        return self.wait()

    def wait(self) -> WriteOutcome | None:
        pending, self._pending = self._pending, None
        return None if pending is None else pending.result()

    def close(self) -> WriteOutcome | None:
        try:
            return self.wait()
        finally:
            self._pool.shutdown(wait=True)

    def _write(self, batch: WriteBatch) -> WriteOutcome:
        """The steps of one batch, on the sink's thread."""
        stamped = replace(batch.scored, scored_at=dt.datetime.now(dt.UTC).replace(tzinfo=None))
        inserted = self._store(replace(batch, scored=stamped))
        lost: list[int] = []
        if inserted < len(stamped):
            lost = self._losers(stamped)
        if len(stamped):
            crash_point("written")
        ticket = self.records.open()
        decisions = self._send_decisions(ticket, stamped, set(lost), batch.republish)
        dead_letters = list(batch.dead_letters)
        dead_letters += [routed_dead_letter(batch.originals[row], self.payment_topic, CONFLICT) for row in lost]
        for letter in dead_letters:
            self.records.send(ticket, self.dlq_topic, letter.value, letter.key, letter.headers)
        self.records.wait(ticket, self.should_stop)
        return WriteOutcome(batch, inserted, lost, decisions, len(dead_letters))

    def close_store(self) -> None:
        self.writer.close()

    def _store(self, batch: WriteBatch) -> int:
        """The database transaction, retried while the failure can pass."""
        return with_retries(
            lambda: self.writer.write(
                batch.scored,
                batch.labels,
                progress=batch.progress,
                consumer_group=self.consumer_group,
                status=batch.status,
            ),
            f"{len(batch.scored)} payments and {len(batch.labels)} labels not written",
            self.should_stop,
            self.writer.engine.dispose,
        )

    def _losers(self, scored: ScoredBatch) -> list[int]:
        """Rows of the batch not inserted because another payment took their transaction_id in between
        (another scorer, another card): those whose stored content is not theirs."""
        stored = stored_payments(self.writer.engine, scored.transaction_id)
        cents = amount_cents(scored.amount)
        lost = []
        for row, tx in enumerate(scored.transaction_id):
            twin = stored.get(tx)
            if twin is not None and (twin.customer_id, twin.amount_cents, twin.event_us) != (
                scored.customer_id[row],
                int(cents[row]),
                int(scored.event_us[row]),
            ):
                lost.append(row)
        return lost

    def _send_decisions(
        self, ticket: int, scored: ScoredBatch, lost: set[int], republish: list[tuple[str, StoredPayment]]
    ) -> int:
        assert scored.scored_at is not None
        decided = iso_z(np.array([epoch_us_of(scored.scored_at)], dtype=np.int64))[0]
        event_times = iso_z(scored.event_us)
        sent = 0
        for row, (tx, card, status, score, reasons) in enumerate(
            zip(
                scored.transaction_id,
                scored.customer_id,
                scored.status,
                scored.score.tolist(),
                scored.reasons,
                strict=True,
            )
        ):
            if row in lost:
                continue
            key, value = decision_message(
                tx, card, status, score, reasons, scored.model_version, event_times[row], decided
            )
            self.records.send(ticket, self.decisions_topic, value, key)
            sent += 1
        for tx, stored in republish:
            times = iso_z(np.array([stored.event_us, epoch_us_of(stored.scored_at)], dtype=np.int64))
            key, value = decision_message(
                tx,
                stored.customer_id,
                stored.status,
                stored.score,
                stored.reasons,
                stored.model_version,
                times[0],
                times[1],
            )
            self.records.send(ticket, self.decisions_topic, value, key)
            sent += 1
        return sent
