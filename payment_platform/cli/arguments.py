"""What every command shares: the one-line failure, and the argument types that reject bad input early."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from typing import Any

from payment_platform.settings import Settings

# A command: the parsed arguments and the settings in, the exit code out.
Command = Callable[[argparse.Namespace, Settings], int]
Subcommands = Any  # argparse's _SubParsersAction, private in the standard library


class CommandError(Exception):
    """A failure the user can fix; its text is printed as one line."""


def service_error(exc: Exception) -> CommandError:
    """A service's exception as a CommandError of its first line."""
    return CommandError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def positive_rate(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of payments per second or 'max', got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("the rate must be positive")
    return value


def _whole_number(text: str, least: int, why: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(why)
    return value


def positive_int(text: str) -> int:
    return _whole_number(text, 1, "must be positive")


def non_negative_int(text: str) -> int:
    return _whole_number(text, 0, "must not be negative")


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None
