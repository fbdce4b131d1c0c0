"""The live scorer of a backtest: `payment-platform score` in a child process that runs through the whole
backtest, as it would in production. The model the retraining promotes is picked up without a restart
(the scorer follows the registry's pointer), and a restart between the two files would cost parity: a
restarted scorer was measured to store scores that differ from the offline rescoring once the terminal
windows reach the second file (README, Backtesting).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from payment_platform.settings import Settings
from payment_platform.store.database import connect_store
from payment_platform.store.tables import label_events, scored_transactions

POLL_S = 0.5
# The replay sends a chunk at a time, partition by partition: a partition at its end between two of its
# batches is not idle, and counting it so would make the rest of the chunk late (scores then differ from
# the offline rescoring). A backtest is not latency-bound: the scorer waits this long.
REPLAY_IDLE_MS = 2_000


class ScorerStopped(RuntimeError):
    """The scorer process ended on its own; the text holds the end of its log."""


class ScorerProcess:
    def __init__(self, settings: Settings, log: Path, batch_size: int) -> None:
        self.engine = connect_store(settings.db_url)
        self.log = log
        self._rows, self._labels = self.counts()  # what the store held before: the user's database may not be empty
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "payment_platform.cli", "score", "--batch-size", str(batch_size)),
                    *("--max-idle-ms", str(REPLAY_IDLE_MS)),
                ],
                env={**os.environ, **settings.as_environment()},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def counts(self) -> tuple[int, int]:
        """(scored rows, label events) in the store."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(sa.func.count()).select_from(scored_transactions)).scalar_one()
            labels = conn.execute(sa.select(sa.func.count()).select_from(label_events)).scalar_one()
        return int(rows), int(labels)

    def wait_for(self, payments: int, labels: int, on_progress: Callable[[int], None]) -> None:
        """Until `payments` more rows and `labels` more label events than before are stored."""
        self._rows += payments
        self._labels += labels
        while True:
            rows, stored_labels = self.counts()
            on_progress(payments - max(0, self._rows - rows))
            if rows >= self._rows and stored_labels >= self._labels:
                return
            if self.process.poll() is not None:
                tail = self.log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise ScorerStopped(f"the scorer exited with code {self.process.returncode}: {tail[0]}")
            time.sleep(POLL_S)

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it: it commits its last batch and exits."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.engine.dispose()
