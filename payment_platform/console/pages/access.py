"""The login and logout pages: an analyst's name and password checked against the accounts file.

Failed logins are throttled per name and per address, and the page a login returns to is only ever a path
of this site (no open redirect).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from payment_platform.console.accounts import ANALYST_NAME
from payment_platform.console.pages.params import arg, field
from payment_platform.console.sessions import Session
from payment_platform.console.web import Console, Form


def login_form(
    console: Console, request: Request, form: Form, *, error: str | None = None, status: int = 200
) -> Response:
    return console.render(
        request,
        "login.html",
        {"nav": "login", "error": error, "next": _safe_next(arg(request, "next") or field(form, "next"))},
        status_code=status,
    )


def login(console: Console, request: Request, form: Form) -> Response:
    name, password = field(form, "name").strip(), field(form, "password")
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
    return RedirectResponse(_safe_next(field(form, "next")), status_code=303)


def logout(console: Console, request: Request, form: Form) -> Response:
    request.state.session = Session.new()
    return RedirectResponse("/", status_code=303)


def _safe_next(target: str) -> str:
    """Only a path of this site (never //host or a scheme): no open redirect after login."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"
