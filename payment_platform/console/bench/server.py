"""The console under test: the real `payment-platform console` in a process of its own, its broker, and
just enough HTTP client to time it (one GET to its last byte, and a logged-in session for the write path).
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from payment_platform.kafka.clients import ensure_topics
from payment_platform.kafka.embedded_broker import start_embedded_broker, stop_embedded_broker


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def broker(work: Path, bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    port = free_port()
    process = start_embedded_broker(port=port, log_path=work / "broker.log")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop_embedded_broker(process)


@contextmanager
def console_process(url: str, home: Path, port: int, bootstrap: str, users: Path, labels_topic: str) -> Iterator[None]:
    ensure_topics(bootstrap, [labels_topic])
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PAYMENT_HOME": str(home),
        "PAYMENT_DB_URL": url,
        "PAYMENT_KAFKA_BOOTSTRAP": bootstrap,
        "PAYMENT_LABELS_TOPIC": labels_topic,
        "PAYMENT_CONSOLE_USERS_FILE": str(users),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "payment_platform.cli", "console", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(home / "console.log", "ab"),  # noqa: SIM115 - owned by the child
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if get(port, "/login")[0] == 200:
                    break
            except OSError:
                time.sleep(0.3)
        else:
            raise RuntimeError(f"the console did not answer on port {port}; see {home / 'console.log'}")
        yield
    finally:
        process.terminate()
        process.wait(30)


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, int, float, float]:
    """(status, body bytes, seconds to first byte, seconds to the end) of one GET."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    first = None
    size = 0
    while True:
        chunk = response.read1(65536)
        if first is None:
            first = time.perf_counter() - started
        if not chunk:
            break
        size += len(chunk)
    total = time.perf_counter() - started
    connection.close()
    return response.status, size, first or total, total


class Browser:
    """Just enough of a browser for the write path: the session cookie and the CSRF token of the last page."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookie = ""
        self.csrf = ""

    def get(self, path: str) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        connection.request("GET", path, headers={"Cookie": self.cookie} if self.cookie else {})
        response = connection.getresponse()
        body = response.read().decode("utf-8", errors="replace")
        self._remember(response)
        marker = 'name="csrf" value="'
        if marker in body:
            self.csrf = body.split(marker, 1)[1].split('"', 1)[0]
        return response.status

    def post(self, path: str, form: dict[str, object]) -> int:
        body = urllib.parse.urlencode({**form, "csrf": self.csrf}, doseq=True)
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        connection.request(
            "POST",
            path,
            body=body,
            headers={"Cookie": self.cookie, "Content-Type": "application/x-www-form-urlencoded"},
        )
        response = connection.getresponse()
        response.read()
        self._remember(response)
        location = response.getheader("Location")
        if response.status == 303 and location:
            self.get(location)
        return response.status

    def _remember(self, response: http.client.HTTPResponse) -> None:
        cookie = response.getheader("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";", 1)[0]
