"""The group's shared watermark: how far every scorer of the group has progressed, in event time.

Terminal windows count every card's payments and fraud labels, and another scorer owns most cards. Its
payments and labels reach this scorer through the score store, so this scorer may only use them up to
where that scorer has written everything (Flink's watermark: the minimum over all parallel instances).
Each scorer writes its partitions' progress with its rows (`stream_progress`); the minimum over every
partition of the shard topic (payments) and of the labels topic is what all of them can rely on.

A partition this scorer owns counts with what it knows itself: payments as written, labels as applied
(it applies its own labels at once, so they never wait for the store). A scorer that owns every partition
never reads the table.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from payment_platform.store.rows import Progress
from payment_platform.stream.event_time import ALWAYS, NEVER


class SharedWatermark:
    """Own partitions' progress in memory, the others' from the score store."""

    def __init__(
        self,
        read_progress: Callable[[], Progress],
        shard_topic: str,
        shards: int,
        labels_topic: str,
        label_partitions: int,
        refresh_s: float = 0.05,
    ) -> None:
        self.read_progress = read_progress  # the group's progress as stored (riding out an outage)
        self.shard_topic = shard_topic
        self.labels_topic = labels_topic
        self.shard_keys = [(shard_topic, p) for p in range(shards)]
        self.label_keys = [(labels_topic, p) for p in range(label_partitions)]
        self.refresh_s = refresh_s
        self.own: dict[tuple[str, int], int] = {}  # progress of the partitions this scorer owns
        self._others: dict[tuple[str, int], int] = {}
        self._read_at = 0.0

    def take_over(self, keys: list[tuple[str, int]]) -> None:
        """Partitions newly assigned: they start where their previous owner had written."""
        stored = self.read_progress()
        for key in keys:
            self.own[key] = max(self.own.get(key, NEVER), stored.get(key, NEVER))

    def give_up(self, keys: list[tuple[str, int]]) -> None:
        for key in keys:
            self.own.pop(key, None)

    def advance(self, key: tuple[str, int], progress_us: int) -> None:
        if progress_us > self.own.get(key, NEVER):
            self.own[key] = progress_us

    def payments_us(self) -> int:
        """Every payment of the group with an earlier event time is in the score store."""
        return min(self._progress(self.shard_keys), default=NEVER)

    def newest_payments_us(self) -> int:
        """The furthest any shard of the group has written: how far the group's payments have come."""
        return max(self._progress(self.shard_keys), default=NEVER)

    def oldest_own_payments_us(self) -> int:
        """The least progress among the shards this scorer owns (ALWAYS with none that has any)."""
        owned = [us for (topic, _), us in self.own.items() if topic == self.shard_topic and us > NEVER]
        return min(owned, default=ALWAYS)

    def labels_us(self) -> int:
        """Every label of the group with an earlier labelled_at is applied here or in the score store."""
        return min(self._progress(self.label_keys), default=NEVER)

    def _progress(self, keys: list[tuple[str, int]]) -> list[int]:
        """The progress of each of these partitions: this scorer's own, the others' as last read."""
        if any(key not in self.own for key in keys):
            self._refresh()
        return [self.own[key] if key in self.own else self._others.get(key, NEVER) for key in keys]

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._read_at >= self.refresh_s:
            self._others = self.read_progress()
            self._read_at = now
