"""What a benchmark run stands on, made for it and removed after: its broker, its database and its model."""

from __future__ import annotations

import datetime as dt
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from payment_platform.bench.report import say
from payment_platform.model import ModelRegistry
from payment_platform.model.pipeline import TrainingPlan, train_candidate, training_window
from payment_platform.store.database import connect_store
from payment_platform.world import World


@contextmanager
def broker(bootstrap: str | None, workdir: Path) -> Iterator[tuple[str, int | None]]:
    """The bootstrap address and, for the embedded broker this run starts, its pid (whose CPU is counted)."""
    if bootstrap:
        yield bootstrap, None
        return
    from payment_platform.kafka.embedded_broker import start_embedded_broker, stop_embedded_broker

    port = free_port()
    process = start_embedded_broker(port=port, log_path=workdir / "broker.log")
    say(f"started the embedded broker on 127.0.0.1:{port}")
    try:
        yield f"127.0.0.1:{port}", process.pid
    finally:
        stop_embedded_broker(process)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def database(server_url: str) -> Iterator[str]:
    """A fresh database on the server for this run only; dropped at the end."""
    name = f"pp_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    url = sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        connect_store(url).dispose()
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


def train_model(model_dir: Path, cards: int) -> str:
    """A small real model from the project's training code, saved and promoted in a temporary registry."""
    last = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=10)
    plan = TrainingPlan(max_modelled_days=24, test_days=7, gap_days=7)  # after the features' warm-up
    window = training_window(last, plan.window_days)
    payments = World(seed=3, n_cards=cards).days(window.start, window.end)
    registry = ModelRegistry(model_dir)
    version = train_candidate(payments, window, plan, registry).version
    registry.promote(version)
    return version
