"""The pages' request parameters: text checked against whitelists and ranges before anything uses it.

Nothing of a parameter reaches SQL but as a bound value; a value out of range falls back to its default.
"""

from __future__ import annotations

from starlette.requests import Request

from payment_platform.console.web import Form

MAX_ID_LENGTH = 64


def arg(request: Request, name: str, default: str = "") -> str:
    return request.query_params.get(name, default).strip()


def field(form: Form, name: str, default: str = "") -> str:
    return (form.get(name) or [default])[0]


def int_arg(request: Request, name: str, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(arg(request, name, str(default))), low), high)
    except ValueError:
        return default


def float_arg(request: Request, name: str, default: float, low: float, high: float) -> float:
    try:
        value = float(arg(request, name, str(default)))
    except ValueError:
        return default
    return min(max(value, low), high) if value == value else default  # NaN: default


def card_id(text: str) -> str | None:
    """A customer_id as given (ids are compared byte for byte: no trimming), or None when it cannot be one."""
    return text if 0 < len(text) <= MAX_ID_LENGTH else None


def id_arg(request: Request, name: str) -> str | None:
    return card_id(request.query_params.get(name, ""))


def chart_minutes(minutes: list[int]) -> list[int]:
    """Epoch seconds of chart points (uPlot's time axis)."""
    return [m * 60 for m in minutes]
