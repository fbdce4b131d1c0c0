"""The console's bench: every page timed over HTTP on MariaDB with millions of rows in `scored_transactions`.

    python -m payment_platform.console.bench [--rows 5000000] [--days 14] [--live-rate 100] [--recent-rate R]
                                             [--json FILE]

It creates its own database (dropped at the end unless --keep), bulk-loads synthetic scored payments and their
fraud labels with LOAD DATA, builds the console's aggregates (timed: a fresh console's first catch-up), starts
the real `payment-platform console` in its own process with an embedded broker for the verdicts, keeps a live
writer adding payments at --live-rate per second with scored_at = now (as a running scorer would, so the
recent-window panels have rows to read; --recent-rate also loads the last 15 minutes as a scorer running at
that rate would have written them), and times each page: warm-up, then --repeat requests, p50/p95/max of
the whole response. The CSV export is timed to its first byte and to its end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import sqlalchemy as sa

from payment_platform.console.accounts import hash_password
from payment_platform.console.live_quality import refresh_one_day
from payment_platform.console.rollup import Rollup, utc_now
from payment_platform.console.sample_rows import (
    SCORED_COLUMNS,
    SampleShape,
    label_rows,
    promote_sample_model,
    sample_rows,
)
from payment_platform.console.store import open_console_store
from payment_platform.console.tables import review_items, rollup_cursor
from payment_platform.kafka.clients import ensure_topics
from payment_platform.kafka.embedded_broker import start_embedded_broker, stop_embedded_broker
from payment_platform.settings import redact_url
from payment_platform.store.bulk_load import load_data_statement
from payment_platform.store.tables import scored_transactions, scorer_status, transaction_labels

LOAD_CHUNK = 250_000
BUDGET_MS = 500.0


@dataclass(frozen=True)
class PageTiming:
    page: str
    path: str
    status: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    bytes: int
    first_byte_ms: float | None = None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="console-bench-")))
        url = stack.enter_context(_database(args.mysql_url, keep=args.keep))
        _say(f"database {redact_url(url)}; {args.rows:,} rows over {args.days} days, live writer {args.live_rate:g}/s")
        store = open_console_store(url)
        now = utc_now()
        loaded = _load(store.writer, args.rows, args.days, now, work)
        _say(f"loaded {args.rows:,} payments and {loaded['labels']:,} labels in {loaded['seconds']:.0f} s")
        started = time.perf_counter()
        rollup = Rollup(store.writer)
        folded = rollup.catch_up(on_progress=lambda s: _say(f"  aggregates: {s.last_id:,} of {s.store_max_id:,} ids"))
        aggregation_s = time.perf_counter() - started
        rate = folded / aggregation_s
        _say(f"console aggregates built from {folded:,} rows in {aggregation_s:.0f} s ({rate:,.0f} rows/s)")
        started = time.perf_counter()
        measured = 0
        while refresh_one_day(store.reader, store.writer, now.date(), utc_now()) is not None:
            measured += 1
        quality_s = time.perf_counter() - started
        _say(f"live quality of {measured} matured days measured in {quality_s:.0f} s (a console does one a minute)")
        home = work / "home"
        promote_sample_model(home / "models")
        _scorers(store.writer, now)
        port = _free_port()
        bootstrap = stack.enter_context(_broker(work, args.bootstrap))
        users = work / "users"
        users.write_text(f"bench:{hash_password('bench-password')}\n", encoding="utf-8")
        stack.enter_context(
            _console(url, home, port, bootstrap, users, labels_topic=f"bench-labels-{uuid.uuid4().hex[:6]}")
        )
        if args.recent_rate > 0:
            recent = _load_recent(store.writer, args.recent_rate, work)
            _say(f"loaded the last 15 minutes at {args.recent_rate:g} payments/s: {recent:,} rows")
            if not _wait_for_rollup(store.reader, 300):
                raise RuntimeError("the console's maintenance did not fold the recent rows within 5 minutes")
        writer = _LiveWriter(store.writer, args.live_rate)
        stack.enter_context(writer.running())
        time.sleep(args.warm_s)  # the live writer's rows reach the window panels and the rollup
        timings = _time_pages(port, store.reader, args.repeat, now)
        verdict = _time_verdict(port, store.reader)
        store.dispose()
    report = {
        "rows": args.rows,
        "days": args.days,
        "live_rate_per_s": args.live_rate,
        "recent_rate_per_s": args.recent_rate,
        "live_rows_written": writer.written,
        "load": loaded,
        "aggregation_seconds": aggregation_s,
        "aggregation_rows_per_s": folded / aggregation_s if aggregation_s else None,
        "live_quality_days": measured,
        "live_quality_seconds": quality_s,
        "pages": [asdict(t) for t in timings],
        "verdict": verdict,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    _print_table(timings, verdict)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    slow = [t for t in timings if t.p95_ms > BUDGET_MS and t.first_byte_ms is None]
    if slow:
        _say("over the 500 ms budget (p95): " + ", ".join(t.page for t in slow))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m payment_platform.console.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--mysql-url", default="mysql+pymysql://root@127.0.0.1:3306/", help="server admin URL")
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--days", type=int, default=14, help="event-time span of the loaded rows, ending now")
    parser.add_argument("--live-rate", type=float, default=100.0, help="payments per second written during timing")
    parser.add_argument(
        "--recent-rate", type=float, default=0.0, help="also load the last 15 minutes as written at this rate"
    )
    parser.add_argument("--repeat", type=int, default=10, help="timed requests per page")
    parser.add_argument("--warm-s", type=float, default=20.0, help="live writing before the timing starts")
    parser.add_argument("--bootstrap", default=None, help="a running Kafka broker (default: an embedded one)")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    return parser


def _say(text: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {text}", file=sys.stderr, flush=True)


# --- setup ------------------------------------------------------------------------------------------------


@contextmanager
def _database(admin_url: str, *, keep: bool) -> Iterator[str]:
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


def _load(engine: sa.Engine, rows: int, days: int, now: dt.datetime, work: Path) -> dict[str, float]:
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
        _say(f"  loaded {done:,} rows ({done / (time.perf_counter() - started):,.0f}/s)")
    return {"seconds": time.perf_counter() - started, "labels": labels}


def _load_recent(engine: sa.Engine, rate: float, work: Path) -> int:
    """The 15 minutes up to now as a scorer running at `rate` would have written them (the recent-window
    panels read every row of their window: this is what they cost at that rate)."""
    n = int(rate * 15 * 60)
    frame = sample_rows(n, end=utc_now(), span=dt.timedelta(minutes=15), seed=777, id_prefix="recent-")
    _load_file(engine, scored_transactions.name, SCORED_COLUMNS, frame[SCORED_COLUMNS], work / "recent.tsv")
    return n


def _wait_for_rollup(reader: sa.Engine, timeout_s: float) -> bool:
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


def _scorers(engine: sa.Engine, now: dt.datetime) -> None:
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


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _broker(work: Path, bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    port = _free_port()
    process = start_embedded_broker(port=port, log_path=work / "broker.log")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop_embedded_broker(process)


@contextmanager
def _console(url: str, home: Path, port: int, bootstrap: str, users: Path, labels_topic: str) -> Iterator[None]:
    ensure_topics(bootstrap, [labels_topic])
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PAYMENT_HOME": str(home),
        "PAYMENT_DB_URL": url,
        "PAYMENT_KAFKA_BOOTSTRAP": bootstrap,
        "PAYMENT_LABELS_TOPIC": labels_topic,
        "PAYMENT_CONSOLE_USERS_FILE": str(users),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "payment_platform.cli", "console", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(home / "console.log", "ab"),  # noqa: SIM115 - owned by the child
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if _get(port, "/login")[0] == 200:
                    break
            except OSError:
                time.sleep(0.3)
        else:
            raise RuntimeError(f"the console did not answer on port {port}; see {home / 'console.log'}")
        yield
    finally:
        process.terminate()
        process.wait(30)


class _LiveWriter:
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


# --- timing -----------------------------------------------------------------------------------------------


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, int, float, float]:
    """(status, body bytes, seconds to first byte, seconds to the end) of one GET."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    first = None
    size = 0
    while True:
        chunk = response.read1(65536)
        if first is None:
            first = time.perf_counter() - started
        if not chunk:
            break
        size += len(chunk)
    total = time.perf_counter() - started
    connection.close()
    return response.status, size, first or total, total


