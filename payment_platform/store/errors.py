"""Which database errors pass (retry the write) and which need a person (stop, commits held).

A write can fail from SQLAlchemy (wrapping the driver's error) or straight from the driver (the bulk-load
path uses the PyMySQL cursor), so both are read the same way: by the server's error code where there is
one. Anything that is about reaching or waiting for the server is transient; anything about what the
scorer is allowed to do, or about the schema, is permanent: retrying cannot fix it.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from enum import Enum
from typing import TypeVar

import pymysql
import sqlalchemy as sa

logger = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_FIRST_S, RETRY_MAX_S = 0.5, 30.0

# Server and client error codes that a later attempt can get past.
TRANSIENT_MYSQL_CODES = {
    1040,  # too many connections
    1053,  # server shutdown in progress
    1205,  # lock wait timeout (a row lock, or a table locked with LOCK TABLES)
    1213,  # deadlock
    1290,  # read-only (a failover in progress)
    1317,  # query interrupted
    1159,  # net read timeout
    1161,  # net write timeout
    1927,  # connection killed (MariaDB)
    2002,  # can't connect (socket)
    2003,  # can't connect (TCP)
    2006,  # server has gone away
    2013,  # lost connection during query
    2014,  # commands out of sync (a connection left broken)
    2055,  # lost connection at reading
}


class Failure(Enum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"


def database_error(exc: BaseException) -> bool:
    """Whether the exception came from the database or its driver."""
    return isinstance(exc, sa.exc.DBAPIError | sa.exc.InterfaceError | pymysql.err.Error | sqlite3.Error)


def classify(exc: BaseException) -> Failure:
    """Transient (retry) or permanent (stop) for a database error."""
    original = getattr(exc, "orig", None) or exc
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return Failure.TRANSIENT
    if isinstance(original, pymysql.err.MySQLError):
        code = original.args[0] if original.args and isinstance(original.args[0], int) else None
        if code is None or code in TRANSIENT_MYSQL_CODES:
            return Failure.TRANSIENT
        if isinstance(original, pymysql.err.InterfaceError):
            return Failure.TRANSIENT
        return Failure.PERMANENT
    if isinstance(original, sqlite3.OperationalError) and "locked" in str(original):
        return Failure.TRANSIENT
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError) and not isinstance(original, sqlite3.Error):
        return Failure.TRANSIENT
    return Failure.PERMANENT


def first_line(exc: BaseException) -> str:
    """The server's message, one line, without the driver's wrapping."""
    original = getattr(exc, "orig", None) or exc
    if isinstance(original, pymysql.err.MySQLError) and len(original.args) >= 2:
        return f"({original.args[0]}) {str(original.args[1]).splitlines()[0][:200]}"
    text = str(original).strip().splitlines()
    return text[0][:200] if text else type(original).__name__


class StoreRefused(RuntimeError):
    """The score store refuses what the scorer must do, for a reason retrying cannot fix (privilege, schema)."""


class StoreLost(RuntimeError):
    """Asked to stop while the score store could not be reached: what depended on it is not committed."""


def with_retries(call: Callable[[], T], what: str, should_stop: Callable[[], bool], dispose: Callable[[], None]) -> T:
    """`call()`, retried with backoff while the database error it raises can pass (one log line a try);
    a permanent error raises StoreRefused, a stop request during an outage StoreLost, both in one line."""
    delay = RETRY_FIRST_S
    while True:
        try:
            return call()
        except Exception as exc:
            if not database_error(exc):
                raise
            reason = first_line(exc)
            if classify(exc) is Failure.PERMANENT:
                raise StoreRefused(f"the score store refuses the scorer: {reason}") from None
            dispose()  # drop pooled connections to a lost server
            if should_stop():
                raise StoreLost(f"stopping with the score store unavailable ({what}): {reason}") from None
            logger.warning("score store unavailable (%s): %s, offsets held; retrying in %.1fs", reason, what, delay)
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline and not should_stop():
                time.sleep(0.1)
            delay = min(delay * 2, RETRY_MAX_S)
