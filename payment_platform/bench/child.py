"""What every child process of the benchmark shares: its JSON-line events on stdout, its RSS, its stop on SIGTERM.

Children report `assigned`, `progress` and `done` events as JSON lines, which the parent's `Worker` reads.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import threading
from typing import Any

PROGRESS_EVERY_S = 0.5


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def peak_rss_mib() -> float:
    """Peak RSS of this process since it started. Not `getrusage`'s ru_maxrss: Linux carries that over
    exec, so a worker would report the benchmark parent's size at the moment it was forked."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def stop_on_sigterm() -> threading.Event:
    """SIGTERM asks the child to finish what it holds and report (the parent's way to end a run)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    return stop
