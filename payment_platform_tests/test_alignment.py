"""Event-time alignment, unit level: which payment partition is held, paused, released and resumed."""

from __future__ import annotations

from confluent_kafka import TopicPartition

from payment_platform.features.definitions import DAY_MS, HOUR_MS
from payment_platform.stream.alignment import EventTimeAlignment

T0 = 1_780_000_000_000
P0, P1 = ("payments", 0), ("payments", 1)


class RecordingConsumer:
    """Records pause and resume calls (all the alignment asks of the client)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, int]]]] = []

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("pause", [(tp.topic, tp.partition) for tp in partitions]))

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("resume", [(tp.topic, tp.partition) for tp in partitions]))


def aligned() -> tuple[EventTimeAlignment, RecordingConsumer]:
    consumer = RecordingConsumer()
    alignment = EventTimeAlignment(consumer, "payments", max_skew_ms=DAY_MS)  # type: ignore[arg-type]
    alignment.assigned([TopicPartition(*P0), TopicPartition(*P1)])
    alignment.start_batch()
    for key in (P0, P1):  # until each partition has been heard from, it could be anywhere in time
        alignment.observe(key, T0)
    return alignment, consumer


def test_a_partition_a_day_ahead_is_held_paused_and_released_once_the_other_catches_up() -> None:
    alignment, consumer = aligned()
    alignment.start_batch()
    assert alignment.admit(P1, T0)
    assert alignment.admit(P0, T0 + 12 * HOUR_MS)  # within the skew
    assert not alignment.admit(P0, T0 + 2 * DAY_MS)  # more than a day ahead of P1: held here
    assert alignment.finish_batch() == []
    assert consumer.calls == [("pause", [P0])]  # paused, not rewound: nothing is fetched twice

    alignment.start_batch()
    assert alignment.admit(P1, T0 + 20 * HOUR_MS)
    assert alignment.finish_batch() == []  # P0 still more than half the skew ahead

    alignment.start_batch()
    assert alignment.admit(P1, T0 + 36 * HOUR_MS)
    assert alignment.finish_batch() == [P0]  # released: its messages set aside come first next
    assert consumer.calls[-1] == ("resume", [P0])
    alignment.start_batch()
    assert alignment.admit(P0, T0 + 2 * DAY_MS)


def test_a_partition_at_its_end_holds_nobody_back() -> None:
    alignment, _ = aligned()
    alignment.start_batch()
    assert alignment.admit(P1, T0)
    alignment.at_end(P1)
    assert alignment.admit(P0, T0 + 30 * DAY_MS)


def test_a_held_partition_is_resumed_when_revoked() -> None:
    """The client keeps a pause across losing a partition: its next owner (maybe this consumer, after the
    group was lost in a broker restart) must find it flowing."""
    alignment, consumer = aligned()
    alignment.start_batch()
    assert alignment.admit(P1, T0)
    assert not alignment.admit(P0, T0 + 3 * DAY_MS)
    alignment.finish_batch()
    alignment.revoked([TopicPartition(*P0)])
    assert consumer.calls[-1] == ("resume", [P0])
    alignment.assigned([TopicPartition(*P0)])
    alignment.start_batch()
    alignment.observe(P0, T0)
    assert alignment.admit(P0, T0 + HOUR_MS)  # no stale hold on the partition regained
    assert alignment.finish_batch() == []
