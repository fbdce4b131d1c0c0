"""The card investigation page: one card's lifetime figures and timeline, with its scores charted.

The timeline chart is shared with the case page, which shows the same card's recent history.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from payment_platform.console import lifetime_totals, review_cases
from payment_platform.console.investigation import TimelineEntry, card_timeline
from payment_platform.console.models import ModelInfo
from payment_platform.console.pages.params import id_arg
from payment_platform.console.web import Console, Form


def card(console: Console, request: Request, form: Form) -> Response:
    customer_id = id_arg(request, "id")
    context: dict[str, Any] = {
        "nav": "card",
        "customer_id": customer_id or "",
        "summary": None,
        "timeline": [],
        "open_payments": 0,
        "chart": None,
    }
    if customer_id:
        with console.store.reader.connect() as conn:
            context["summary"] = lifetime_totals.card_risk(conn, customer_id)
            context["timeline"] = card_timeline(conn, customer_id)
            context["open_payments"] = review_cases.open_payments_of(conn, customer_id)
        model = console.models.production()
        context["chart"] = timeline_chart(context["timeline"], model)
    return console.render(request, "card.html", context)


def timeline_chart(timeline: list[TimelineEntry], model: ModelInfo | None) -> dict[str, Any]:
    ordered = sorted(timeline, key=lambda e: e.event_time)
    x = [e.event_time.replace(tzinfo=dt.UTC).timestamp() for e in ordered]
    by_status = {
        status: [e.score if e.status == status else None for e in ordered] for status in lifetime_totals.STATUSES
    }
    return {
        "kind": "timeline",
        "x": x,
        "series": by_status,
        "fraud": [e.score if e.is_fraud else None for e in ordered],
        "review": model.review_threshold if model else None,
        "decline": model.decline_threshold if model else None,
    }
