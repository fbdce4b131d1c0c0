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
import json
import os
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path

from payment_platform.console.accounts import hash_password
from payment_platform.console.bench import say
from payment_platform.console.bench.database import (
    LiveWriter,
    add_scorers,
    load_history,
    load_recent,
    scratch_database,
    wait_for_rollup,
)
from payment_platform.console.bench.server import broker, console_process, free_port
from payment_platform.console.bench.timing import BUDGET_MS, print_table, time_pages, time_verdict
from payment_platform.console.live_quality import refresh_one_day
from payment_platform.console.rollup import Rollup, utc_now
from payment_platform.console.sample_rows import promote_sample_model
from payment_platform.console.store import open_console_store
from payment_platform.settings import redact_url


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="console-bench-")))
        url = stack.enter_context(scratch_database(args.mysql_url, keep=args.keep))
        say(f"database {redact_url(url)}; {args.rows:,} rows over {args.days} days, live writer {args.live_rate:g}/s")
        store = open_console_store(url)
        now = utc_now()
        loaded = load_history(store.writer, args.rows, args.days, now, work)
        say(f"loaded {args.rows:,} payments and {loaded['labels']:,} labels in {loaded['seconds']:.0f} s")
        started = time.perf_counter()
        rollup = Rollup(store.writer)
        folded = rollup.catch_up(on_progress=lambda s: say(f"  aggregates: {s.last_id:,} of {s.store_max_id:,} ids"))
        aggregation_s = time.perf_counter() - started
        rate = folded / aggregation_s
        say(f"console aggregates built from {folded:,} rows in {aggregation_s:.0f} s ({rate:,.0f} rows/s)")
        started = time.perf_counter()
        measured = 0
        while refresh_one_day(store.reader, store.writer, now.date(), utc_now()) is not None:
            measured += 1
        quality_s = time.perf_counter() - started
        say(f"live quality of {measured} matured days measured in {quality_s:.0f} s (a console does one a minute)")
        home = work / "home"
        promote_sample_model(home / "models")
        add_scorers(store.writer, now)
        port = free_port()
        bootstrap = stack.enter_context(broker(work, args.bootstrap))
        users = work / "users"
        users.write_text(f"bench:{hash_password('bench-password')}\n", encoding="utf-8")
        stack.enter_context(
            console_process(url, home, port, bootstrap, users, labels_topic=f"bench-labels-{uuid.uuid4().hex[:6]}")
        )
        if args.recent_rate > 0:
            recent = load_recent(store.writer, args.recent_rate, work)
            say(f"loaded the last 15 minutes at {args.recent_rate:g} payments/s: {recent:,} rows")
            if not wait_for_rollup(store.reader, 300):
                raise RuntimeError("the console's maintenance did not fold the recent rows within 5 minutes")
        writer = LiveWriter(store.writer, args.live_rate)
        stack.enter_context(writer.running())
        time.sleep(args.warm_s)  # the live writer's rows reach the window panels and the rollup
        timings = time_pages(port, store.reader, args.repeat, now)
        verdict = time_verdict(port, store.reader)
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
    print_table(timings, verdict)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    slow = [t for t in timings if t.p95_ms > BUDGET_MS and t.first_byte_ms is None]
    if slow:
        say("over the 500 ms budget (p95): " + ", ".join(t.page for t in slow))
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


if __name__ == "__main__":
    sys.exit(main())
