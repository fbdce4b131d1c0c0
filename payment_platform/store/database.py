"""Connecting to the score store, with errors that say what to fix."""

from __future__ import annotations

import sqlalchemy as sa

from payment_platform.settings import redact_text, redact_url
from payment_platform.store.tables import create_tables


class StoreUnavailable(RuntimeError):
    """The score store cannot be reached or used."""


def connect_store(url: str, *, create: bool = True, lock_wait_timeout_s: int | None = None) -> sa.Engine:
    """An engine for the score store, checked with a round trip; tables created where missing.

    `lock_wait_timeout_s` bounds how long a statement waits for a lock (a row, or a table locked by
    someone else) before failing: a writer that retries by itself gets a chance to log, and to stop."""
    try:
        options: dict[str, object] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            options["connect_args"] = {"timeout": lock_wait_timeout_s or 30}
        elif "+pymysql" in url.split("://", 1)[0]:
            connect_args: dict[str, object] = {"local_infile": True}  # the writer's bulk load (store/bulk_load.py)
            if lock_wait_timeout_s is not None:
                connect_args["init_command"] = (
                    f"SET SESSION lock_wait_timeout = {int(lock_wait_timeout_s)}, "
                    f"innodb_lock_wait_timeout = {int(lock_wait_timeout_s)}"
                )
            options["connect_args"] = connect_args
        else:
            options["pool_recycle"] = 3600
        engine = sa.create_engine(url, **options)
    except Exception as exc:  # noqa: BLE001 - bad URL, missing driver
        raise StoreUnavailable(f"PAYMENT_DB_URL is not usable ({redact_url(url)}): {_reason(exc, url)}") from None
    if engine.dialect.name == "sqlite" and engine.url.database:
        from pathlib import Path

        Path(engine.url.database).parent.mkdir(parents=True, exist_ok=True)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        if create:
            create_tables(engine)
    except Exception as exc:  # noqa: BLE001
        engine.dispose()
        raise StoreUnavailable(
            f"cannot use the score store at {redact_url(url)}: {_reason(exc, url)} "
            "(check PAYMENT_DB_URL and that the database server is running)"
        ) from None
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    return engine


def _reason(exc: BaseException, url: str) -> str:
    """The error's first line with the URL's secrets masked (before it is cut: a cut secret is still half shown)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {redact_text(text[0], url)[:200]}" if text else type(exc).__name__
