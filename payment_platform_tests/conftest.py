"""Shared fixtures: the real MariaDB/MySQL server and the real Kafka-protocol broker.

In CI (CI=true) a missing service fails the test; elsewhere the test is skipped with the reason.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from payment_platform.kafka.embedded_broker import start_embedded_broker, stop_embedded_broker
from payment_platform.model import ModelRegistry
from payment_platform.model.pipeline import TrainingPlan, train_candidate, training_window
from payment_platform.stream.config import ScorerConfig
from payment_platform.world import World

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Server-level URL (no database) of the MySQL-compatible server the integration tests use.
MYSQL_ADMIN_URL = os.environ.get("PAYMENT_TEST_MYSQL_ADMIN_URL", "mysql+pymysql://root@127.0.0.1:3306/")


# The smallest split that still has a validation tail: the features' warm-up, then 10 days of training,
# a 7-day gap and 7 test days.
SMALL_TRAINING_PLAN = TrainingPlan(max_modelled_days=24, test_days=7, gap_days=7)


def service_missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"required service missing in CI: {reason}")
    pytest.skip(reason)


def wait_until(condition: Callable[[], bool], timeout_s: float, every_s: float = 0.05) -> bool:
    """Whether the condition came true within the timeout (checked every `every_s`)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every_s)
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def mysql_server_url() -> str:
    """Admin URL of the running MySQL-compatible server (root, no database)."""
    engine = sa.create_engine(MYSQL_ADMIN_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means the server is not usable
        service_missing(f"MariaDB/MySQL not reachable at {MYSQL_ADMIN_URL}: {type(exc).__name__}")
    finally:
        engine.dispose()
    return MYSQL_ADMIN_URL


@pytest.fixture()
def mysql_database(mysql_server_url: str) -> Iterator[str]:
    """A fresh, empty database for one test; its SQLAlchemy URL. Dropped afterwards."""
    name = f"pp_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(mysql_server_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    try:
        yield sa.make_url(mysql_server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a real Kafka-protocol broker for the test session.

    PAYMENT_TEST_KAFKA_BOOTSTRAP points at a running broker; otherwise the embedded broker is
    started on a free port.
    """
    external = os.environ.get("PAYMENT_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    port = free_port()
    log = Path(tmp_path_factory.mktemp("broker")) / "broker.log"
    try:
        process = start_embedded_broker(port=port, log_path=log)
    except Exception as exc:  # noqa: BLE001
        service_missing(f"embedded Kafka broker could not start: {exc}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop_embedded_broker(process)


def scorer_cli_env(home: Path, bootstrap: str, db_url: str, group: str, topics: dict[str, str]) -> dict[str, str]:
    """The environment of a `payment-platform` process run by a test (CONTRACTS §3), nothing inherited
    but PATH."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PAYMENT_HOME": str(home),
        "PAYMENT_KAFKA_BOOTSTRAP": bootstrap,
        "PAYMENT_DB_URL": db_url,
        "PAYMENT_CONSUMER_GROUP": group,
        "PAYMENT_TOPIC": topics["payment_topic"],
        "PAYMENT_LABELS_TOPIC": topics["labels_topic"],
        "PAYMENT_DLQ_TOPIC": topics["dlq_topic"],
        "PAYMENT_DECISIONS_TOPIC": topics["decisions_topic"],
    }


@pytest.fixture()
def topic_names() -> dict[str, str]:
    """Unique topic names so tests sharing the broker never see each other's messages."""
    suffix = uuid.uuid4().hex[:8]
    return {
        "payment_topic": f"payments-{suffix}",
        "labels_topic": f"payment-labels-{suffix}",
        "dlq_topic": f"payments.dlq-{suffix}",
        "decisions_topic": f"payments.decisions-{suffix}",
    }


def scorer_config(
    bootstrap: str, topics: dict[str, str], db_url: str, model_dir: Path, group: str, **overrides: object
) -> ScorerConfig:
    """The configuration of a scorer run by a test, on its own topics and group."""
    return ScorerConfig(
        bootstrap=bootstrap, consumer_group=group, db_url=db_url, model_dir=model_dir, **topics
    ).with_overrides(**overrides)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small but real model, trained on the synthetic world and promoted."""
    root = tmp_path_factory.mktemp("models")
    world = World(seed=3, n_cards=2_000)
    plan = SMALL_TRAINING_PLAN
    window = training_window(dt.date(2026, 10, 10), plan.window_days)
    payments = world.days(window.start, window.end)
    registry = ModelRegistry(root)
    registry.promote(train_candidate(payments, window, plan, registry).version)
    return root
