"""Records that are known to be delivered before the offsets of what produced them are committed.

A Kafka producer only queues a record; whether the broker took it is reported later, to a delivery
callback. Committing offsets before that report would lose the record for good if delivery then fails
(a deleted topic, a denied ACL, a record the broker refuses). Every record the platform produces for a
consumed message (a dead letter, a repartitioned payment, a decision) is therefore sent through a
`DeliveryTracker`, under a ticket: the broker's report for each record counts down its ticket, a failed
record is sent again (rebuilt from the report, which carries it whole) after a backoff, with one log line
per failure, and the caller commits once its ticket is done.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, Message, Producer

from payment_platform.kafka.messages import position

logger = logging.getLogger(__name__)

RETRY_FIRST_S, RETRY_MAX_S = 0.5, 30.0
# A record header as the client takes it; a delivery report may give a record's headers back as a dict.
Header = tuple[str, str | bytes | None]
Headers = list[Header] | dict[str, str | bytes | None]


class DeliveryStopped(RuntimeError):
    """Asked to stop while records were still undelivered: their offsets must not be committed."""


@dataclass
class _Ticket:
    """Records sent together, counted down by the broker's reports (the callback of each of them)."""

    tracker: DeliveryTracker
    pending: int = 0
    closed: bool = False

    def delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self.pending -= 1
            self.tracker.backoff_s = RETRY_FIRST_S
        else:
            self.tracker.failed(self, error, message)


@dataclass
class DeliveryTracker:
    """Sends records and follows each one until delivered, re-sending failures."""

    producer: Producer
    name: str  # for log lines: "DLQ", "decisions", "repartition"
    failures: int = 0
    _tickets: dict[int, _Ticket] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=itertools.count)
    _retry: list[tuple[float, _Ticket, Message]] = field(default_factory=list)
    backoff_s: float = RETRY_FIRST_S
    _retry_at: float = 0.0

    def open(self) -> int:
        """A new ticket: the records sent under it are done together."""
        ticket = next(self._ids)
        self._tickets[ticket] = _Ticket(self)
        return ticket

    def send(
        self,
        ticket: int,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: list[Header] | None = None,
        partition: int | None = None,
    ) -> None:
        state = self._tickets[ticket]
        state.pending += 1
        self._produce(state, topic, value, key, headers, partition)

    def close(self, ticket: int) -> None:
        """No more records under this ticket."""
        self._tickets[ticket].closed = True

    def done(self, ticket: int) -> bool:
        """Whether every record of a closed ticket is delivered (the ticket is then forgotten)."""
        state = self._tickets.get(ticket)
        if state is None:
            return True
        if state.closed and state.pending == 0:
            del self._tickets[ticket]
            return True
        return False

    @property
    def undelivered(self) -> int:
        return sum(state.pending for state in self._tickets.values())

    def poll(self) -> None:
        """Serve delivery reports, and send again the failed records whose backoff is over."""
        self.producer.poll(0)
        if self._retry:
            now = time.monotonic()
            due = [item for item in self._retry if item[0] <= now]
            self._retry = [item for item in self._retry if item[0] > now]
            for _, state, message in due:
                topic, partition, _ = position(message)
                self._produce(state, topic, message.value(), message.key(), message.headers(), partition)

    def wait(self, ticket: int, should_stop: Callable[[], bool]) -> None:
        """Until every record of the ticket is delivered; raises DeliveryStopped if asked to stop first."""
        self.close(ticket)
        while not self.done(ticket):
            self.producer.flush(0.1)
            self.poll()
            if self._retry and not self.done(ticket):
                if should_stop():
                    raise DeliveryStopped(
                        f"stopping with {self.undelivered} {self.name} records undelivered: offsets not committed"
                    )
                time.sleep(min(0.1, max(0.0, min(at for at, _, _ in self._retry) - time.monotonic())))

    def failed(self, state: _Ticket, error: KafkaError, message: Message) -> None:
        """A record the broker did not take: sent again with the others of its round once the backoff is
        over (it doubles with each round, and a delivery resets it); the ticket stays open."""
        self.failures += 1
        if not self._retry:  # a new round of failures: one line, one backoff
            logger.warning(
                "%s record to %s not delivered (%s): sending it again in %.1fs; offsets held",
                self.name,
                message.topic(),
                error.str(),
                self.backoff_s,
            )
            self._retry_at = time.monotonic() + self.backoff_s
            self.backoff_s = min(self.backoff_s * 2, RETRY_MAX_S)
        self._retry.append((self._retry_at, state, message))

    def _produce(
        self,
        state: _Ticket,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Headers | None,
        partition: int | None,
    ) -> None:
        while True:
            try:
                if partition is None or partition < 0:
                    self.producer.produce(topic, value, key, headers=headers, on_delivery=state.delivered)
                else:
                    self.producer.produce(
                        topic, value, key, partition=partition, headers=headers, on_delivery=state.delivered
                    )
                return
            except BufferError:  # the local queue is full: let deliveries drain
                self.producer.poll(0.05)
