"""Event times between the store's naive-UTC DATETIME(6) columns and epoch microseconds.

The stream works in integer epoch microseconds; the tables hold DATETIME(6). Bounds go to the database
as datetimes (so the indexes on the columns serve range conditions), and times come back as integers
computed by the database (`EpochMicros`), which costs far less than building a Python datetime per row.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

_EPOCH = dt.datetime(1970, 1, 1)
_MIN, _MAX = dt.datetime(1970, 1, 1), dt.datetime(9999, 12, 31)


def datetime_of(epoch_us: int) -> dt.datetime:
    """A naive UTC datetime (what DATETIME(6) holds), clamped to the range a column can hold."""
    try:
        return min(max(_EPOCH + dt.timedelta(microseconds=epoch_us), _MIN), _MAX)
    except OverflowError:
        return _MIN if epoch_us < 0 else _MAX


def epoch_us_of(value: dt.datetime) -> int:
    """Epoch microseconds of a naive UTC datetime."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class EpochMicros(FunctionElement[int]):
    """SQL expression: a DATETIME column as integer epoch microseconds."""

    inherit_cache = True
    type = sa.BigInteger()
    name = "epoch_micros"


@compiles(EpochMicros, "mysql")
@compiles(EpochMicros, "mariadb")
def _epoch_mysql(element: EpochMicros, compiler: SQLCompiler, **kw: object) -> str:
    return f"TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {compiler.process(element.clauses, **kw)})"


@compiles(EpochMicros, "sqlite")
def _epoch_sqlite(element: EpochMicros, compiler: SQLCompiler, **kw: object) -> str:
    column = compiler.process(element.clauses, **kw)  # stored as 'YYYY-MM-DD HH:MM:SS[.ffffff]'
    whole = f"CAST(strftime('%s', substr({column}, 1, 19)) AS INTEGER)"
    return f"({whole} * 1000000 + CAST(substr({column} || '.000000', 21, 6) AS INTEGER))"
