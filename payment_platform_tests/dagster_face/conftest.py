"""Fixtures of the Dagster tests: a fresh PAYMENT_HOME, resources bound to it, a test instance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from payment_platform_tests.dagster_face.support import build_test_resources


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh PAYMENT_HOME; the database URL then defaults to SQLite inside it."""
    monkeypatch.setenv("PAYMENT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PAYMENT_DB_URL", raising=False)
    return tmp_path / "home"


@pytest.fixture()
def resources(home: Path) -> dict[str, dg.ConfigurableResource]:
    return build_test_resources(home)


@pytest.fixture()
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance
