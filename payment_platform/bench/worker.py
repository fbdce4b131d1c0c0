"""The benchmark's child processes: `Worker` starts one and reads its events; `worker_main` is its entry.

`python -m payment_platform.bench worker MODE ...` runs one of the children: a scorer (`scorer_child`),
the decisions reader (`decisions_reader`), or a state probe (`state_probes`). Each reports on stdout as
JSON lines (`child`), so the parent can wait for a consumer group to settle, print progress, and collect
each process's own figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any

from payment_platform.bench.decisions_reader import run_decisions
from payment_platform.bench.scorer_child import run_score
from payment_platform.bench.state_probes import run_growth, run_state

# State probes: freed numpy temporaries (the generated payments) go back to the OS at once, so RSS counts
# the state. The state's own allocations (arrays of a few KB, strings, dicts) are made the same either way.
PROBE_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def worker_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="payment_platform.bench worker")
    modes = parser.add_subparsers(dest="mode", required=True)
    score = modes.add_parser("score")
    score.add_argument("--config", required=True, help="ScorerConfig fields as JSON")
    score.add_argument("--max-messages", type=int, default=None)
    score.add_argument("--idle-timeout-s", type=float, default=None)
    decisions = modes.add_parser("decisions")
    decisions.add_argument("--bootstrap", required=True)
    decisions.add_argument("--topic", required=True)
    decisions.add_argument("--prefix", required=True)
    decisions.add_argument("--fetch-wait-ms", type=int, default=10)
    state = modes.add_parser("state")
    state.add_argument("--cards", type=int, required=True)
    state.add_argument("--payments-per-card", type=float, default=74.0)
    state.add_argument("--days", type=float, default=30.0)
    state.add_argument("--terminals-per-card", type=float, default=2.0)
    state.add_argument("--shards", type=int, default=4)
    state.add_argument("--own", default="0,1,2,3")
    state.add_argument("--seed", type=int, default=1)
    growth = modes.add_parser("growth")
    growth.add_argument("--cards", type=int, required=True)
    growth.add_argument("--payments-per-card", type=float, default=74.0)
    growth.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("payment_platform.stream").setLevel(logging.INFO)  # why a scorer stopped, in the bench's log
    {"score": run_score, "decisions": run_decisions, "state": run_state, "growth": run_growth}[args.mode](args)
    return 0


class Worker:
    """A child process of the benchmark, its JSON-line events read in a thread."""

    def __init__(self, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "payment_platform.bench", "worker", *argv],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.partitions = 0
        self.consumed = 0
        self.handled = 0
        self.labels = 0
        self.result: dict[str, Any] | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if event["event"] == "assigned":
                self.partitions = event["partitions"]
            elif event["event"] == "progress":
                self.consumed = event["consumed"]
                self.handled = event["handled"]
                self.labels = event.get("labels", 0)
            elif event["event"] == "done":
                self.result = event

    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout_s: float) -> dict[str, Any]:
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise RuntimeError(f"benchmark worker did not finish within {timeout_s:.0f}s") from None
        self._reader.join(5)
        if code != 0 or self.result is None:
            raise RuntimeError(f"benchmark worker failed (exit code {code})")
        return self.result

    def finish(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Ask the child to stop (SIGTERM: it finishes the batch in hand and reports), then wait for it."""
        self.ask_to_stop()
        return self.wait(timeout_s)

    def ask_to_stop(self) -> None:
        if self.running():
            self.process.terminate()

    def stop(self) -> None:
        """End the child whatever it is doing (cleanup after a failure)."""
        if self.running():
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
