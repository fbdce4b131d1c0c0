"""The review desk's pages: the queue, a case with its reason codes explained, and the case's actions.

Taking, renewing and releasing a case's lease, and giving a verdict, are POSTs that need an analyst; a
refused action re-renders the case with why (409 taken or already judged, 502 labels not delivered).
"""

from __future__ import annotations

import urllib.parse

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from payment_platform.console import health, leases, lifetime_totals, review_cases, verdicts
from payment_platform.console.investigation import card_timeline
from payment_platform.console.pages.investigation import timeline_chart
from payment_platform.console.pages.params import MAX_ID_LENGTH, arg, card_id, field, id_arg, int_arg
from payment_platform.console.reasons import explain
from payment_platform.console.verdict_labels import LabelNotDelivered
from payment_platform.console.web import Console, Form


def queue(console: Console, request: Request, form: Form) -> Response:
    now = console.clock()
    with console.store.reader.connect() as conn:
        cases = review_cases.review_queue(conn, now)
        open_cases, open_payments = review_cases.open_cases(conn)
        aggregates = health.aggregates_health(conn)
    done = id_arg(request, "done")
    return console.render(
        request,
        "queue.html",
        {
            "nav": "queue",
            "cases": cases,
            "open_cases": open_cases,
            "open_payments": open_payments,
            "aggregates": aggregates,
            "done": done,
            "judged": int_arg(request, "judged", 0, 0, review_cases.CASE_ITEMS_LIMIT),
            "verdict": arg(request, "verdict") if arg(request, "verdict") in verdicts.VERDICTS else "",
        },
    )


def case(console: Console, request: Request, form: Form, *, message: str | None = None, status: int = 200) -> Response:
    customer_id = id_arg(request, "card") or card_id(field(form, "card"))
    if customer_id is None:
        return RedirectResponse("/queue", status_code=303)
    now = console.clock()
    with console.store.reader.connect() as conn:
        loaded = review_cases.load_case(conn, customer_id, now)
        summary = lifetime_totals.card_risk(conn, customer_id)
        history = card_timeline(conn, customer_id, limit=30)
    production = console.models.production()
    explained = []
    for payment in loaded.open_payments:
        model = console.models.version(payment.model_version) or production
        explained.append(
            (
                payment,
                model,
                explain(
                    payment.reasons,
                    score=payment.score,
                    amount=payment.amount,
                    event_time=payment.event_time,
                    model=model,
                    card=loaded.card,
                ),
            )
        )
    analyst = request.state.session.analyst
    lease = loaded.lease
    return console.render(
        request,
        "case.html",
        {
            "nav": "queue",
            "case": loaded,
            "summary": summary,
            "history": history,
            "explained": explained,
            "lease": lease,
            "mine": lease is not None and lease.analyst == analyst,
            "taken": lease is not None and lease.analyst != analyst,
            "message": message,
            "chart": timeline_chart(history, production),
            "verdicts": verdicts.VERDICTS,
        },
        status_code=status,
    )


def take_case(console: Console, request: Request, form: Form) -> Response:
    customer_id = card_id(field(form, "card"))
    if customer_id is None:
        return RedirectResponse("/queue", status_code=303)
    try:
        leases.take_case(console.store.writer, customer_id, request.state.session.analyst, console.clock())
    except leases.CaseTaken as exc:
        return case(console, request, form, message=f"Taken: {exc}.", status=409)
    return RedirectResponse("/case?" + urllib.parse.urlencode({"card": customer_id}), status_code=303)


def renew_lease(console: Console, request: Request, form: Form) -> Response:
    """Called by the open case page every minute: keeps the analyst's lease while they work."""
    customer_id = card_id(field(form, "card"))
    if customer_id is None:
        return Response(status_code=400)
    try:
        lease = leases.take_case(console.store.writer, customer_id, request.state.session.analyst, console.clock())
    except leases.CaseTaken as exc:
        return Response(f"taken: {exc}", status_code=409, media_type="text/plain")
    return Response(f"yours until {lease.expires_at:%H:%M:%S} UTC", media_type="text/plain")


def release_case(console: Console, request: Request, form: Form) -> Response:
    customer_id = card_id(field(form, "card"))
    if customer_id is not None:
        leases.release_case(console.store.writer, customer_id, request.state.session.analyst)
    return RedirectResponse("/queue", status_code=303)


def give_verdict(console: Console, request: Request, form: Form) -> Response:
    customer_id = card_id(field(form, "card"))
    verdict = field(form, "verdict")
    if customer_id is None or verdict not in verdicts.VERDICTS:
        return case(console, request, form, message="Choose fraud or genuine.", status=400)
    try:
        judged = verdicts.record_verdict(
            console.store.writer,
            console.labels,
            customer_id=customer_id,
            analyst=request.state.session.analyst,
            verdict=verdict,
            note=field(form, "note"),
            transaction_ids=[tx for tx in form.get("tx", []) if 0 < len(tx) <= MAX_ID_LENGTH],
            now=console.clock(),
        )
    except leases.CaseTaken as exc:
        return case(console, request, form, message=f"Not recorded: {exc}.", status=409)
    except verdicts.NothingToReview as exc:
        return case(console, request, form, message=f"Not recorded: {exc}.", status=409)
    except LabelNotDelivered as exc:
        return case(
            console,
            request,
            form,
            message=f"Not recorded: the labels topic did not take the verdict ({exc}). Try again.",
            status=502,
        )
    query = urllib.parse.urlencode({"done": customer_id, "judged": judged, "verdict": verdict})
    return RedirectResponse(f"/queue?{query}", status_code=303)
