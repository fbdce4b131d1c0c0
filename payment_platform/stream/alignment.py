"""Event-time alignment of the consumed partitions: no payment partition runs far ahead of the others.

Features are defined on event time across partitions: a terminal's windows count payments of every card,
whichever partition carries them, and its fraud shares need the labels (another topic) of payments a week
older. Live traffic keeps all partitions at about the same event time, but a backlog (a restart after
downtime, a replay, a benchmark) does not: one consumed batch may hold a month of one partition before
the client fetches the next one, and its payments would be featurised before the other partitions'
earlier payments and labels.

Like watermark alignment in stream processors, a payment whose event time is more than `max_skew_ms`
ahead of every other active partition (payments or labels) is not processed yet: its partition is held at
that offset and paused, and resumed once the others have caught up. The scorer keeps the held partition's
messages already fetched aside, in order, and processes them first when it is released: nothing is fetched
twice, and the pause bounds what is kept aside by the client's prefetch. A partition at its end, or
silent for `idle_after_s` (stuck, or simply without traffic), is idle and holds nobody back. Label
partitions are never held: a label ahead of its payment waits in the feature state anyway. The skew must
stay well under the features' allowed lateness.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

logger = logging.getLogger(__name__)

Key = tuple[str, int]
_UNKNOWN = -(2**62)  # assigned, nothing consumed yet: could be anywhere in time
_NO_BOUND = 2**62


class EventTimeAlignment:
    """Decides, message by message, whether a payment may be processed now or must wait."""

    def __init__(self, consumer: Consumer, held_topic: str, max_skew_ms: int, idle_after_s: float = 5.0) -> None:
        self.consumer = consumer
        self.held_topic = held_topic
        self.max_skew_ms = max_skew_ms
        self.idle_after_s = idle_after_s
        self._heard: dict[Key, float] = {}  # monotonic time of the partition's last message or assignment
        self._times: dict[Key, int] = {}  # newest event time seen per partition
        self._idle: set[Key] = set()
        self._held: set[Key] = set()  # partitions whose payments wait for the others
        self._paused: set[Key] = set()
        self._bounds: dict[Key, int] = {}  # bounds as of the batch's start, or the last hold: at most the current
        self._now = time.monotonic()

    def assigned(self, partitions: list[TopicPartition]) -> None:
        now = time.monotonic()
        for tp in partitions:
            self._times.setdefault((tp.topic, tp.partition), _UNKNOWN)
            self._heard[tp.topic, tp.partition] = now

    def revoked(self, partitions: list[TopicPartition]) -> None:
        # The client keeps a partition's pause across losing and regaining it: whoever gets it next
        # (this consumer, after a broker restart or a rebalance) must find it flowing.
        paused = [tp for tp in partitions if (tp.topic, tp.partition) in self._paused]
        if paused:
            try:
                self.consumer.resume([TopicPartition(tp.topic, tp.partition) for tp in paused])
            except KafkaException as exc:
                logger.warning("could not resume held partitions on revoke (%s)", exc.args[0])
        for tp in partitions:
            key = (tp.topic, tp.partition)
            for table in (self._times, self._bounds, self._heard):
                table.pop(key, None)
            self._held.discard(key)
            self._idle.discard(key)
            self._paused.discard(key)

    def start_batch(self) -> None:
        """Fix each payment partition's bound for the coming batch from the others' progress."""
        self._now = time.monotonic()
        self._bounds = {key: self._bound(key) for key in self._times if key[0] == self.held_topic}

    def observe(self, key: Key, event_ms: int) -> None:
        """A message processed now (a label, or an invalid message), with its event time."""
        self._idle.discard(key)
        self._heard[key] = self._now
        if event_ms > self._times.get(key, _UNKNOWN):
            self._times[key] = event_ms

    def admit(self, key: Key, event_ms: int) -> bool:
        """Whether this payment is processed now; False: its partition is held here, and the caller keeps
        it and the partition's later messages aside until `finish_batch` releases the partition."""
        if event_ms > self._bounds.get(key, _NO_BOUND) and event_ms > (bound := self._bound(key)):
            self._bounds[key] = bound
            self.observe(key, event_ms)
            self._held.add(key)
            return False
        self.observe(key, event_ms)
        return True

    def at_end(self, key: Key) -> None:
        if key not in self._held:
            self._idle.add(key)

    def finish_batch(self) -> list[Key]:
        """Pause the partitions held in this batch; resume those the others caught up with, and return
        them: their messages kept aside come first in the next batch."""
        self._now = time.monotonic()
        to_pause = [key for key in self._held if key not in self._paused]
        if to_pause:
            self.consumer.pause([TopicPartition(*key) for key in to_pause])
            self._paused.update(to_pause)
        to_resume = [key for key in self._paused if self._times[key] <= self._bound(key) - self.max_skew_ms // 2]
        if to_resume:
            self.consumer.resume([TopicPartition(*key) for key in to_resume])
            self._paused.difference_update(to_resume)
            for key in to_resume:
                self._held.discard(key)
        return to_resume

    def _bound(self, key: Key) -> int:
        silent_since = self._now - self.idle_after_s
        others = [
            t
            for other, t in self._times.items()
            if other != key
            and other not in self._idle
            and (other in self._paused or self._heard.get(other, silent_since) > silent_since)
        ]
        return min(others) + self.max_skew_ms if others else _NO_BOUND
