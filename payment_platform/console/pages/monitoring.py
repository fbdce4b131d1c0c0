"""The monitoring pages: the overview, risk, and scorer health.

Each reads its panels through the query modules (lifetime totals, window aggregates, recent windows,
health) on one reader connection and renders one template.
"""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import Response

from payment_platform.console import health, lifetime_totals, live_quality, recent_windows, window_aggregates
from payment_platform.console.models import SHOWN_METRICS
from payment_platform.console.pages.params import chart_minutes, float_arg, int_arg
from payment_platform.console.web import Console, Form

OVERVIEW_WINDOWS = {15: "15 min", 60: "1 hour", 360: "6 hours", 1440: "24 hours"}


def overview(console: Console, request: Request, form: Form) -> Response:
    now = console.clock()
    minutes = int_arg(request, "window", 60, 1, 1440)
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
            "x": chart_minutes(decisions.minutes),
            "series": decisions.per_minute,
        },
        "latency": {
            "kind": "latency",
            "x": chart_minutes(latency.minutes),
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
    minutes = int_arg(request, "minutes", 5, 1, 15)
    min_score = float_arg(request, "min_score", 0.8, 0.0, 1.0)
    min_payments = int_arg(request, "min_payments", 8, 2, 1000)
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
