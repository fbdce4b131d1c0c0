"""The console's web application: Starlette routes around server-rendered Jinja pages.

Every route goes through `_guarded`, which decides access in one place:
- a session (signed cookie) for every visitor, carrying the CSRF token;
- reading without a login only when the console is bound to a loopback address; otherwise every page but
  the login page needs one;
- every POST needs the session's CSRF token (form field or X-CSRF-Token header) and a same-origin Origin
  when the browser sends one; writes other than logging in need an analyst;
- security headers on every response (a strict Content-Security-Policy: scripts only from the package).
Page handlers are plain functions run in Starlette's thread pool, since the store's driver blocks.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import jinja2
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from payment_platform.console.accounts import Accounts
from payment_platform.console.config import REFRESH_CHOICES_S, ConsoleConfig
from payment_platform.console.models import ModelCatalog
from payment_platform.console.rollup import utc_now
from payment_platform.console.sessions import COOKIE_NAME, MAX_AGE_S, Session, SessionSigner
from payment_platform.console.store import ConsoleStore, without_credentials
from payment_platform.console.verdict_labels import LabelSink
from payment_platform.store.database import StoreUnavailable

logger = logging.getLogger(__name__)

MAX_FORM_BYTES = 64 * 1024
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

Form = dict[str, list[str]]


class BackgroundWork(Protocol):
    """The maintenance (a thread or a process) the app starts and stops with itself."""

    def start(self) -> None: ...
    def stop(self, timeout_s: float = 30.0) -> None: ...
    def status(self) -> str | None: ...


class LoginThrottle:
    """Five failed logins for one name (or from one address) within 15 minutes lock it for a minute."""

    WINDOW_S, LIMIT, LOCK_S = 900.0, 5, 60.0

    def __init__(self) -> None:
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def locked(self, *keys: str) -> bool:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                recent = [t for t in self._failures.get(key, []) if now - t < self.WINDOW_S]
                self._failures[key] = recent
                if len(recent) >= self.LIMIT and now - recent[-1] < self.LOCK_S:
                    return True
        return False

    def failed(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.setdefault(key, []).append(time.monotonic())

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)


@dataclass
class Console:
    """Everything a page needs: settings, the store, the registry, the labels topic, accounts, sessions."""

    config: ConsoleConfig
    store: ConsoleStore
    models: ModelCatalog
    labels: LabelSink
    accounts: Accounts
    signer: SessionSigner
    store_name: str  # the store's URL with its password masked
    labels_topic: str
    maintenance: BackgroundWork | None = None
    clock: Callable[[], dt.datetime] = utc_now
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    templates: jinja2.Environment = field(init=False)

    def __post_init__(self) -> None:
        self.templates = _template_environment()

    def render(self, request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
        session: Session = request.state.session
        context = {"nav": "", **context}
        page = self.templates.get_template(name).render(
            request=request,
            session=session,
            analyst=session.analyst,
            csrf=session.csrf,
            config=self.config,
            accounts_configured=self.accounts.configured,
            refresh_choices=REFRESH_CHOICES_S,
            now=self.clock(),
            **context,
        )
        return HTMLResponse(page, status_code=status_code)


PageHandler = Callable[[Console, Request, Form], Response]


@dataclass(frozen=True)
class Page:
    path: str
    handler: PageHandler
    method: str = "GET"
    login_page: bool = False  # reachable without a login wherever the console listens
    needs_analyst: bool = False  # writes other than logging in


def build_app(console: Console, pages: Sequence[Page]) -> Starlette:
    """The Starlette app serving `pages` and the package's static assets; starts and stops the maintenance."""

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if console.maintenance is not None:
            console.maintenance.start()
        try:
            yield
        finally:
            if console.maintenance is not None:
                await run_in_threadpool(console.maintenance.stop)
            console.store.dispose()

    routes: list[BaseRoute] = [
        Route(page.path, _guarded(console, page), methods=[page.method], name=page.path) for page in pages
    ]
    routes.append(Mount("/static", StaticFiles(packages=[("payment_platform.console", "static")]), name="static"))
    return Starlette(routes=routes, lifespan=lifespan)


def _guarded(console: Console, page: Page) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        cookie = request.cookies.get(COOKIE_NAME)
        session = console.signer.loads(cookie) or Session.new()
        request.state.session = session
        response = await _respond(console, page, request, session)
        final: Session = request.state.session
        if final != session or cookie is None or console.signer.loads(cookie) is None:
            response.set_cookie(
                COOKIE_NAME,
                console.signer.dumps(final),
                max_age=MAX_AGE_S,
                httponly=True,
                samesite="lax",
                path="/",
            )
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response

    return endpoint


async def _respond(console: Console, page: Page, request: Request, session: Session) -> Response:
    logged_in = session.analyst is not None
    if not page.login_page and not console.config.open_reading and not logged_in:
        if page.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse("/login?" + urllib.parse.urlencode({"next": target}), status_code=303)
        return _refuse(console, request, 401, "Log in first.")
    form: Form = {}
    if page.method == "POST":
        if not _same_origin(request):
            return _refuse(console, request, 403, "This form was sent from another site.")
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            return _refuse(console, request, 413, "The form is too large.")
        form = urllib.parse.parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
        token = (form.get("csrf") or [""])[0] or request.headers.get("x-csrf-token", "")
        if not token or not hmac.compare_digest(token.encode(), session.csrf.encode()):
            return _refuse(console, request, 403, "The form's security token is missing or stale: reload the page.")
        if page.needs_analyst and not logged_in:
            return _refuse(console, request, 401, "Log in as an analyst to do this.")
    try:
        return await run_in_threadpool(page.handler, console, request, form)
    except (sa.exc.OperationalError, sa.exc.InterfaceError, StoreUnavailable) as exc:
        message = without_credentials(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, console.store)
        logger.warning("%s %s: the score store failed: %s", request.method, request.url.path, message)
        return console.render(
            request,
            "error.html",
            {"title": "The score store does not answer", "message": f"{console.store_name}: {message[:300]}"},
            status_code=503,
        )


def _refuse(console: Console, request: Request, status: int, message: str) -> Response:
    return console.render(request, "error.html", {"title": "Not allowed", "message": message}, status_code=status)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or (origin == "null" and request.headers.get("sec-fetch-site") == "same-origin"):
        return True
    host = request.headers.get("host", "")
    return urllib.parse.urlsplit(origin).netloc == host


def _template_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("payment_platform.console", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        {
            "utc": lambda v: "—" if v is None else v.strftime("%Y-%m-%d %H:%M:%S"),
            "hm": lambda v: "—" if v is None else v.strftime("%H:%M:%S"),
            "count": lambda v: "—" if v is None else f"{int(v):,}",
            "ms": _milliseconds,
            "score": lambda v: "—" if v is None else f"{v:.3f}",
            "money": lambda v: "—" if v is None else f"{v:,.2f}",
            "share": lambda v: "—" if v is None else f"{v:.1%}",
            "metric": lambda v: "—" if v is None else f"{v:.3f}" if isinstance(v, float) else f"{v:,}",
            "rate": lambda v: "—" if v is None else f"{v:,.1f}",
            "quote": lambda v: urllib.parse.quote(str(v), safe=""),
        }
    )
    return env


def _milliseconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 120_000:
        return f"{value / 60_000:,.1f} min"
    if value >= 10_000:
        return f"{value / 1000:,.1f} s"
    return f"{value:,.0f} ms"
