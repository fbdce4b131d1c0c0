"""Deliberate crashes at named points of the scorer's batch cycle, for fault-injection tests and drills.

`PAYMENT_CRASH_AT=<point>:<n>` kills the scorer process with SIGKILL (no cleanup, as a power cut or the
OOM killer would) at <point>, once n payments (for `consumed`) or n batches (for the others) reached it:
- `consumed`: payments are read, nothing of them processed;
- `scored`: the batch is featurised and scored, not written;
- `written`: the rows are committed to the database, the Kafka offsets are not.
Unset, each check is one comparison.
"""

from __future__ import annotations

import os
import signal

POINTS = ("consumed", "scored", "written")


class _CrashPlan:
    def __init__(self, spec: str | None) -> None:
        self.point: str | None = None
        self.remaining = 0
        if not spec:
            return
        point, _, count = spec.partition(":")
        if point not in POINTS or not count.isdigit() or int(count) < 1:
            raise ValueError(f"PAYMENT_CRASH_AT must be <point>:<n> with point one of {', '.join(POINTS)}: {spec!r}")
        self.point, self.remaining = point, int(count)

    def reached(self, point: str, count: int) -> None:
        if point != self.point:
            return
        self.remaining -= count
        if self.remaining <= 0:
            os.kill(os.getpid(), signal.SIGKILL)


_plan = _CrashPlan(os.environ.get("PAYMENT_CRASH_AT"))


def crash_point(point: str, count: int = 1) -> None:
    """Die here if PAYMENT_CRASH_AT says so (`count`: how many payments or batches reach it now)."""
    if _plan.point is not None:
        _plan.reached(point, count)
