"""`payment-platform backtest` and `payment-platform verify` on the real broker and MariaDB: a small world's
labelled history through the live path, a model retrained from the store, the next days streamed and
measured next to their offline rescoring; then the stored scores verified, and a tampered one found. (A scorer
restarted between two replayed files: test_event_time_promise.py.)"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from payment_platform.features.definitions import WARMUP_DAYS
from payment_platform.world import World
from payment_platform_tests.conftest import scorer_cli_env

pytestmark = pytest.mark.integration

FIRST = dt.date(2026, 3, 1)
TRAIN_UNTIL = FIRST + dt.timedelta(days=WARMUP_DAYS + 19)  # the warm-up, then 20 modelled days
TEST_LAST = TRAIN_UNTIL + dt.timedelta(days=10)  # past the label delay: windows reach the test file's own labels
ROW = re.compile(r"^\s*(streamed|offline rescoring)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", re.MULTILINE)


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "payment_platform.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_backtest_streams_history_retrains_and_measures_the_next_days_as_offline(
    kafka_bootstrap: str, mysql_database: str, topic_names: dict[str, str], model_dir: Path, tmp_path: Path
) -> None:
    world = World(seed=41, n_cards=700)
    world.days(FIRST, TRAIN_UNTIL).to_parquet(tmp_path / "history.parquet")
    next_days = world.days(TRAIN_UNTIL + dt.timedelta(days=1), TEST_LAST)
    next_days.to_parquet(tmp_path / "next.parquet")
    home = tmp_path / "home"
    shutil.copytree(model_dir, home / "models")  # the model that scores the history
    env = scorer_cli_env(home, kafka_bootstrap, mysql_database, f"backtest-{topic_names['payment_topic']}", topic_names)

    done = cli(
        env,
        "backtest",
        str(tmp_path / "history.parquet"),
        "--train-until",
        TRAIN_UNTIL.isoformat(),
        "--test",
        str(tmp_path / "next.parquet"),
        "--test-days",
        "5",
    )

    assert done.returncode == 0, done.stderr[-6000:]
    assert "1/3 history.parquet" in done.stderr and "3/3 next.parquet" in done.stderr  # progress as it runs
    rows = {name: tuple(map(float, values)) for name, *values in ROW.findall(done.stdout)}
    assert set(rows) == {"streamed", "offline rescoring"}, done.stdout
    assert rows["streamed"] == rows["offline rescoring"]
    assert rows["streamed"][0] > 0.8  # AUC of a model that learnt something
    assert f"{len(next_days):,} payments of the test file" in done.stdout
    assert "0 stored scores differ" in done.stdout
    served_by = re.search(r"scored by model (\S+);", done.stdout)
    assert served_by is not None, done.stdout  # one model: the retrained one, picked up without a restart
    assert served_by.group(1) not in {p.name for p in model_dir.iterdir()}

    verified = cli(env, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr[-2000:]
    assert " 0 differ from the offline rescoring" in verified.stdout

    engine = sa.create_engine(mysql_database)
    with engine.begin() as conn:
        tampered = conn.execute(
            sa.text("SELECT transaction_id FROM scored_transactions ORDER BY event_time DESC LIMIT 1")
        ).scalar_one()
        conn.execute(
            sa.text("UPDATE scored_transactions SET score = score / 2 WHERE transaction_id = :t"), {"t": tampered}
        )
    engine.dispose()
    last_day = TEST_LAST.isoformat()
    refused = cli(env, "verify", "--from", last_day, "--to", last_day)
    assert refused.returncode == 1
    assert " 1 differ from the offline rescoring" in refused.stdout and tampered in refused.stdout