def _bench_pages(reader: sa.Engine, now: dt.datetime) -> list[tuple[str, str]]:
    with reader.connect() as conn:
        heavy = conn.execute(
            sa.select(scored_transactions.c.customer_id)
            .where(scored_transactions.c.id <= 200_000)
            .group_by(scored_transactions.c.customer_id)
            .order_by(sa.func.count().desc())
            .limit(1)
        ).scalar_one()
        case_card = conn.execute(
            sa.select(review_items.c.customer_id)
            .where(review_items.c.reviewed.is_(False))
            .order_by(review_items.c.score.desc())
            .limit(1)
        ).scalar_one()
    day = (now - dt.timedelta(days=2)).replace(microsecond=0)
    one_day = urllib.parse.urlencode({"since": day.isoformat(), "until": (day + dt.timedelta(days=1)).isoformat()})
    return [
        ("overview, 1 hour", "/"),
        ("overview, 24 hours", "/?window=1440"),
        ("risk, 5 min window", "/risk"),
        ("risk, 15 min window", "/risk?minutes=15"),
        ("review queue", "/queue"),
        ("case", "/case?" + urllib.parse.urlencode({"card": case_card})),
        ("investigate the busiest card", "/card?" + urllib.parse.urlencode({"id": heavy})),
        ("scorer health", "/health"),
        ("export form", "/export"),
        ("login form", "/login"),
        ("CSV: DECLINED, 10,000 rows", "/export.csv?status=DECLINED&limit=10000"),
        ("CSV: all statuses, 10,000 rows", "/export.csv?limit=10000"),
        ("CSV: one card, all rows", "/export.csv?" + urllib.parse.urlencode({"customer_id": heavy, "limit": 0})),
        ("CSV: one day, all rows", f"/export.csv?{one_day}&limit=0"),
    ]


