"""Stage two's event-time merge: payments are featurised in event-time order, whatever their delivery.

Each card-keyed partition ("shard") this scorer owns buffers its payments until no earlier one can still
arrive: every input partition has sent a later payment, or is idle (stage one's watermarks, carried in
the shard itself, stream/records.py). Without the repartition stage the shard is the input partition,
and its own progress says the same. A payment is then released when, in addition, the group has written
the labels and the payments its features reach back to (the shared watermark, stream/shared_watermark.py).
A released batch holds every payment of a millisecond or none, so ties are featurised together.

Labels are never held: they are read as fast as they come, and applied to the state at once (a label
changes nothing before it is visible). A label partition's progress is the newest labelled_at it has
delivered, or, once it has been at its end for `max_idle_ms` (as an idle payment input), at least the newest
payment time the group's inputs have delivered: caught up, it holds no payment back, and a label that comes
after payments later than its time is late.
That claim is made of the stream's content, never of the wall clock, so it stays true when it is stored
and taken over by the partition's next owner: a replay of last month, stopped and resumed, waits for its
labels as an uninterrupted one would.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from payment_platform.stream.records import RoutedPayment, Watermark

NEVER = -(2**62)  # a bound before every event time: nothing may be released
ALWAYS = 2**62


# A payment waiting in the merge, with its offset in the shard (for the commit).
Buffered = tuple[RoutedPayment, int]


class Vouched:
    """What a partition at its end may vouch for: the newest event time seen elsewhere at least `max_idle_s`
    ago (Kafka Streams' max.task.idle.ms, per record). A partition idle for minutes does not let the
    first payments of a new burst through at once: its own part of the burst may be a few milliseconds
    behind (a replay's producer sends each partition's batch in turn). It has `max_idle_s` to show it."""

    def __init__(self, max_idle_s: float) -> None:
        self.max_idle_s = max_idle_s
        self._samples: deque[tuple[float, int]] = deque()  # (monotonic, seen_us), both increasing
        self._settled = NEVER

    def __call__(self, seen_us: int) -> int:
        now = time.monotonic()
        if seen_us > (self._samples[-1][1] if self._samples else self._settled):
            self._samples.append((now, seen_us))
        cutoff = now - self.max_idle_s
        while self._samples and self._samples[0][0] <= cutoff:
            self._settled = self._samples.popleft()[1]
        return self._settled


@dataclass
class _Shard:
    payments: list[Buffered] = field(default_factory=list)
    newest_held_us: int = NEVER  # of the payments held: the newest and oldest event times
    oldest_held_us: int = ALWAYS
    inputs: dict[int, Watermark] = field(default_factory=dict)  # with the repartition stage
    newest_us: int | None = None  # without it: the newest event time consumed
    end_since: float | None = None  # without it: at its end since (monotonic)
    next_offset: int | None = None  # after the last message consumed
    paused: bool = False


class EventTimeMerge:
    """Buffers and releases the payments of the shards this scorer owns."""

    def __init__(
        self,
        inputs: int,
        repartitioned: bool,
        max_idle_ms: int,
        max_buffered: int,
        group_seen_us: Callable[[], int] | None = None,
    ) -> None:
        self.inputs = inputs  # partitions of the payments topic
        self.repartitioned = repartitioned
        # How far the group's payments have come (default: as far as this scorer's shards know): without the
        # repartition stage, no shard carries the other inputs' watermarks, so an idle shard asks the group.
        self.group_seen_us = group_seen_us or self.newest_seen_us
        self.max_idle_s = max_idle_ms / 1_000
        self.max_buffered = max_buffered
        self._shards: dict[int, _Shard] = {}
        self._vouched: dict[int, Vouched] = {}  # per shard: what its idle inputs vouch for (repartitioned)
        self._group_vouched = Vouched(self.max_idle_s)
        self.buffered = 0

    @property
    def shards(self) -> list[int]:
        return list(self._shards)

    def assigned(self, shard: int) -> None:
        self._shards.setdefault(shard, _Shard())
        self._vouched.setdefault(shard, Vouched(self.max_idle_s))

    def revoked(self, shard: int) -> None:
        self._vouched.pop(shard, None)
        dropped = self._shards.pop(shard, None)
        if dropped is not None:
            self.buffered -= len(dropped.payments)

    def add(self, shard: int, offset: int, routed: RoutedPayment) -> None:
        state = self._shards[shard]
        state.payments.append((routed, offset))
        state.next_offset = offset + 1
        state.end_since = None
        event_us = routed.event_us
        if event_us > state.newest_held_us:
            state.newest_held_us = event_us
        if event_us < state.oldest_held_us:
            state.oldest_held_us = event_us
        if state.newest_us is None or event_us > state.newest_us:
            state.newest_us = event_us
        self.buffered += 1

    def watermark(self, shard: int, offset: int, mark: Watermark) -> None:
        """A watermark record read in a shard (repartition stage): the input's progress only grows."""
        state = self._shards[shard]
        state.next_offset = offset + 1
        known = state.inputs.get(mark.partition)
        if known is None or mark.event_us >= known.event_us:
            state.inputs[mark.partition] = mark
        else:  # an older owner of the input, replaying: keep the progress, take the idle flag
            state.inputs[mark.partition] = Watermark(mark.partition, known.event_us, mark.idle)

    def skipped(self, shard: int, offset: int) -> None:
        """A message of the shard that holds no payment (invalid): it only moves the offset on."""
        state = self._shards[shard]
        state.next_offset = offset + 1
        state.end_since = None

    def at_end(self, shard: int) -> None:
        state = self._shards.get(shard)
        if state is not None and state.end_since is None:
            state.end_since = time.monotonic()

    def input_bound_us(self, shard: int) -> int:
        """Event time before which no more payment of this shard can arrive (exclusive).

        An idle input holds nothing back, but the bound it gives is what the inputs had delivered
        `max_idle_ms` ago, never more (`Vouched`): the bound is stored as the shard's progress and taken
        over by its next owner, so it must stay true when the inputs wake up (a replay resumed with next
        month, after a stop; the next chunk of a replay running)."""
        state = self._shards[shard]
        if self.repartitioned:
            if len(state.inputs) < self.inputs:
                return NEVER
            vouched = self._vouched[shard](_seen_us(state))  # sampled always: the clock runs while active
            active = [mark.event_us for mark in state.inputs.values() if not mark.idle]
            if len(active) == len(state.inputs):
                return min(active)
            return min([*active, _bound_after(vouched)])
        vouched = self.group_vouched_us()  # sampled always: the clock runs while active
        if state.end_since is not None and time.monotonic() - state.end_since >= self.max_idle_s:
            if self.group_seen_us() <= NEVER:
                return ALWAYS  # nothing delivered anywhere: nothing to hold
            return _bound_after(vouched)
        return NEVER if state.newest_us is None else state.newest_us

    def group_vouched_us(self) -> int:
        """How far the group's payments had come `max_idle_ms` ago (`Vouched`): what an idle shard without
        the repartition stage, or a caught-up label partition, lets through."""
        return self._group_vouched(self.group_seen_us())

    def release(self, bound_ms: int) -> list[tuple[int, Buffered]]:
        """The buffered payments that may be featurised now: each whose millisecond is before both its
        shard's input bound and `bound_ms`. (Usually every payment held is, and goes without a look.)"""
        released: list[tuple[int, Buffered]] = []
        for shard, state in self._shards.items():
            if not state.payments:
                continue
            bound_us = min(self.input_bound_us(shard) // 1_000, bound_ms) * 1_000  # ms granularity
            if state.newest_held_us < bound_us:
                released += [(shard, entry) for entry in state.payments]
                self.buffered -= len(state.payments)
                state.payments = []
                state.newest_held_us, state.oldest_held_us = NEVER, ALWAYS
            elif state.oldest_held_us < bound_us:
                keep = []
                for entry in state.payments:
                    if entry[0].event_us < bound_us:
                        released.append((shard, entry))
                    else:
                        keep.append(entry)
                self.buffered -= len(state.payments) - len(keep)
                state.payments = keep
                state.oldest_held_us = min(entry[0].event_us for entry in keep)
                state.newest_held_us = max(entry[0].event_us for entry in keep)
        return released

    def newest_seen_us(self) -> int:
        """The newest payment time the group's inputs have delivered, as far as this scorer's shards know
        (the inputs' watermarks carried in each shard, and the shard's own newest payment); NEVER with no shard."""
        return max((_seen_us(state) for state in self._shards.values()), default=NEVER)

    def written_before_us(self, shard: int) -> int:
        """Once what is released now is written, every payment of the shard before this event time is:
        the oldest payment still held, or where the inputs are."""
        state = self._shards[shard]
        return min(state.oldest_held_us, self.input_bound_us(shard))

    def commit_offset(self, shard: int) -> int | None:
        """The shard offset up to which everything consumed is released: the oldest buffered payment, or
        the next message."""
        state = self._shards.get(shard)
        if state is None:
            return None
        if state.payments:
            return min(entry[1] for entry in state.payments)
        return state.next_offset

    def to_pause(self) -> tuple[list[int], list[int]]:
        """(shards to pause, shards to resume): pause those holding payments while the buffers are full."""
        pause, resume = [], []
        for shard, state in self._shards.items():
            if not state.paused and self.buffered > self.max_buffered and state.payments:
                state.paused = True
                pause.append(shard)
            elif state.paused and self.buffered <= self.max_buffered // 2:
                state.paused = False
                resume.append(shard)
        return pause, resume

    def waiting(self) -> dict[int, str]:
        """What each shard with buffered payments waits for, for the progress line."""
        reasons = {}
        for shard, state in self._shards.items():
            if not state.payments:
                continue
            if self.repartitioned and len(state.inputs) < self.inputs:
                reasons[shard] = f"watermarks of {self.inputs - len(state.inputs)} input partitions"
            elif self.repartitioned:
                slowest = min((m for m in state.inputs.values() if not m.idle), key=lambda m: m.event_us, default=None)
                if slowest is not None:
                    reasons[shard] = f"input partition {slowest.partition}"
        return reasons


def _seen_us(state: _Shard) -> int:
    """The newest payment time a shard knows of: its inputs' watermarks and its own newest payment."""
    own = NEVER if state.newest_us is None else state.newest_us
    return max([own, *(mark.event_us for mark in state.inputs.values())])


def _bound_after(vouched_us: int) -> int:
    """The bound an idle partition gives: the millisecond after what it vouches for (nothing: NEVER)."""
    return NEVER if vouched_us <= NEVER else _after_millisecond(vouched_us)


def _after_millisecond(event_us: int) -> int:
    """The start of the millisecond after event_us: a bound that releases the whole millisecond of it."""
    return (event_us // 1_000 + 1) * 1_000


@dataclass
class _LabelPartition:
    newest_us: int | None = None
    end_since: float | None = None  # seen at its end then (monotonic), and nothing came since
    next_offset: int | None = None


class LabelProgress:
    """How far each label partition this scorer owns has delivered its labels, in event time."""

    def __init__(self, payments_vouched_us: Callable[[], int], max_idle_ms: int = 0) -> None:
        # What a label partition at its end has caught up with: the group's payments as they were
        # max_idle_ms ago (EventTimeMerge.group_vouched_us). As for payment inputs, it must have been at its
        # end that long too: a replay's producer sends a chunk's labels just after its payments.
        self.payments_vouched_us = payments_vouched_us
        self.max_idle_s = max_idle_ms / 1_000
        self._partitions: dict[int, _LabelPartition] = {}

    @property
    def partitions(self) -> list[int]:
        return list(self._partitions)

    def assigned(self, partition: int) -> None:
        self._partitions.setdefault(partition, _LabelPartition())

    def revoked(self, partition: int) -> None:
        self._partitions.pop(partition, None)

    def consumed(self, partition: int, offset: int, labelled_us: int | None) -> None:
        state = self._partitions[partition]
        state.next_offset = offset + 1
        state.end_since = None
        if labelled_us is not None and (state.newest_us is None or labelled_us > state.newest_us):
            state.newest_us = labelled_us

    def at_end(self, partition: int) -> None:
        state = self._partitions.get(partition)
        if state is not None and state.end_since is None:
            state.end_since = time.monotonic()

    def progress_us(self, partition: int) -> int:
        """Labels of the partition with an earlier labelled_at have all been consumed."""
        state = self._partitions[partition]
        newest = NEVER if state.newest_us is None else state.newest_us
        vouched = self.payments_vouched_us()  # sampled always: the clock runs while labels come
        if state.end_since is not None and time.monotonic() - state.end_since >= self.max_idle_s:
            return max(newest, vouched)
        return newest

    def next_offset(self, partition: int) -> int | None:
        return self._partitions[partition].next_offset
