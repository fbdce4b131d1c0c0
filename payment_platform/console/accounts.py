"""Analyst accounts: `name:hash` lines in a file named by PAYMENT_CONSOLE_USERS_FILE, scrypt hashes.

scrypt (RFC 7914, in Python's hashlib) is memory-hard: a leaked accounts file costs an attacker 16 MiB and
tens of milliseconds per guess. The file is read again when it changes, so adding an analyst needs no
restart. Names become the label source `analyst:<name>`, hence their restricted alphabet.
"""

from __future__ import annotations

import base64
import functools
import getpass
import hashlib
import hmac
import logging
import os
import re
import secrets
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

logger = logging.getLogger(__name__)

ANALYST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
SCHEME = "scrypt"
_N, _R, _P, _LENGTH = 2**14, 8, 1, 32
_MAX_N = 2**20  # refuse parameters that would let a tampered file exhaust memory
_MAXMEM = 128 * 1024 * 1024


class AccountsFileError(ValueError):
    """The accounts file cannot be used (missing, unreadable or malformed); says which line."""


def hash_password(password: str, *, n: int = _N) -> str:
    """`scrypt$N$r$p$salt$hash` (base64), for a line `name:<this>` of the accounts file."""
    if not password:
        raise ValueError("the password is empty")
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=_R, p=_P, dklen=_LENGTH, maxmem=_MAXMEM)
    return "$".join([SCHEME, str(n), str(_R), str(_P), _b64(salt), _b64(digest)])


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt, expected = encoded.split("$")
        n_, r_, p_ = int(n), int(r), int(p)
        if scheme != SCHEME or not (1 < n_ <= _MAX_N) or not (0 < r_ <= 32) or not (0 < p_ <= 16):
            return False
        digest = hashlib.scrypt(
            password.encode("utf-8"),
            salt=_unb64(salt),
            n=n_,
            r=r_,
            p=p_,
            dklen=len(_unb64(expected)),
            maxmem=_MAXMEM,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, _unb64(expected))


@functools.cache
def _dummy_hash() -> str:
    """Checked against for unknown names, so that they cost as much as known ones."""
    return hash_password("not an account")


@dataclass(frozen=True)
class _Loaded:
    mtime_ns: int
    hashes: dict[str, str]


class Accounts:
    """The analysts who may log in; an empty set when no file is configured (reading only)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._loaded = _Loaded(-1, {})
        self._lock = threading.Lock()
        if path is not None:
            self._reload()

    @property
    def configured(self) -> bool:
        return self.path is not None

    def names(self) -> list[str]:
        return sorted(self._current())

    def verify(self, name: str, password: str) -> bool:
        """Whether the name and password match an account; as slow for unknown names as for known ones."""
        encoded = self._current().get(name)
        matches = verify_password(password, encoded or _dummy_hash())
        return encoded is not None and matches

    def _current(self) -> dict[str, str]:
        if self.path is None:
            return {}
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError:
            return self._loaded.hashes
        if mtime != self._loaded.mtime_ns:
            try:
                self._reload()
            except AccountsFileError as exc:
                logger.error("keeping the previous analyst accounts: %s", exc)
        return self._loaded.hashes

    def _reload(self) -> None:
        assert self.path is not None
        with self._lock:
            try:
                mtime = self.path.stat().st_mtime_ns
                text = self.path.read_text(encoding="utf-8")
            except OSError as exc:
                raise AccountsFileError(f"cannot read the accounts file {self.path}: {exc.strerror}") from None
            self._loaded = _Loaded(mtime, parse_accounts(text, str(self.path)))


def parse_accounts(text: str, where: str = "accounts") -> dict[str, str]:
    """`name:hash` lines; blank lines and lines starting with # are skipped."""
    hashes: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, encoded = line.partition(":")
        if not sep or not ANALYST_NAME.fullmatch(name):
            raise AccountsFileError(f"{where}:{number}: expected name:hash with a name of letters, digits, . _ -")
        if not encoded.startswith(SCHEME + "$") or encoded.count("$") != 5:
            raise AccountsFileError(
                f"{where}:{number}: the hash is not a scrypt hash (make one with `payment-platform console "
                "--hash-password`)"
            )
        hashes[name] = encoded
    return hashes


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def read_new_password(stdin: TextIO) -> str:
    """A password typed twice at a terminal, or the first line of piped input (for scripts)."""
    if stdin.isatty():
        first = getpass.getpass("password for the analyst: ")
        if first != getpass.getpass("again: "):
            raise ValueError("the two passwords differ")
        password = first
    else:
        password = stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        raise ValueError("use a password of at least 8 characters")
    return password


DEV_ANALYST = "analyst"


def ensure_dev_account(home: Path) -> tuple[Path, Path]:
    """For `payment-platform dev`: an accounts file with one analyst whose random password is in a file
    only its owner can read (it is never printed). Returns (accounts file, password file)."""
    users, secret = home / "console-users", home / "console-analyst-password"
    if not (users.exists() and secret.exists()):
        home.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(12)
        for path, text in ((secret, password + "\n"), (users, f"{DEV_ANALYST}:{hash_password(password)}\n")):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
    return users, secret
