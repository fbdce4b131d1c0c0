"""The console's bench, small, on the real broker and MariaDB: it loads, aggregates, serves and times every page."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_a_small_console_bench_times_every_page(kafka_bootstrap: str, mysql_server_url: str, tmp_path: Path) -> None:
    out = tmp_path / "console-bench.json"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "payment_platform.console.bench",
            *("--rows", "20000", "--days", "2", "--repeat", "1", "--warm-s", "2", "--live-rate", "20"),
            *(
                "--recent-rate",
                "20",
                "--json",
                str(out),
                "--bootstrap",
                kafka_bootstrap,
                "--mysql-url",
                mysql_server_url,
            ),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(out.read_text())
    pages = {page["page"]: page for page in report["pages"]}
    assert {"overview, 1 hour", "risk, 15 min window", "review queue", "case", "scorer health"} <= set(pages)
    assert all(page["status"] == 200 and page["bytes"] > 0 and page["p50_ms"] > 0 for page in pages.values())
    assert report["verdict"]["status"] == 303 and report["verdict"]["payments"] >= 1
    assert report["aggregation_rows_per_s"] > 0 and report["live_rows_written"] > 0
    assert "| overview, 1 hour |" in completed.stdout
