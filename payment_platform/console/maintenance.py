"""The console's background work: keep the rollup level with the store, and measure matured days.

It folds new rows every `interval_s` (at once again while a backlog remains), then measures at most one
matured day, so a page never waits for either. Errors are logged on one line, without the store's password,
and retried with a growing pause.

`payment-platform console` runs it in a process of its own (`MaintenanceProcess`): folding and measuring a day
are Python work that would otherwise hold the web server's interpreter lock while pages wait. Tests run it
on a thread of theirs (`Maintenance.start`).
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from typing import Protocol

from payment_platform.console.live_quality import refresh_one_day
from payment_platform.console.rollup import Rollup, utc_now
from payment_platform.console.store import ConsoleStore, open_console_store, without_credentials

logger = logging.getLogger(__name__)

STEP_ROWS = 50_000
CATCH_UP_ROWS = 200_000  # per step while far behind: fewer, larger steps touch each card's totals less often
# Measuring a day reads all its rows: at most one a minute, so that pages never share the database with two.
LIVE_QUALITY_SPACING = dt.timedelta(minutes=1)


class StopSignal(Protocol):
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


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
        self._last_measured: dt.datetime | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def cycle(self, stop: StopSignal | None = None) -> int:
        """One round: fold until level (at most 20 steps), then measure one day; the rows folded."""
        folded = 0
        for _ in range(20):
            behind = self.rollup.state().behind
            folded += self.rollup.step(CATCH_UP_ROWS if behind > STEP_ROWS else STEP_ROWS)
            if self.rollup.state().behind == 0 or (stop is not None and stop.is_set()):
                break
        now = self.clock()
        spaced = self._last_measured is None or now - self._last_measured >= LIVE_QUALITY_SPACING
        stopping = stop is not None and stop.is_set()
        if self.measure_live_quality and spaced and not stopping:
            measured = refresh_one_day(self.store.reader, self.store.writer, now.date(), now)
            self._last_measured = now if measured is not None else self._last_measured
        return folded

    def run(self, stop: StopSignal) -> None:
        """Cycle until `stop` is set."""
        pause = self.interval_s
        while not stop.is_set():
            started = time.monotonic()
            try:
                folded = self.cycle(stop)
                if self.last_error is not None:
                    logger.info("console maintenance recovered")
                self.last_error = None
                pause = self.interval_s
                if folded:
                    logger.debug("folded %d rows in %.2f s", folded, time.monotonic() - started)
            except Exception as exc:  # noqa: BLE001 - a database outage must not end the loop
                text = str(exc).splitlines()[0][:200] if str(exc) else ""
                self.last_error = without_credentials(f"{type(exc).__name__}: {text}", self.store)
                logger.warning("console maintenance failed (retrying in %.0f s): %s", pause, self.last_error)
                pause = min(pause * 2, 60.0)
            stop.wait(pause)

    # --- on a thread of this process ------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, args=(self._stop,), name="console-maintenance", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout_s)

    def status(self) -> str | None:
        """None when working, otherwise what is wrong (for the health page)."""
        return self.last_error


class MaintenanceProcess:
    """The same loop in a child process (spawned: nothing of the web server's state is inherited)."""

    def __init__(self, db_url: str, interval_s: float = 2.0) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._process = context.Process(
            target=_maintenance_main, args=(db_url, interval_s, self._stop), name="console-maintenance", daemon=True
        )

    def start(self) -> None:
        self._process.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._process.is_alive():
            self._process.join(timeout_s)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)

    def status(self) -> str | None:
        if self._process.is_alive():
            return None
        return f"the maintenance process has stopped (exit code {self._process.exitcode}); restart the console"


def _maintenance_main(db_url: str, interval_s: float, stop: StopSignal) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = open_console_store(db_url)
    try:
        Maintenance(store, interval_s=interval_s).run(stop)
    except KeyboardInterrupt:
        pass
    finally:
        store.dispose()
