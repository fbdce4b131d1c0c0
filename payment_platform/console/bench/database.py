"""The bench's store: a database of its own, bulk-loaded with synthetic history, and written to live.

The history is loaded with LOAD DATA in chunks of consecutive time, as a store that has run for days holds
it; the live writer adds payments scored now during the timing, as a running scorer would, so that the
recent-window panels have rows to read.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import sqlalchemy as sa

from payment_platform.console.bench import say
from payment_platform.console.rollup import utc_now
from payment_platform.console.sample_rows import SCORED_COLUMNS, SampleShape, label_rows, sample_rows
from payment_platform.console.tables import rollup_cursor
from payment_platform.store.bulk_load import load_data_statement
from payment_platform.store.tables import scored_transactions, scorer_status, transaction_labels

LOAD_CHUNK = 250_000


@contextmanager
def scratch_database(admin_url: str, *, keep: bool) -> Iterator[str]:
    name = f"pp_console_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url)
    with admin.begin() as conn:
        conn.execute(sa.schema.CreateSchema(name))
    url = sa.make_url(admin_url).set(database=name, query={"charset": "utf8mb4"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        if not keep:
            with admin.begin() as conn:
                conn.execute(sa.schema.DropSchema(name))
        admin.dispose()


def load_history(engine: sa.Engine, rows: int, days: int, now: dt.datetime, work: Path) -> dict[str, float]:
    """Synthetic rows in write order, in chunks of consecutive time, each bulk-loaded with LOAD DATA."""
    span = dt.timedelta(days=days)
    chunks = max(1, -(-rows // LOAD_CHUNK))
    shape = SampleShape()
    labels = 0
    started = time.perf_counter()
    spool = work / "rows.tsv"
    for i in range(chunks):
        n = min(LOAD_CHUNK, rows - i * LOAD_CHUNK)
        end = now - span + span * (i + 1) / chunks
        frame = sample_rows(
            n, end=end, span=span / chunks, seed=i, shape=shape, id_prefix=f"b{i:03d}-", first_offset=i * LOAD_CHUNK
        )
        _load_file(engine, scored_transactions.name, SCORED_COLUMNS, frame[SCORED_COLUMNS], spool)
        label_frame = label_rows(frame, dt.timedelta(days=7), now)
        _load_file(engine, transaction_labels.name, ["transaction_id", "is_fraud", "labelled_at"], label_frame, spool)
        labels += len(label_frame)
        done = min((i + 1) * LOAD_CHUNK, rows)
        say(f"  loaded {done:,} rows ({done / (time.perf_counter() - started):,.0f}/s)")
    return {"seconds": time.perf_counter() - started, "labels": labels}


def load_recent(engine: sa.Engine, rate: float, work: Path) -> int:
    """The 15 minutes up to now as a scorer running at `rate` would have written them (the recent-window
    panels read every row of their window: this is what they cost at that rate)."""
    n = int(rate * 15 * 60)
    frame = sample_rows(n, end=utc_now(), span=dt.timedelta(minutes=15), seed=777, id_prefix="recent-")
    _load_file(engine, scored_transactions.name, SCORED_COLUMNS, frame[SCORED_COLUMNS], work / "recent.tsv")
    return n


def wait_for_rollup(reader: sa.Engine, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with reader.connect() as conn:
            folded = conn.execute(sa.select(rollup_cursor.c.last_id)).scalar() or 0
            latest = conn.execute(sa.select(sa.func.max(scored_transactions.c.id))).scalar() or 0
        if latest - folded < 1_000:
            return True
        time.sleep(1)
    return False


def _load_file(engine: sa.Engine, table: str, columns: list[str], frame: pd.DataFrame, spool: Path) -> None:
    out = frame.copy()
    for name in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[name]):
            out[name] = out[name].dt.strftime("%Y-%m-%d %H:%M:%S.%f")
        elif out[name].dtype == bool:
            out[name] = out[name].astype(int)
    out.to_csv(spool, sep="\t", header=False, index=False, lineterminator="\n", escapechar="\\", quoting=3)
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(load_data_statement(table, columns, spool))
        conn.connection.dbapi_connection.commit()  # type: ignore[union-attr]


def add_scorers(engine: sa.Engine, now: dt.datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            scorer_status.insert(),
            [
                {
                    "scorer_id": f"bench-host:{pid}:{now:%H%M%S}",
                    "consumer_group": "payment-scorer",
                    "started_at": now - dt.timedelta(hours=5),
                    "updated_at": now,
                    "running": True,
                    "consumed": 2_500_000,
                    "scored": 2_499_000,
                    "dead_lettered": 120,
                    "labels": 25_000,
                    "payments_per_s": 50.0,
                    "consumer_lag": 12,
                    "model_version": "sample-model",
                    "orphan_labels": 0,
                    "mis_keyed": 0,
                }
                for pid in (101, 102)
            ],
        )


class LiveWriter:
    """Adds payments with scored_at = now at a steady rate, in one batch a second, as a scorer would."""

    def __init__(self, engine: sa.Engine, rate: float) -> None:
        self.engine = engine
        self.rate = rate
        self.written = 0
        self._stop = threading.Event()

    @contextmanager
    def running(self) -> Iterator[None]:
        thread = threading.Thread(target=self._run, daemon=True)
        if self.rate > 0:
            thread.start()
        try:
            yield
        finally:
            self._stop.set()
            if thread.is_alive():
                thread.join(10)

    def _run(self) -> None:
        second = 0
        while not self._stop.is_set():
            tick = time.monotonic()
            n = int(self.rate) + (1 if np.random.default_rng(second).uniform() < self.rate % 1 else 0)
            if n:
                now = utc_now()
                frame = sample_rows(
                    n, end=now, span=dt.timedelta(seconds=1), seed=10_000 + second, id_prefix=f"live{second:07d}-"
                )
                frame["scored_at"] = now
                rows = cast("list[dict[str, Any]]", frame[SCORED_COLUMNS].to_dict("records"))  # columns named by str
                with self.engine.begin() as conn:
                    conn.execute(scored_transactions.insert(), rows)
                self.written += n
            second += 1
            self._stop.wait(max(0.0, 1.0 - (time.monotonic() - tick)))
