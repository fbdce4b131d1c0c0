"""SQL the console needs that MySQL/MariaDB and SQLite spell differently, as SQLAlchemy constructs.

Bucketing runs in the database (a GROUP BY returns a handful of rows per minute instead of every payment),
so the bucket rules live here and in the Python twins that read the buckets back (`latency_bucket_bounds`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

MYSQL_DIALECTS = ("mysql", "mariadb")

# Latency buckets: 0 is below 1 ms (and negative: event times ahead of the scorer's clock); bucket k >= 1 holds
# [10^((k-1)/20), 10^(k/20)) ms, 20 a decade (each 12 % wide); the last one also holds everything above.
LATENCY_BUCKETS_PER_DECADE = 20
LATENCY_LAST_BUCKET = 181  # from 10^9 ms (11.6 days) up: replays of old history
_LN_SCALE = LATENCY_BUCKETS_PER_DECADE / math.log(10)

# Score buckets: 50 of width 0.02; a score of exactly 1 joins the last.
SCORE_BUCKETS = 50


def latency_bucket_bounds(bucket: int) -> tuple[float, float]:
    """The [low, high) milliseconds of a latency bucket (the last one is open-ended: high is inf)."""
    if bucket <= 0:
        return 0.0, 1.0
    low = 10 ** ((bucket - 1) / LATENCY_BUCKETS_PER_DECADE)
    high = math.inf if bucket >= LATENCY_LAST_BUCKET else 10 ** (bucket / LATENCY_BUCKETS_PER_DECADE)
    return low, high


def latency_bucket_of(latency_ms: float) -> int:
    """The Python twin of `latency_bucket`, for tests and references."""
    if latency_ms < 1:
        return 0
    return min(math.floor(math.log(latency_ms) * _LN_SCALE) + 1, LATENCY_LAST_BUCKET)


def score_bucket_of(score: float) -> int:
    return min(math.floor(score * SCORE_BUCKETS), SCORE_BUCKETS - 1)


class epoch_minute(FunctionElement[int]):
    """Whole minutes since 1970-01-01 of a naive UTC DATETIME, whatever the session's time zone."""

    type = sa.BigInteger()
    inherit_cache = True
    name = "epoch_minute"


@compiles(epoch_minute, "mysql")
@compiles(epoch_minute, "mariadb")
def _epoch_minute_mysql(element: epoch_minute, compiler: SQLCompiler, **kw: Any) -> str:
    return f"TIMESTAMPDIFF(MINUTE, '1970-01-01 00:00:00', {compiler.process(element.clauses, **kw)})"


@compiles(epoch_minute, "sqlite")
def _epoch_minute_sqlite(element: epoch_minute, compiler: SQLCompiler, **kw: Any) -> str:
    return f"(CAST(strftime('%s', substr({compiler.process(element.clauses, **kw)}, 1, 19)) AS INTEGER) / 60)"


def to_epoch_minute(moment: dt.datetime) -> int:
    """Whole minutes since the epoch of a naive UTC datetime: the Python twin of `epoch_minute`."""
    return math.floor((moment - dt.datetime(1970, 1, 1)).total_seconds() / 60)


def from_epoch_minute(minute: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1) + dt.timedelta(minutes=minute)


class latency_ms(FunctionElement[float]):
    """Milliseconds from the first DATETIME to the second (scored_at − event_time)."""

    type = sa.Double()
    inherit_cache = True
    name = "latency_ms"


@compiles(latency_ms, "mysql")
@compiles(latency_ms, "mariadb")
def _latency_ms_mysql(element: latency_ms, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"(TIMESTAMPDIFF(MICROSECOND, {start}, {end}) / 1000.0)"


@compiles(latency_ms, "sqlite")
def _latency_ms_sqlite(element: latency_ms, compiler: SQLCompiler, **kw: Any) -> str:
    # Whole seconds of the text's first 19 characters, microseconds from its fraction ('YYYY-MM-DD
    # HH:MM:SS.ffffff'): julianday() and strftime() of the whole text round to the millisecond.
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return (
        f"((CAST(strftime('%s', substr({end}, 1, 19)) AS INTEGER) "
        f"- CAST(strftime('%s', substr({start}, 1, 19)) AS INTEGER)) * 1000.0 "
        f"+ (CAST(substr({end}, 20) AS REAL) - CAST(substr({start}, 20) AS REAL)) * 1000.0)"
    )


class latency_bucket(FunctionElement[int]):
    """The latency bucket of a millisecond value (see LATENCY_BUCKETS_PER_DECADE)."""

    type = sa.Integer()
    inherit_cache = True
    name = "latency_bucket"


@compiles(latency_bucket, "mysql")
@compiles(latency_bucket, "mariadb")
def _latency_bucket_mysql(element: latency_bucket, compiler: SQLCompiler, **kw: Any) -> str:
    value = compiler.process(element.clauses, **kw)
    return f"CASE WHEN {value} < 1 THEN 0 ELSE LEAST(FLOOR(LN({value}) * {_LN_SCALE!r}) + 1, {LATENCY_LAST_BUCKET}) END"


@compiles(latency_bucket, "sqlite")
def _latency_bucket_sqlite(element: latency_bucket, compiler: SQLCompiler, **kw: Any) -> str:
    value = compiler.process(element.clauses, **kw)
    return (
        f"CASE WHEN {value} < 1 THEN 0 "
        f"ELSE MIN(CAST(ln({value}) * {_LN_SCALE!r} AS INTEGER) + 1, {LATENCY_LAST_BUCKET}) END"
    )


class score_bucket(FunctionElement[int]):
    """The score bucket of a fraud score in [0, 1]."""

    type = sa.Integer()
    inherit_cache = True
    name = "score_bucket"


@compiles(score_bucket, "mysql")
@compiles(score_bucket, "mariadb")
def _score_bucket_mysql(element: score_bucket, compiler: SQLCompiler, **kw: Any) -> str:
    return f"LEAST(FLOOR({compiler.process(element.clauses, **kw)} * {SCORE_BUCKETS}), {SCORE_BUCKETS - 1})"


@compiles(score_bucket, "sqlite")
def _score_bucket_sqlite(element: score_bucket, compiler: SQLCompiler, **kw: Any) -> str:
    return f"MIN(CAST({compiler.process(element.clauses, **kw)} * {SCORE_BUCKETS} AS INTEGER), {SCORE_BUCKETS - 1})"


def install_sqlite_math(engine: sa.Engine) -> None:
    """SQLite builds without the math functions get `ln` from Python (the latency buckets need it)."""
    if engine.dialect.name != "sqlite":
        return

    @sa.event.listens_for(engine, "connect")
    def _add_ln(dbapi_connection: Any, _record: Any) -> None:
        try:
            dbapi_connection.execute("SELECT ln(1)")
        except Exception:  # noqa: BLE001 - sqlite3.OperationalError: no such function
            dbapi_connection.create_function("ln", 1, lambda x: math.log(x) if x and x > 0 else None)


def merge_add(
    conn: sa.Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, object]],
    *,
    add: Iterable[str] = (),
    greatest: Iterable[str] = (),
    least: Iterable[str] = (),
    batch: int = 10_000,
) -> None:
    """Insert rows, or fold them into the existing row of the same primary key: `add` columns are summed,
    `greatest` and `least` columns keep the larger or smaller value."""
    if not rows:
        return
    add, greatest, least = list(add), list(greatest), list(least)
    dialect = conn.dialect.name
    statement: sa.Insert
    if dialect in MYSQL_DIALECTS:
        mysql_insert = mysql.insert(table)
        new = mysql_insert.inserted
        statement = mysql_insert.on_duplicate_key_update(
            {
                **{c: table.c[c] + new[c] for c in add},
                **{c: sa.func.greatest(table.c[c], new[c]) for c in greatest},
                **{c: sa.func.least(table.c[c], new[c]) for c in least},
            }
        )
    elif dialect == "sqlite":
        sqlite_insert = sqlite.insert(table)
        new = sqlite_insert.excluded
        statement = sqlite_insert.on_conflict_do_update(
            index_elements=[c.name for c in table.primary_key.columns],
            set_={
                **{c: table.c[c] + new[c] for c in add},
                **{c: sa.func.max(table.c[c], new[c]) for c in greatest},
                **{c: sa.func.min(table.c[c], new[c]) for c in least},
            },
        )
    else:
        raise NotImplementedError(f"the console supports MySQL/MariaDB and SQLite, not {dialect}")
    # One statement, many parameter sets: the driver batches them (PyMySQL into multi-row INSERTs); compiling
    # one multi-row VALUES per batch in SQLAlchemy cost more than the database's work.
    for start in range(0, len(rows), batch):
        conn.execute(statement, list(rows[start : start + batch]))


def insert_ignore(
    conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, object]], batch: int = 1_000
) -> None:
    """Insert the rows whose primary key is new; the others are left as they are (idempotent folds)."""
    if not rows:
        return
    statement = sa.insert(table)
    if conn.dialect.name in MYSQL_DIALECTS:
        statement = statement.prefix_with("IGNORE", dialect=conn.dialect.name)
    elif conn.dialect.name == "sqlite":
        statement = statement.prefix_with("OR IGNORE", dialect="sqlite")
    for start in range(0, len(rows), batch):
        conn.execute(statement, list(rows[start : start + batch]))


def merge_replace(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, object]]) -> None:
    """Insert rows, or overwrite every other column of the existing row with the same primary key."""
    if not rows:
        return
    keys = {c.name for c in table.primary_key.columns}
    others = [c.name for c in table.columns if c.name not in keys]
    if conn.dialect.name in MYSQL_DIALECTS:
        mysql_insert = mysql.insert(table).values(list(rows))
        conn.execute(mysql_insert.on_duplicate_key_update({c: mysql_insert.inserted[c] for c in others}))
    elif conn.dialect.name == "sqlite":
        sqlite_insert = sqlite.insert(table).values(list(rows))
        conn.execute(
            sqlite_insert.on_conflict_do_update(
                index_elements=sorted(keys), set_={c: sqlite_insert.excluded[c] for c in others}
            )
        )
    else:
        raise NotImplementedError(f"the console supports MySQL/MariaDB and SQLite, not {conn.dialect.name}")
