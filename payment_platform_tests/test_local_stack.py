"""`payment-platform dev` and `payment-platform broker` as a user runs them: started, used, stopped.

The dev session runs for real on free ports with a temporary PAYMENT_HOME (embedded broker, Dagster's
code server, webserver and daemon, the producer), with a promoted model already in its registry so
that the sensor starts scoring at once. Ctrl-C must stop it in order (producer, daemon, the scorer
through Dagster with its run recorded as CANCELED, webserver and code server, broker) within 10 s,
leaving no process behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from payment_platform.kafka.embedded_broker import port_is_open
from payment_platform_tests.conftest import free_port, wait_until

pytestmark = pytest.mark.integration

STOP_ORDER = [
    "stopping: producer",
    "stopping: daemon",
    "stopping: scorer",
    "scoring run ",
    "stopping: webserver",
    "stopping: code server",
    "stopping: broker",
    "stopping: done",
]


def descendants(pid: int) -> set[int]:
    """Every process below `pid` now (from /proc), whatever session or group it moved to."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def stored(db: Path, table: str) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    except sqlite3.Error:
        return 0


CHROMIUM = Path("/usr/bin/chromium")


def check_ui_paths(base: str, home: str) -> None:
    """The UI paths the README names exist in this Dagster, driven in a real browser (where Playwright and
    Chromium are installed: `pip install playwright`, `apt-get install chromium`)."""
    try:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout
        from playwright.sync_api import sync_playwright
    except ImportError:
        return
    if not CHROMIUM.exists():
        return
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.goto(f"{base}/assets/scored_transactions", wait_until="networkidle", timeout=60_000)
        # The navigation, the asset's tabs, and Overview → Metadata → Plots.
        for name in ("Catalog", "Jobs", "Runs", "Automation", "Lineage", "Overview", "Events", "Checks"):
            page.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
        # Plots come with the scoring run's first progress observation (every 10 s): the page shows them once
        # reloaded after it, which a backlog scored in under 10 s may not have reached yet.
        for _ in range(6):
            with contextlib.suppress(PlaywrightTimeout):
                page.get_by_text("Plots", exact=True).first.wait_for(timeout=5_000)
                break
            page.reload(wait_until="networkidle", timeout=60_000)
        page.get_by_text("Plots", exact=True).first.wait_for(timeout=5_000)
        assert page.get_by_text("production_model").first.is_visible()  # upstream in the lineage
        page.goto(f"{base}/locations/payment_platform/jobs/train_model", wait_until="networkidle", timeout=60_000)
        box = page.get_by_text("Materialize all").first.bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + box["width"] + 25, box["y"] + box["height"] / 2)  # its dropdown
        page.get_by_text("Open launchpad").first.click()
        editors = lambda: "\n".join(page.locator(".CodeMirror").all_inner_texts())  # noqa: E731 - the launchpad's too
        confirm = page.get_by_role("button", name="Confirm")  # "upstream not materialized" (no history here)
        if wait_until(lambda: confirm.count() > 0, 3):
            confirm.first.click()
        assert wait_until(lambda: "PAYMENT_DB_URL" in editors(), 30), editors()
        assert re.search(r"url:\s*(\d+\s*)?env:\s*PAYMENT_DB_URL", editors())  # line numbers interleave
        assert home not in page.inner_text("body")  # the embedded default URL is never shown
        browser.close()


