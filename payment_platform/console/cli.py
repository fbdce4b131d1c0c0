"""`payment-platform console`: serve the console, or hash a password for its accounts file."""

from __future__ import annotations

import socket
import sys

from payment_platform.console.accounts import AccountsFileError, read_new_password
from payment_platform.console.accounts import hash_password as hash_of
from payment_platform.console.config import ConsoleConfig
from payment_platform.settings import Settings
from payment_platform.store.database import StoreUnavailable


class ConsoleStartError(Exception):
    """The console cannot start for a reason the user can fix; one line."""


def run_console(host: str, port: int, settings: Settings, *, hash_password: bool = False) -> int:
    """Serve until interrupted (or print a password's hash); raises ConsoleStartError."""
    if hash_password:
        return _print_hash()
    from payment_platform.console.server import serve

    config = ConsoleConfig.from_env(host, port)
    _check_port_free(host, port)
    try:
        serve(settings, config)
    except (StoreUnavailable, AccountsFileError) as exc:
        raise ConsoleStartError(str(exc)) from None
    except ValueError as exc:  # a session secret that is too short
        raise ConsoleStartError(str(exc)) from None
    return 0


def _print_hash() -> int:
    try:
        password = read_new_password(sys.stdin)
    except ValueError as exc:
        raise ConsoleStartError(str(exc)) from None
    print(hash_of(password))
    return 0


def _check_port_free(host: str, port: int) -> None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConsoleStartError(f"cannot bind {host}: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConsoleStartError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
