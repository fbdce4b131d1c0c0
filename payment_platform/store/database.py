"""Connecting to the score store, with errors that say what to fix."""

from __future__ import annotations

import sqlalchemy as sa

from payment_platform.settings import redact_text, redact_url
from payment_platform.store.tables import create_tables


class StoreUnavailable(RuntimeError):
    """The score store cannot be reached or used."""


def connect_store(url: str, *, create: bool = True) -> sa.Engine:
    """An engine for the score store, checked with a round trip; tables created where missing."""
    try:
        options: dict[str, object] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            options["connect_args"] = {"timeout": 30}
        elif "+pymysql" in url.split("://", 1)[0]:
            options["connect_args"] = {"local_infile": True}  # the writer's bulk load (store/bulk_load.py)
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