def test_dev_starts_lived_in_and_ctrl_c_stops_everything_in_order(model_dir: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(model_dir, home / "models")  # a promoted model: the sensor starts scoring at once
    (tmp_path / "work").mkdir()
    # A compose .env in the working directory must not reach Dagster (it would override the shell).
    (tmp_path / "work" / ".env").write_text("PAYMENT_DB_URL=mysql+pymysql://compose:secret@mysql:3306/payments\n")
    kafka_port, ui_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PAYMENT_", "DAGSTER_"))},
        "PAYMENT_HOME": str(home),
        "PAYMENT_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port}",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    log = (tmp_path / "dev.log").open("wb")
    dev = subprocess.Popen(
        [sys.executable, "-m", "payment_platform.cli", "dev", "--port", str(ui_port), "--backfill-days", "8"],
        cwd=tmp_path / "work",
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    output = lambda: (tmp_path / "dev.log").read_text(errors="replace")  # noqa: E731
    descendants_seen: set[int] = set()
    try:
        # The recent past (8 days: the first day's labels are due) is produced at once and scored by the
        # run the sensor starts, its labels with it.
        db = home / "payments.db"

        def lived_in() -> bool:
            descendants_seen.update(descendants(dev.pid))
            return stored(db, "scored_transactions") > 50_000 and stored(db, "transaction_labels") > 5_000

        assert wait_until(lived_in, 150, every_s=1), output()[-5000:]
        assert port_is_open("127.0.0.1", ui_port)
        check_ui_paths(f"http://127.0.0.1:{ui_port}", str(home))
        processes = descendants(dev.pid)
        descendants_seen.update(processes)
        assert len(processes) >= 5, processes  # broker, code server (and its server), webserver, daemon, producer

        asked = time.monotonic()
        os.killpg(dev.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole foreground process group
        dev.wait(timeout=20)
        stopped_in = time.monotonic() - asked
    finally:
        if dev.poll() is None:  # a failed assertion: stop it in order, or at least leave nothing behind
            dev.send_signal(signal.SIGINT)
            try:
                dev.wait(timeout=20)
            except subprocess.TimeoutExpired:
                dev.kill()
        for pid in descendants_seen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        log.close()

    text = output()
    assert dev.returncode == 0, text[-3000:]
    assert stopped_in < 10, f"stopped in {stopped_in:.1f}s\n{text[-3000:]}"
    survivors = [pid for pid in processes if alive(pid)]
    assert not survivors, survivors
    assert not port_is_open("127.0.0.1", kafka_port) and not port_is_open("127.0.0.1", ui_port)

    positions = [text.find(marker) for marker in STOP_ORDER]
    assert -1 not in positions and positions == sorted(positions), text[-3000:]
    assert re.search(r"scoring run [0-9a-f-]+: CANCELED", text), text[-3000:]
    assert "Loaded environment variables from .env" not in text  # the working directory's .env was never read

    # The run is recorded as CANCELED, its step as a success, and nothing of it carries an error.
    os.environ.pop("DAGSTER_HOME", None)
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        (run,) = instance.get_runs(filters=dg.RunsFilter(job_name="score_payments"))
        assert run.status == dg.DagsterRunStatus.CANCELED
        events = [record.event_log_entry for record in instance.get_records_for_run(run.run_id).records]
    types = [e.dagster_event.event_type for e in events if e.dagster_event]
    assert dg.DagsterEventType.STEP_SUCCESS in types and dg.DagsterEventType.STEP_FAILURE not in types
    assert types.index(dg.DagsterEventType.RUN_CANCELED) > types.index(dg.DagsterEventType.STEP_SUCCESS)
    assert dg.DagsterEventType.RUN_SUCCESS not in types
    errors = [
        e.message for e in events if e.dagster_event and getattr(e.dagster_event.event_specific_data, "error", None)
    ]
    assert not errors, errors
    assert not [e for e in events if "DagsterExecutionInterruptedError" in (e.message or "")]


def test_broker_command_honours_sigterm(tmp_path: Path) -> None:
    port = free_port()
    broker = subprocess.Popen(
        [sys.executable, "-m", "payment_platform.cli", "broker", "--port", str(port)],
        env={**os.environ, "PAYMENT_HOME": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert wait_until(lambda: port_is_open("127.0.0.1", port), 30), "broker did not listen"
        binaries = descendants(broker.pid)
        assert binaries, "the broker binary runs as a child of the command"
        broker.send_signal(signal.SIGTERM)
        assert broker.wait(timeout=10) == 0
    finally:
        if broker.poll() is None:
            broker.kill()
    assert wait_until(lambda: not any(alive(pid) for pid in binaries), 5)
    assert not port_is_open("127.0.0.1", port)
