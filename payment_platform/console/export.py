"""CSV export of a filtered selection of scored payments, streamed in keyset-paginated chunks.

Each chunk is a short query that resumes after the last row sent, on an index that yields rows already in
order: (event_time, id) when a time range or a card is given, the primary key (or the status index, whose
entries end with the primary key) otherwise. Memory stays at one chunk whatever the selection, no query holds
a connection while the browser downloads, and the first bytes leave after the first chunk.

Text that came from payments is written so that a spreadsheet never runs it: a field starting with
= + - @ or a control character gets a leading apostrophe (CSV formula injection).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa

from payment_platform.store.rows import SCORED_COLUMNS
from payment_platform.store.tables import scored_transactions, transaction_labels

t = scored_transactions.c
lb = transaction_labels.c

# The stored row as the score store keeps it (without its internal shard), then its label.
EXPORT_COLUMNS = ["id", *(name for name in SCORED_COLUMNS if name != "shard"), "is_fraud", "labelled_at"]
_TEXT_COLUMNS = {"transaction_id", "customer_id", "terminal_id", "reasons", "model_version", "currency"}
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
MAX_EXPORT_ROWS = 10_000_000


@dataclass(frozen=True)
class ExportFilter:
    """Which payments to export: event time in [since, until), a status, a card; at most `limit` rows
    (None: all), newest first."""

    status: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    customer_id: str | None = None
    limit: int | None = 10_000

    @property
    def by_event_time(self) -> bool:
        return self.customer_id is not None or self.since is not None or self.until is not None

    def file_name(self) -> str:
        parts = ["scored_payments", (self.status or "all").lower()]
        if self.customer_id:
            parts.append("card")
        return "_".join(parts) + ".csv"


def export_rows(engine: sa.Engine, selection: ExportFilter, chunk: int = 5_000) -> Iterator[sa.Row]:
    """The selected rows, newest first, one chunk in memory at a time."""
    remaining = selection.limit
    after: tuple[dt.datetime, int] | int | None = None
    while remaining is None or remaining > 0:
        size = chunk if remaining is None else min(chunk, remaining)
        with engine.connect() as conn:
            rows = conn.execute(_chunk_query(selection, after, size)).all()
        yield from rows
        if remaining is not None:
            remaining -= len(rows)
        if len(rows) < size:
            return
        last = rows[-1]
        after = (last.event_time, last.id) if selection.by_event_time else last.id


def _chunk_query(selection: ExportFilter, after: tuple[dt.datetime, int] | int | None, size: int) -> sa.Select:
    conditions: list[sa.ColumnElement[bool]] = []
    if selection.status is not None:
        conditions.append(t.status == selection.status)
    if selection.customer_id is not None:
        conditions.append(t.customer_id == selection.customer_id)
    if selection.since is not None:
        conditions.append(t.event_time >= selection.since)
    if selection.until is not None:
        conditions.append(t.event_time < selection.until)
    order: tuple[sa.UnaryExpression[object], ...]
    if selection.by_event_time:
        if isinstance(after, tuple):
            last_time, last_id = after
            conditions.append(t.event_time <= last_time)
            conditions.append(sa.or_(t.event_time < last_time, t.id < last_id))
        order = (t.event_time.desc(), t.id.desc())
    else:
        if isinstance(after, int):
            conditions.append(t.id < after)
        order = (t.id.desc(),)
    columns = [t[name] for name in EXPORT_COLUMNS[:-2]] + [lb.is_fraud, lb.labelled_at]
    return (
        sa.select(*columns)
        .select_from(scored_transactions.outerjoin(transaction_labels, lb.transaction_id == t.transaction_id))
        .where(*conditions)
        .order_by(*order)
        .limit(size)
    )


def csv_field(column: str, value: object) -> str:
    """How one value is written: ISO-8601 UTC times, 1/0 labels, text that a spreadsheet will not evaluate."""
    return _FORMATTERS[column](value)


def _time(value: object) -> str:
    return "" if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # type: ignore[attr-defined]


def _flag(value: object) -> str:
    return "" if value is None else "1" if value else "0"


def _money(value: object) -> str:
    return "" if value is None else f"{value:.2f}"


def _number(value: object) -> str:
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


def _text(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


# One formatter per column, chosen once: the export formats millions of values.
_FORMATTERS = {
    **{name: _number for name in EXPORT_COLUMNS},
    **{name: _text for name in _TEXT_COLUMNS},
    "event_time": _time,
    "scored_at": _time,
    "labelled_at": _time,
    "is_fraud": _flag,
    "amount": _money,
}


def csv_chunks(rows: Iterator[sa.Row], rows_per_chunk: int = 2_000) -> Iterator[bytes]:
    """The header, then the rows as UTF-8 CSV, a few thousand rows per piece."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    pending = 0
    formatters = [_FORMATTERS[name] for name in EXPORT_COLUMNS]
    for row in rows:
        writer.writerow([format_(value) for format_, value in zip(formatters, row, strict=True)])
        pending += 1
        if pending >= rows_per_chunk:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    yield buffer.getvalue().encode("utf-8")
