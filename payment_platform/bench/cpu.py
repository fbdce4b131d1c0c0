"""CPU time by process, from /proc: where a payment's CPU goes on this machine (scorer, database, broker).

On a machine where the scorer, MariaDB and the broker share the cores, the sum of their CPU time per
payment bounds the throughput: cores × 1 s / (CPU s per payment), whatever any one of them does.
"""

from __future__ import annotations

import os
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


def cpu_snapshot(pids: dict[str, list[str]]) -> dict[str, float]:
    """CPU seconds so far of this process ("scorer") and of each service role."""
    snapshot = {"scorer": process_cpu_s("self") or 0.0}
    for role, members in pids.items():
        snapshot[role] = sum(process_cpu_s(pid) or 0.0 for pid in members)
    return snapshot


def cpu_per_payment_us(before: dict[str, float], after: dict[str, float], payments: int) -> dict[str, float]:
    """CPU microseconds per payment by role between two snapshots, and their total."""
    used = {role: (after[role] - before[role]) * 1e6 / max(payments, 1) for role in before}
    return {**used, "total": sum(used.values())}
