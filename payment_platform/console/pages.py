"""The console's pages: each reads what it shows through the query modules and renders one template.

Parameters arrive as text and are checked here (whitelists and ranges); nothing of them reaches SQL but as a
bound value.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from payment_platform.console import (
    health,
    leases,
    lifetime_totals,
    live_quality,
    recent_windows,
    review_cases,
    verdicts,
    window_aggregates,
)
from payment_platform.console.accounts import ANALYST_NAME
from payment_platform.console.export import MAX_EXPORT_ROWS, ExportFilter, csv_chunks, export_rows
from payment_platform.console.investigation import TimelineEntry, card_timeline
from payment_platform.console.models import SHOWN_METRICS, ModelInfo
from payment_platform.console.reasons import explain
from payment_platform.console.sessions import Session
from payment_platform.console.verdict_labels import LabelNotDelivered
from payment_platform.console.web import Console, Form, Page

OVERVIEW_WINDOWS = {15: "15 min", 60: "1 hour", 360: "6 hours", 1440: "24 hours"}
MAX_ID_LENGTH = 64


def _arg(request: Request, name: str, default: str = "") -> str:
    return request.query_params.get(name, default).strip()


def _field(form: Form, name: str, default: str = "") -> str:
    return (form.get(name) or [default])[0]


def _int_arg(request: Request, name: str, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(_arg(request, name, str(default))), low), high)
    except ValueError:
        return default


def _float_arg(request: Request, name: str, default: float, low: float, high: float) -> float:
    try:
        value = float(_arg(request, name, str(default)))
    except ValueError:
        return default
    return min(max(value, low), high) if value == value else default  # NaN: default


def _card_id(text: str) -> str | None:
    """A customer_id as given (ids are compared byte for byte: no trimming), or None when it cannot be one."""
    return text if 0 < len(text) <= MAX_ID_LENGTH else None


def _id_arg(request: Request, name: str) -> str | None:
    return _card_id(request.query_params.get(name, ""))


def _chart_minutes(minutes: list[int]) -> list[int]:
    """Epoch seconds of chart points (uPlot's time axis)."""
    return [m * 60 for m in minutes]


# --- monitoring ---------------------------------------------------------------------------------------


def overview(console: Console, request: Request, form: Form) -> Response:
    now = console.clock()
    minutes = _int_arg(request, "window", 60, 1, 1440)
    minutes = minutes if minutes in OVERVIEW_WINDOWS else 60
    window = window_aggregates.Window(now, minutes)
    model = console.models.production()
    with console.store.reader.connect() as conn:
        totals = lifetime_totals.status_totals_all_time(conn)
        aggregates = health.aggregates_health(conn)
        try:
            last_minute: int | None = recent_windows.payments_since(conn, now - dt.timedelta(minutes=1))
        except recent_windows.AggregatesBehind:
            last_minute = None
        decisions = window_aggregates.decisions_over_time(conn, window)
        latency = window_aggregates.latency_over_time(conn, window)
        scores = window_aggregates.score_distribution(conn, window)
        reasons = window_aggregates.reason_breakdown(conn, window)
    charts = {
        "decisions": {
            "kind": "decisions",
            "x": _chart_minutes(decisions.minutes),
            "series": decisions.per_minute,
        },
        "latency": {
            "kind": "latency",
            "x": _chart_minutes(latency.minutes),
            "p50": latency.p50,
            "p95": latency.p95,
            "p99": latency.p99,
        },
        "scores": {
            "kind": "scores",
            "edges": scores.edges,
            "counts": scores.payments,
            "review": model.review_threshold if model else None,
            "decline": model.decline_threshold if model else None,
        },
    }
    return console.render(
        request,
        "overview.html",
        {
            "nav": "overview",
            "window": window,
            "windows": OVERVIEW_WINDOWS,
            "totals": totals,
            "aggregates": aggregates,
            "last_minute": last_minute,
            "decisions": decisions,
            "latency": latency,
            "scores": scores,
            "reasons": reasons,
            "charts": charts,
            "model": model,
        },
    )


def risk(console: Console, request: Request, form: Form) -> Response:
    now = console.clock()
    minutes = _int_arg(request, "minutes", 5, 1, 15)
    min_score = _float_arg(request, "min_score", 0.8, 0.0, 1.0)
    min_payments = _int_arg(request, "min_payments", 8, 2, 1000)
    asked = now - dt.timedelta(minutes=minutes)
    behind: str | None = None
    with console.store.reader.connect() as conn:
        top = lifetime_totals.top_risk_cards(conn, limit=10)
        window = recent_windows.recent_window(conn, asked)
        try:
            high = recent_windows.high_risk_payments(conn, window.since, min_score=min_score)
            velocity = recent_windows.velocity_suspects(conn, window.since, min_payments=min_payments)
        except recent_windows.AggregatesBehind as exc:
            high, velocity, behind = [], [], str(exc)
    return console.render(
        request,
        "risk.html",
        {
            "nav": "risk",
            "minutes": minutes,
            "min_score": min_score,
            "min_payments": min_payments,
            "since": window.since,
            "shortened": window.shortened,
            "max_window_rows": recent_windows.MAX_WINDOW_ROWS,
            "top": top,
            "high": high,
            "velocity": velocity,
            "behind": behind,
        },
    )


def scorer_health(console: Console, request: Request, form: Form) -> Response:
    now = console.clock()
    model = console.models.production()
    with console.store.reader.connect() as conn:
        scorers = health.scorers(conn, now)
        aggregates = health.aggregates_health(conn)
        days = live_quality.shown_days(conn, now.date())
    maintenance = console.maintenance
    return console.render(
        request,
        "health.html",
        {
            "nav": "health",
            "scorers": scorers,
            "scoring": health.scoring_totals(scorers),
            "aggregates": aggregates,
            "model": model,
            "shown_metrics": [(key, label, model.metrics.get(key)) for key, label in SHOWN_METRICS] if model else [],
            "days": days,
            "matured": live_quality.matured_days(now.date()),
            "maintenance_error": maintenance.status() if maintenance else None,
            "store_name": console.store_name,
            "labels_topic": console.labels_topic,
        },
    )


# --- investigation ------------------------------------------------------------------------------------


def card(console: Console, request: Request, form: Form) -> Response:
    customer_id = _id_arg(request, "id")
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
        context["chart"] = _timeline_chart(context["timeline"], model)
    return console.render(request, "card.html", context)


def _timeline_chart(timeline: list[TimelineEntry], model: ModelInfo | None) -> dict[str, Any]:
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


# --- review desk --------------------------------------------------------------------------------------


def queue(console: Console, request: Request, form: Form) -> Response:
    now = console.clock()
    with console.store.reader.connect() as conn:
        cases = review_cases.review_queue(conn, now)
        open_cases, open_payments = review_cases.open_cases(conn)
        aggregates = health.aggregates_health(conn)
    done = _id_arg(request, "done")
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
            "judged": _int_arg(request, "judged", 0, 0, review_cases.CASE_ITEMS_LIMIT),
            "verdict": _arg(request, "verdict") if _arg(request, "verdict") in verdicts.VERDICTS else "",
        },
    )


def case(console: Console, request: Request, form: Form, *, message: str | None = None, status: int = 200) -> Response:
    customer_id = _id_arg(request, "card") or _card_id(_field(form, "card"))
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
            "chart": _timeline_chart(history, production),
            "verdicts": verdicts.VERDICTS,
        },
        status_code=status,
    )


def take_case(console: Console, request: Request, form: Form) -> Response:
    customer_id = _card_id(_field(form, "card"))
    if customer_id is None:
        return RedirectResponse("/queue", status_code=303)
    try:
        leases.take_case(console.store.writer, customer_id, request.state.session.analyst, console.clock())
    except leases.CaseTaken as exc:
        return case(console, request, form, message=f"Taken: {exc}.", status=409)
    return RedirectResponse("/case?" + urllib.parse.urlencode({"card": customer_id}), status_code=303)


def renew_lease(console: Console, request: Request, form: Form) -> Response:
    """Called by the open case page every minute: keeps the analyst's lease while they work."""
    customer_id = _card_id(_field(form, "card"))
    if customer_id is None:
        return Response(status_code=400)
    try:
        lease = leases.take_case(console.store.writer, customer_id, request.state.session.analyst, console.clock())
    except leases.CaseTaken as exc:
        return Response(f"taken: {exc}", status_code=409, media_type="text/plain")
    return Response(f"yours until {lease.expires_at:%H:%M:%S} UTC", media_type="text/plain")


def release_case(console: Console, request: Request, form: Form) -> Response:
    customer_id = _card_id(_field(form, "card"))
    if customer_id is not None:
        leases.release_case(console.store.writer, customer_id, request.state.session.analyst)
    return RedirectResponse("/queue", status_code=303)


