"""CPU time by process, from /proc: where a payment's CPU goes on this machine (scorers, database, broker).

On a machine where the scorers, MariaDB and the broker share the cores, the sum of their CPU time per
payment bounds the throughput: cores × 1 s / (CPU s per payment), whatever any one of them does. The
sampler reads every process of a run a few times a second, so the CPU between two moments the scorers
report (their first and last progress) is read off the samples, with no /proc read inside a scorer.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from pathlib import Path

# Process names (/proc/<pid>/comm, at most 15 characters) of the services the scorer works with.
SERVICES: dict[str, tuple[str, ...]] = {"database": ("mariadbd", "mysqld"), "broker": ("tansu",)}
_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int | str) -> float | None:
    """User + system CPU seconds of a process, all its threads; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14 and 15 of stat)


def service_pids() -> dict[str, list[str]]:
    """The pids of the local database and broker processes, by role (empty where none runs here)."""
    found: dict[str, list[str]] = {role: [] for role in SERVICES}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name = (entry / "comm").read_text().strip()
        except OSError:
            continue
        for role, prefixes in SERVICES.items():
            if name.startswith(prefixes):
                found[role].append(entry.name)
    return found


class CpuSampler:
    """Samples the CPU seconds of named processes (each a list of pids) every `every_s`, in a thread."""

    def __init__(self, processes: dict[str, list[str]], every_s: float = 0.1) -> None:
        self.processes = processes
        self.every_s = every_s
        self.times: list[float] = []
        self.samples: list[dict[str, float]] = []
        self._last: dict[str, float] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(5)
        self.sample()

    def _run(self) -> None:
        while not self._done.wait(self.every_s):
            self.sample()

    def sample(self) -> None:
        now = time.time()
        snapshot = {}
        for name, pids in self.processes.items():
            readings = [process_cpu_s(pid) for pid in pids]
            # A process that has exited keeps its last reading: its CPU was spent, not given back.
            total = sum(r for r in readings if r is not None)
            snapshot[name] = max(total, self._last.get(name, 0.0)) if None in readings else total
        self._last = snapshot
        self.times.append(now)
        self.samples.append(snapshot)

    def at(self, when: float) -> dict[str, float]:
        """CPU seconds of each process at a moment (epoch seconds), interpolated between samples."""
        i = bisect.bisect_left(self.times, when)
        if i <= 0:
            return dict(self.samples[0])
        if i >= len(self.times):
            return dict(self.samples[-1])
        t0, t1 = self.times[i - 1], self.times[i]
        share = (when - t0) / (t1 - t0) if t1 > t0 else 1.0
        a, b = self.samples[i - 1], self.samples[i]
        return {name: a[name] + share * (b[name] - a[name]) for name in a}

    def between(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds each process used from `start` to `end`."""
        first, last = self.at(start), self.at(end)
        return {name: last[name] - first[name] for name in first}


def cpu_per_payment_us(used_s: dict[str, float], payments: int) -> dict[str, float]:
    """CPU microseconds per payment by role from CPU seconds used, and their total."""
    used = {role: seconds * 1e6 / max(payments, 1) for role, seconds in used_s.items()}
    return {**used, "total": sum(used.values())}
