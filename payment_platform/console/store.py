"""The console's connections to the score store: one for pages, one for the writes of the rollup and the desk.

On SQLite (the embedded default) a write transaction takes the database's write lock at BEGIN: the rollup
reads, then writes, and SQLite refuses to turn a read snapshot that the scorer has since written past into a
write. On MySQL/MariaDB both are one engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

import payment_platform.console.tables  # noqa: F401 - registers the console's tables before they are created
from payment_platform.console.portable_sql import install_sqlite_math
from payment_platform.store.database import connect_store


@dataclass(frozen=True)
class ConsoleStore:
    reader: sa.Engine
    writer: sa.Engine

    @property
    def dialect(self) -> str:
        return self.reader.dialect.name

    def dispose(self) -> None:
        self.reader.dispose()
        if self.writer is not self.reader:
            self.writer.dispose()


def open_console_store(url: str) -> ConsoleStore:
    """Engines on the store, checked with a round trip, every table (the console's too) created where missing.
    Raises payment_platform.store.database.StoreUnavailable with a redacted URL."""
    reader = connect_store(url)
    if reader.dialect.name != "sqlite":
        return ConsoleStore(reader, reader)
    writer = sa.create_engine(url, connect_args={"timeout": 30})
    install_sqlite_math(writer)

    @sa.event.listens_for(writer, "connect")
    def _manual_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite would otherwise BEGIN (deferred) by itself

    @sa.event.listens_for(writer, "begin")
    def _begin_immediate(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return ConsoleStore(reader, writer)


def without_credentials(text: str, store: ConsoleStore) -> str:
    """The text with the store's password masked, in case a driver error quoted it."""
    password = store.reader.url.password
    if not password:
        return text
    from urllib.parse import quote, quote_plus

    for form in {password, quote(password, safe=""), quote_plus(password)}:
        text = text.replace(form, "***")
    return text
