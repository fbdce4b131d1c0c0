"""The export pages: the selection form, and the CSV it selects, streamed in chunks.

The selection is checked here (status, row limit, card id, time range) before `export_rows` reads anything.
"""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from payment_platform.console.export import MAX_EXPORT_ROWS, ExportFilter, csv_chunks, export_rows
from payment_platform.console.lifetime_totals import STATUSES
from payment_platform.console.pages.params import arg, card_id
from payment_platform.console.web import Console, Form


def export_form(console: Console, request: Request, form: Form) -> Response:
    return console.render(
        request,
        "export.html",
        {"nav": "export", "statuses": STATUSES, "max_rows": MAX_EXPORT_ROWS, "error": None},
    )


def export_csv(console: Console, request: Request, form: Form) -> Response:
    try:
        selection = _export_filter(request)
    except ValueError as exc:
        return console.render(
            request,
            "export.html",
            {"nav": "export", "statuses": STATUSES, "max_rows": MAX_EXPORT_ROWS, "error": str(exc)},
            status_code=400,
        )
    return StreamingResponse(
        csv_chunks(export_rows(console.store.reader, selection)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{selection.file_name()}"'},
    )


def _export_filter(request: Request) -> ExportFilter:
    status = arg(request, "status").upper() or None
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    limit_text = arg(request, "limit", "10000") or "0"
    try:
        limit = int(limit_text)
    except ValueError:
        raise ValueError("the row limit is a whole number (0: no limit)") from None
    if not 0 <= limit <= MAX_EXPORT_ROWS:
        raise ValueError(f"the row limit is between 0 and {MAX_EXPORT_ROWS:,}")
    customer = request.query_params.get("customer_id") or None
    if customer is not None and card_id(customer) is None:
        raise ValueError("a card id has 1 to 64 characters")
    since, until = _moment(arg(request, "since")), _moment(arg(request, "until"))
    if since and until and since >= until:
        raise ValueError("'from' must be before 'until'")
    return ExportFilter(status=status, since=since, until=until, customer_id=customer, limit=limit or None)


def _moment(text: str) -> dt.datetime | None:
    """A UTC time from a form (datetime-local input, or ISO-8601 with Z)."""
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a date and time: {text!r}") from None
    return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment
