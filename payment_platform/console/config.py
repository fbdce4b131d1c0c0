"""The console's own settings: where it listens, who may log in, and how often pages refresh."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

USERS_FILE_ENV = "PAYMENT_CONSOLE_USERS_FILE"
DEFAULT_PORT = 8050
DEFAULT_HOST = "127.0.0.1"
REFRESH_CHOICES_S = (5, 10, 30, 60)


@dataclass(frozen=True)
class ConsoleConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    users_file: Path | None = None
    refresh_s: int = 10

    @property
    def open_reading(self) -> bool:
        """Pages readable without a login: only when bound to a loopback address, as the Dagster UI is."""
        return is_loopback(self.host)

    @classmethod
    def from_env(cls, host: str, port: int, environ: Mapping[str, str] | None = None) -> ConsoleConfig:
        env = os.environ if environ is None else environ
        users = env.get(USERS_FILE_ENV)
        return cls(host=host, port=port, users_file=Path(users).expanduser() if users else None)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False
