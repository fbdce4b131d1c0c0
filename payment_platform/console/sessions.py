"""Browser sessions in a signed cookie: who is logged in, and the CSRF token every write must echo.

Every visitor gets a session, logged in or not, so the login form itself carries a CSRF token. The cookie is
HMAC-SHA256 signed with the console's secret, HttpOnly and SameSite=Strict, and expires after MAX_AGE; a
login issues a new token, so a token seen before the login is worth nothing after it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import stat
import time
from dataclasses import dataclass, replace
from pathlib import Path

COOKIE_NAME = "payment_console"
MAX_AGE_S = 12 * 3600
SECRET_ENV = "PAYMENT_CONSOLE_SECRET"


@dataclass(frozen=True)
class Session:
    csrf: str
    analyst: str | None = None
    issued_at: int = 0

    @classmethod
    def new(cls) -> Session:
        return cls(csrf=secrets.token_urlsafe(24), issued_at=int(time.time()))

    def logged_in(self, analyst: str) -> Session:
        return replace(Session.new(), analyst=analyst)


class SessionSigner:
    def __init__(self, secret: bytes, max_age_s: int = MAX_AGE_S) -> None:
        if len(secret) < 32:
            raise ValueError("the session secret must have at least 32 bytes")
        self._key = hashlib.sha256(b"payment-console-session\0" + secret).digest()
        self.max_age_s = max_age_s

    def dumps(self, session: Session) -> str:
        payload = _b64(json.dumps({"c": session.csrf, "a": session.analyst, "t": session.issued_at}).encode())
        return f"{payload}.{_b64(self._mac(payload))}"

    def loads(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session of a cookie, or None when it is missing, altered or expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        payload, mac = cookie.split(".")
        try:
            if not hmac.compare_digest(_unb64(mac), self._mac(payload)):
                return None
            data = json.loads(_unb64(payload))
            session = Session(csrf=str(data["c"]), analyst=data["a"], issued_at=int(data["t"]))
        except (ValueError, KeyError, TypeError):
            return None
        if (now if now is not None else time.time()) - session.issued_at > self.max_age_s:
            return None
        return session

    def _mac(self, payload: str) -> bytes:
        return hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest()


def session_secret(home: Path, environ: dict[str, str] | None = None) -> bytes:
    """PAYMENT_CONSOLE_SECRET when set (every replica of a deployment must share it), otherwise a random key
    kept in $PAYMENT_HOME/console-secret (mode 0600), so that sessions outlive a restart."""
    env = os.environ if environ is None else environ
    configured = env.get(SECRET_ENV)
    if configured:
        if len(configured) < 32:
            raise ValueError(f"{SECRET_ENV} must have at least 32 characters")
        return configured.encode("utf-8")
    path = home / "console-secret"
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (FileNotFoundError, ValueError):
        home.mkdir(parents=True, exist_ok=True)
        key = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(key + "\n")
        return bytes.fromhex(key)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
