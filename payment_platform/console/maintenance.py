"""The console's background work: keep the rollup level with the store, and measure matured days.

One daemon thread per console process. It folds new rows every `interval_s` (at once again while a backlog
remains), then measures at most one matured day, so a page never waits for either. Errors are logged on one
line, without the store's URL, and retried with a growing pause.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable

from payment_platform.console.live_quality import refresh_one_day
from payment_platform.console.rollup import Rollup, utc_now
from payment_platform.console.store import ConsoleStore

logger = logging.getLogger(__name__)

STEP_ROWS = 50_000
CATCH_UP_ROWS = 200_000  # per step while far behind: fewer, larger steps touch each card's totals less often


class Maintenance:
    def __init__(
        self,
        store: ConsoleStore,
        *,
        interval_s: float = 2.0,
        clock: Callable[[], dt.datetime] = utc_now,
        measure_live_quality: bool = True,
    ) -> None:
        self.store = store
        self.rollup = Rollup(store.writer, clock=clock)
        self.interval_s = interval_s
        self.clock = clock
        self.measure_live_quality = measure_live_quality
        self.last_error: str | None = None
        self.last_cycle_at: dt.datetime | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="console-maintenance", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def cycle(self) -> int:
        """One round: fold until level (or a few steps), then measure one day; the rows folded."""
        folded = 0
        for _ in range(20):
            behind = self.rollup.state().behind
            rows = self.rollup.step(CATCH_UP_ROWS if behind > STEP_ROWS else STEP_ROWS)
            folded += rows
            if self.rollup.state().behind == 0 or self._stop.is_set():
                break
        if self.measure_live_quality and not self._stop.is_set():
            now = self.clock()
            refresh_one_day(self.store.reader, self.store.writer, now.date(), now)
        self.last_cycle_at = self.clock()
        return folded

    def _run(self) -> None:
        pause = self.interval_s
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                folded = self.cycle()
                if self.last_error is not None:
                    logger.info("console maintenance recovered")
                self.last_error = None
                pause = self.interval_s
                if folded:
                    logger.debug("folded %d rows in %.2f s", folded, time.monotonic() - started)
            except Exception as exc:  # noqa: BLE001 - a database outage must not end the thread
                self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
                logger.warning("console maintenance failed (retrying in %.0f s): %s", pause, self.last_error)
                pause = min(pause * 2, 60.0)
            self._stop.wait(pause)