def _time_pages(port: int, reader: sa.Engine, repeat: int, now: dt.datetime) -> list[PageTiming]:
    timings = []
    for name, path in _bench_pages(reader, now):
        is_csv = path.startswith("/export.csv")
        runs = min(3, repeat) if "all rows" in name else repeat
        _get(port, path)  # warm-up
        samples = [_get(port, path) for _ in range(runs)]
        totals = [s[3] * 1000 for s in samples]
        timing = PageTiming(
            page=name,
            path=path,
            status=samples[-1][0],
            p50_ms=statistics.median(totals),
            p95_ms=float(np.percentile(totals, 95)),
            max_ms=max(totals),
            bytes=samples[-1][1],
            first_byte_ms=statistics.median(s[2] * 1000 for s in samples) if is_csv else None,
        )
        _say(f"  {name}: p50 {timing.p50_ms:.0f} ms, p95 {timing.p95_ms:.0f} ms ({timing.bytes:,} bytes)")
        timings.append(timing)
    return timings


def _time_verdict(port: int, reader: sa.Engine) -> dict[str, float | int]:
    """Log in, take the riskiest case and give a verdict: the write path, labels acknowledged by the broker."""
    session = _Browser(port)
    session.get("/login")
    session.post("/login", {"name": "bench", "password": "bench-password", "next": "/queue"})
    with reader.connect() as conn:
        card, count = conn.execute(
            sa.select(review_items.c.customer_id, sa.func.count())
            .where(review_items.c.reviewed.is_(False))
            .group_by(review_items.c.customer_id)
            .order_by(sa.func.max(review_items.c.score).desc())
            .limit(1)
        ).one()
        txs = list(
            conn.execute(
                sa.select(review_items.c.transaction_id).where(
                    review_items.c.customer_id == card, review_items.c.reviewed.is_(False)
                )
            ).scalars()
        )
    started = time.perf_counter()
    status_take = session.post("/case/take", {"card": card})
    take_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    status_verdict = session.post("/case/verdict", {"card": card, "verdict": "fraud", "note": "bench", "tx": txs})
    verdict_ms = (time.perf_counter() - started) * 1000
    _say(f"  take a case: {take_ms:.0f} ms ({status_take})")
    _say(f"  verdict on {count} payments: {verdict_ms:.0f} ms ({status_verdict})")
    return {"take_ms": take_ms, "verdict_ms": verdict_ms, "payments": int(count), "status": status_verdict}


class _Browser:
    """Just enough of a browser for the write path: the session cookie and the CSRF token of the last page."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookie = ""
        self.csrf = ""

    def get(self, path: str) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        connection.request("GET", path, headers={"Cookie": self.cookie} if self.cookie else {})
        response = connection.getresponse()
        body = response.read().decode("utf-8", errors="replace")
        self._remember(response)
        marker = 'name="csrf" value="'
        if marker in body:
            self.csrf = body.split(marker, 1)[1].split('"', 1)[0]
        return response.status

    def post(self, path: str, form: dict[str, object]) -> int:
        body = urllib.parse.urlencode({**form, "csrf": self.csrf}, doseq=True)
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        connection.request(
            "POST",
            path,
            body=body,
            headers={"Cookie": self.cookie, "Content-Type": "application/x-www-form-urlencoded"},
        )
        response = connection.getresponse()
        response.read()
        self._remember(response)
        location = response.getheader("Location")
        if response.status == 303 and location:
            self.get(location)
        return response.status

    def _remember(self, response: http.client.HTTPResponse) -> None:
        cookie = response.getheader("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";", 1)[0]


def _print_table(timings: list[PageTiming], verdict: dict[str, float | int]) -> None:
    print("\n| page | p50 ms | p95 ms | max ms | first byte ms | size |\n|---|---|---|---|---|---|")
    for t in timings:
        first = f"{t.first_byte_ms:.0f}" if t.first_byte_ms is not None else ""
        print(f"| {t.page} | {t.p50_ms:.0f} | {t.p95_ms:.0f} | {t.max_ms:.0f} | {first} | {t.bytes:,} B |")
    print(f"| take a case (POST) | {verdict['take_ms']:.0f} | | | | |")
    judged = f"verdict on {verdict['payments']} payments, labels acknowledged (POST)"
    print(f"| {judged} | {verdict['verdict_ms']:.0f} | | | | |")


if __name__ == "__main__":
    sys.exit(main())
