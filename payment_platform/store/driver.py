"""Reads that go straight to the MySQL driver, for the few queries the scorer runs per batch.

SQLAlchemy costs a few microseconds a row and a few more a bound value (an IN list of 5,000 ids is
rendered value by value); on the scorer's hot path that is more than the database's own work. These
queries are constants written for MySQL/MariaDB, with their values passed to PyMySQL as parameters
(escaped by the driver, never formatted into the SQL); other databases take the SQLAlchemy path.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pymysql.cursors
import sqlalchemy as sa

FETCH = 20_000


def uses_pymysql(engine: sa.Engine) -> bool:
    return engine.dialect.name in ("mysql", "mariadb") and engine.dialect.driver == "pymysql"


def rows(engine: sa.Engine, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Iterator[tuple[Any, ...]]:
    """The rows of a constant SQL statement, streamed from the server (an unbuffered cursor), so a large
    range is held FETCH rows at a time."""
    with engine.connect() as conn:
        cursor = conn.connection.cursor(pymysql.cursors.SSCursor)
        try:
            cursor.execute(sql, params)
            while batch := cursor.fetchmany(FETCH):
                yield from batch
        finally:
            cursor.close()
