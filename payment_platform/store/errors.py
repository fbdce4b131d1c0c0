"""Which database errors pass (retry the write) and which need a person (stop, commits held).

A write can fail from SQLAlchemy (wrapping the driver's error) or straight from the driver (the bulk-load
path uses the PyMySQL cursor), so both are read the same way: by the server's error code where there is
one. Anything that is about reaching or waiting for the server is transient; anything about what the
scorer is allowed to do, or about the schema, is permanent: retrying cannot fix it.
"""

from __future__ import annotations

import sqlite3
from enum import Enum

import pymysql
import sqlalchemy as sa

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
