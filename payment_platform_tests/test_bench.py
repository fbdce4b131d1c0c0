"""`payment-platform bench --smoke` on the real broker and MariaDB: every section present, every figure positive."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from payment_platform.cli import build_parser

pytestmark = pytest.mark.integration


def test_smoke_bench_reports_every_section(kafka_bootstrap: str, mysql_server_url: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "payment_platform.bench",
            "--smoke",
            "--json",
            str(out),
            "--bootstrap",
            kafka_bootstrap,
            "--mysql-url",
            mysql_server_url,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PAYMENT_HOME": str(tmp_path / "home")},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(out.read_text())

    assert {"machine", "versions", "ceilings", "naive", "end_to_end", "latency", "memory", "scaling"} <= set(results)
    assert results["machine"]["cores"] >= 1
    assert "MariaDB" in results["versions"]["database"] or results["versions"]["database"][0].isdigit()
    ceilings = results["ceilings"]
    assert ceilings["consume_msgs_per_s"] > 0
    assert ceilings["insert_rows_per_s"] and all(rate > 0 for rate in ceilings["insert_rows_per_s"].values())
    assert results["naive"]["msgs_per_s"] > 0
    e2e = results["end_to_end"]
    assert e2e["consumed"] == results["payments"] + results["invalid_messages"]
    assert e2e["invalid"] == results["invalid_messages"]
    assert e2e["stored_rows"] == results["payments"]
    assert e2e["payments_per_s"] > 0 and e2e["ratio_to_lower_ceiling"] > 0
    assert results["latency"]
    for run in results["latency"]:
        assert run["scored"] == run["sent"] > 0
        assert 0 < run["p50_ms"] <= run["p95_ms"] <= run["p99_ms"]
    memory = results["memory"]
    assert memory["scorer_peak_rss_mib"] > 0 and memory["state_bytes_per_card"] > 0
    assert memory["million_cards_mib"] > 0 and memory["million_cards_full_mib"] > 0
    assert [run["processes"] for run in results["scaling"]] == [1, 2]
    assert all(run["payments_per_s"] > 0 for run in results["scaling"])
    assert "platform scorer end to end" in completed.stdout


def test_bench_is_a_command() -> None:
    args = build_parser().parse_args(["bench", "--smoke", "--json", "x.json"])
    assert (args.command, args.smoke, str(args.json)) == ("bench", True, "x.json")