def give_verdict(console: Console, request: Request, form: Form) -> Response:
    customer_id = _card_id(_field(form, "card"))
    verdict = _field(form, "verdict")
    if customer_id is None or verdict not in verdicts.VERDICTS:
        return case(console, request, form, message="Choose fraud or genuine.", status=400)
    try:
        judged = verdicts.record_verdict(
            console.store.writer,
            console.labels,
            customer_id=customer_id,
            analyst=request.state.session.analyst,
            verdict=verdict,
            note=_field(form, "note"),
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


# --- export -------------------------------------------------------------------------------------------


def export_form(console: Console, request: Request, form: Form) -> Response:
    return console.render(
        request,
        "export.html",
        {"nav": "export", "statuses": lifetime_totals.STATUSES, "max_rows": MAX_EXPORT_ROWS, "error": None},
    )


def export_csv(console: Console, request: Request, form: Form) -> Response:
    try:
        selection = _export_filter(request)
    except ValueError as exc:
        return console.render(
            request,
            "export.html",
            {"nav": "export", "statuses": lifetime_totals.STATUSES, "max_rows": MAX_EXPORT_ROWS, "error": str(exc)},
            status_code=400,
        )
    return StreamingResponse(
        csv_chunks(export_rows(console.store.reader, selection)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{selection.file_name()}"'},
    )


def _export_filter(request: Request) -> ExportFilter:
    status = _arg(request, "status").upper() or None
    if status is not None and status not in lifetime_totals.STATUSES:
        raise ValueError(f"unknown status {status!r}")
    limit_text = _arg(request, "limit", "10000") or "0"
    try:
        limit = int(limit_text)
    except ValueError:
        raise ValueError("the row limit is a whole number (0: no limit)") from None
    if not 0 <= limit <= MAX_EXPORT_ROWS:
        raise ValueError(f"the row limit is between 0 and {MAX_EXPORT_ROWS:,}")
    customer = request.query_params.get("customer_id") or None
    if customer is not None and _card_id(customer) is None:
        raise ValueError("a card id has 1 to 64 characters")
    since, until = _moment(_arg(request, "since")), _moment(_arg(request, "until"))
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


# --- access -------------------------------------------------------------------------------------------


def login_form(
    console: Console, request: Request, form: Form, *, error: str | None = None, status: int = 200
) -> Response:
    return console.render(
        request,
        "login.html",
        {"nav": "login", "error": error, "next": _safe_next(_arg(request, "next") or _field(form, "next"))},
        status_code=status,
    )


def login(console: Console, request: Request, form: Form) -> Response:
    name, password = _field(form, "name").strip(), _field(form, "password")
    client = request.client.host if request.client else "unknown"
    keys = (f"name:{name}", f"client:{client}")
    if not console.accounts.configured:
        return login_form(console, request, form, error="No analyst accounts are configured.", status=403)
    if console.throttle.locked(*keys):
        return login_form(console, request, form, error="Too many failed attempts: wait a minute.", status=429)
    if not ANALYST_NAME.fullmatch(name) or not console.accounts.verify(name, password):
        console.throttle.failed(*keys)
        return login_form(console, request, form, error="Unknown name or wrong password.", status=401)
    console.throttle.succeeded(*keys)
    request.state.session = request.state.session.logged_in(name)
    return RedirectResponse(_safe_next(_field(form, "next")), status_code=303)


def logout(console: Console, request: Request, form: Form) -> Response:
    request.state.session = Session.new()
    return RedirectResponse("/", status_code=303)


def _safe_next(target: str) -> str:
    """Only a path of this site (never //host or a scheme): no open redirect after login."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


PAGES: list[Page] = [
    Page("/", overview),
    Page("/risk", risk),
    Page("/health", scorer_health),
    Page("/card", card),
    Page("/queue", queue),
    Page("/case", case),
    Page("/case/take", take_case, method="POST", needs_analyst=True),
    Page("/case/renew", renew_lease, method="POST", needs_analyst=True),
    Page("/case/release", release_case, method="POST", needs_analyst=True),
    Page("/case/verdict", give_verdict, method="POST", needs_analyst=True),
    Page("/export", export_form),
    Page("/export.csv", export_csv),
    Page("/login", login_form, login_page=True),
    Page("/login", login, method="POST", login_page=True),
    Page("/logout", logout, method="POST"),
]
