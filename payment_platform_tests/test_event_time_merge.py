"""The event-time merge's idle rule, in memory: what a partition at its end lets through, and when.

An idle partition vouches only for what the others had delivered `max_idle_ms` earlier, so a partition
that wakes up a few milliseconds after the others (a replay's next chunk) is not taken for late.
"""

from __future__ import annotations

import time

from payment_platform.stream.event_time import EventTimeMerge, LabelProgress
from payment_platform.stream.records import RoutedPayment, Watermark

IDLE_MS = 200
E = 1_780_000_000_000_000  # the end of the last burst (epoch µs)
T = E + 3_600_000_000  # a payment of the next burst, an hour of event time later


def payment(event_us: int) -> RoutedPayment:
    return RoutedPayment("tx", "C1", "T1", 10.0, "EUR", event_us, 0, 0, None, None)


def settle() -> None:
    time.sleep(IDLE_MS / 1_000 * 1.5)


def test_a_partition_idle_since_the_last_burst_holds_the_next_for_the_idle_wait() -> None:
    merge = EventTimeMerge(inputs=2, repartitioned=True, max_idle_ms=IDLE_MS, max_buffered=1_000)
    merge.assigned(0)
    merge.watermark(0, 0, Watermark(0, E, idle=True))
    merge.watermark(0, 1, Watermark(1, E, idle=True))
    merge.input_bound_us(0)
    settle()
    assert merge.input_bound_us(0) == (E // 1_000 + 1) * 1_000  # both idle: everything delivered is through

    merge.add(0, 2, payment(T))  # input 0 wakes up with the next burst; input 1 has not shown its part yet
    merge.watermark(0, 3, Watermark(0, T, idle=False))
    assert merge.input_bound_us(0) < T and merge.release(2**62) == []
    settle()  # input 1 stayed at its end the whole wait: now it vouches for the burst
    assert merge.input_bound_us(0) == T
    merge.watermark(0, 4, Watermark(0, T + 1_000, idle=False))
    assert [entry[0].event_us for _, entry in merge.release(2**62)] == [T]


def test_without_the_repartition_stage_an_idle_shard_vouches_for_the_group_after_the_wait() -> None:
    seen = [E]
    merge = EventTimeMerge(
        inputs=2, repartitioned=False, max_idle_ms=IDLE_MS, max_buffered=1_000, group_seen_us=lambda: seen[0]
    )
    merge.assigned(1)
    merge.at_end(1)
    merge.input_bound_us(1)
    settle()
    assert merge.input_bound_us(1) == (E // 1_000 + 1) * 1_000
    seen[0] = T  # another shard delivered the next burst
    assert merge.input_bound_us(1) == (E // 1_000 + 1) * 1_000
    settle()
    assert merge.input_bound_us(1) == (T // 1_000 + 1) * 1_000


def test_a_label_partition_at_its_end_catches_up_with_the_payments_only_after_the_wait() -> None:
    seen = [E]
    merge = EventTimeMerge(
        inputs=1, repartitioned=True, max_idle_ms=IDLE_MS, max_buffered=1, group_seen_us=lambda: seen[0]
    )
    labels = LabelProgress(merge.group_vouched_us, max_idle_ms=IDLE_MS)
    labels.assigned(0)
    labels.consumed(0, 0, E - 1_000_000)
    labels.at_end(0)
    assert labels.progress_us(0) == E - 1_000_000  # not yet: a label may still be on its way
    settle()
    assert labels.progress_us(0) == E
    seen[0] = T  # payments of the next burst; its labels may come a moment later
    assert labels.progress_us(0) == E
    settle()
    assert labels.progress_us(0) == T
    labels.consumed(0, 1, E + 1_000_000)  # a label came: the partition is no longer at its end
    assert labels.progress_us(0) == E + 1_000_000
