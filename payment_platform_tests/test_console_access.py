"""Who may read and write in the console, over real HTTP: open reading on loopback only, logins with hashed
passwords, CSRF on every write, no credential in any page, and the `console` command's own promises."""

from __future__ import annotations

import datetime as dt
import http.client
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
import uvicorn

from payment_platform.console.accounts import (
    Accounts,
    AccountsFileError,
    hash_password,
    parse_accounts,
    verify_password,
)
from payment_platform.console.config import ConsoleConfig
from payment_platform.console.models import ModelCatalog
from payment_platform.console.pages import PAGES
from payment_platform.console.rollup import Rollup
from payment_platform.console.sample_rows import SCORED_COLUMNS, sample_rows
from payment_platform.console.sessions import Session, SessionSigner
from payment_platform.console.store import open_console_store
from payment_platform.console.web import Console, build_app
from payment_platform.settings import redact_url
from payment_platform.store.tables import scored_transactions
from payment_platform_tests.conftest import free_port, wait_until

PASSWORD = "pw'\\\"%s;--@:/?#`$(x)"  # the database password: must never be seen
PAGE_PATHS = ["/", "/?window=1440", "/risk", "/queue", "/card", "/export", "/health", "/login"]


class NoLabels:
    def publish(self, labels: object) -> None:
        raise AssertionError("no verdict is given in these tests")


@dataclass
class Client:
    """A cookie jar and the last CSRF token seen: enough of a browser to test the rules."""

    port: int
    cookie: str = ""
    csrf: str = ""
    last_body: str = field(default="", repr=False)

    def request(self, method: str, path: str, form: dict[str, str] | None = None, **headers: str):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        body = urllib.parse.urlencode(form) if form is not None else None
        sent = {"Cookie": self.cookie} if self.cookie else {}
        if body is not None:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        sent.update({k.replace("_", "-"): v for k, v in headers.items()})
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        self.last_body = response.read().decode("utf-8", errors="replace")
        cookie = response.getheader("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";", 1)[0]
        found = re.search(r'name="csrf" value="([^"]+)"', self.last_body)
        if found:
            self.csrf = found.group(1)
        return response

    def login(self, name: str, password: str):
        """Log in and load the page it leads to (a login issues a new CSRF token)."""
        self.request("GET", "/login")
        response = self.request(
            "POST", "/login", {"csrf": self.csrf, "name": name, "password": password, "next": "/queue"}
        )
        if response.status == 303:
            self.request("GET", response.getheader("Location"))
        return response


@dataclass
class RunningConsole:
    port: int
    db_url: str
    server: uvicorn.Server


def serve(console: Console) -> tuple[uvicorn.Server, threading.Thread, int]:
    port = free_port()
    config = uvicorn.Config(build_app(console, PAGES), host=console.config.host, port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_until(lambda: server.started, 20), "the console did not start"
    return server, thread, port


@pytest.fixture(scope="module")
def secret_store(mysql_server_url: str) -> Iterator[str]:
    """A MariaDB database reached by a user whose password has every awkward character; folded rows in it."""
    suffix = uuid.uuid4().hex[:10]
    name, user = f"pp_console_acl_{suffix}", f"pp_console_{suffix}"
    admin = sa.create_engine(mysql_server_url)
    try:
        with admin.begin() as conn:
            conn.execute(sa.schema.CreateSchema(name))
            conn.execute(sa.text("CREATE USER :user@'%' IDENTIFIED BY :password"), {"user": user, "password": PASSWORD})
            grant = sa.text(f"GRANT ALL PRIVILEGES ON `{name}`.* TO :user@'%'")  # a database name made from uuid4
            conn.execute(grant, {"user": user})
        server = sa.make_url(mysql_server_url)
        url = sa.URL.create("mysql+pymysql", user, PASSWORD, server.host, server.port, name).render_as_string(False)
        store = open_console_store(url)
        rows = sample_rows(800, end=dt.datetime.now(dt.UTC).replace(tzinfo=None), span=dt.timedelta(hours=2), seed=11)
        with store.writer.begin() as conn:
            conn.execute(scored_transactions.insert(), rows[SCORED_COLUMNS].to_dict("records"))
        Rollup(store.writer).catch_up()
        store.dispose()
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(sa.schema.DropSchema(name, if_exists=True))
            conn.execute(sa.text("DROP USER IF EXISTS :user@'%'"), {"user": user})
        admin.dispose()


@pytest.fixture(scope="module")
def accounts_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("accounts") / "users"
    path.write_text(f"# analysts\nalice:{hash_password('alice-secret-1')}\n", encoding="utf-8")
    return path


def running(host: str, url: str, accounts: Path) -> Iterator[RunningConsole]:
    store = open_console_store(url)
    console = Console(
        config=ConsoleConfig(host=host, port=0, users_file=accounts),
        store=store,
        models=ModelCatalog(Path("/nonexistent-registry")),
        labels=NoLabels(),
        accounts=Accounts(accounts),
        signer=SessionSigner(os.urandom(32)),
        store_name=redact_url(url),
        labels_topic="payment-labels",
    )
    server, thread, port = serve(console)
    try:
        yield RunningConsole(port, url, server)
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def on_loopback(secret_store: str, accounts_file: Path) -> Iterator[RunningConsole]:
    yield from running("127.0.0.1", secret_store, accounts_file)


@pytest.fixture(scope="module")
def on_all_addresses(secret_store: str, accounts_file: Path) -> Iterator[RunningConsole]:
    yield from running("0.0.0.0", secret_store, accounts_file)


# --- reading ---------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_on_loopback_every_page_reads_without_a_login_and_shows_no_credential(on_loopback: RunningConsole) -> None:
    client = Client(on_loopback.port)
    for path in PAGE_PATHS:
        response = client.request("GET", path)
        assert response.status == 200, path
        assert "script-src 'self'" in response.getheader("Content-Security-Policy", "")
        for secret in secret_forms(PASSWORD):
            assert secret not in client.last_body, path
    client.request("GET", "/health")
    assert redact_url(on_loopback.db_url) in client.last_body  # the store is named, its password masked


@pytest.mark.integration
def test_on_any_other_address_every_page_needs_a_login(on_all_addresses: RunningConsole) -> None:
    client = Client(on_all_addresses.port)
    for path in [*PAGE_PATHS[:-1], "/export.csv?limit=5", "/case?card=x"]:
        response = client.request("GET", path)
        assert response.status == 303, path
        assert response.getheader("Location").startswith("/login?next=")
    assert client.request("GET", "/static/console.js").status == 200  # the page's own code is no secret
    assert client.login("alice", "wrong password").status == 401
    assert client.login("alice", "alice-secret-1").status == 303
    for path in PAGE_PATHS:
        assert client.request("GET", path).status == 200, path
    client.request("POST", "/logout", {"csrf": client.csrf})
    assert client.request("GET", "/").status == 303


# --- writing ---------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_write_needs_the_csrf_token_a_same_origin_form_and_an_analyst(on_loopback: RunningConsole) -> None:
    client = Client(on_loopback.port)
    client.request("GET", "/login")  # an anonymous session and its token
    assert client.request("POST", "/case/take", {"card": "C1"}).status == 403  # no token
    assert client.request("POST", "/case/take", {"card": "C1", "csrf": "forged"}).status == 403
    assert client.request("POST", "/case/take", {"card": "C1", "csrf": client.csrf}).status == 401  # not logged in
    client.login("alice", "alice-secret-1")
    token = client.csrf
    evil = client.request("POST", "/case/take", {"card": "C1", "csrf": token}, Origin="http://evil.example")
    assert evil.status == 403
    taken = client.request("POST", "/case/take", {"card": "C1", "csrf": token}, X_CSRF_Token=token)
    assert taken.status == 303 and taken.getheader("Location") == "/case?card=C1"
    stranger = Client(on_loopback.port)
    stranger.request("GET", "/login")
    login_without_token = stranger.request("POST", "/login", {"name": "alice", "password": "alice-secret-1"})
    assert login_without_token.status == 403


@pytest.mark.integration
def test_a_login_never_redirects_off_site_and_repeated_failures_lock_the_name(on_loopback: RunningConsole) -> None:
    client = Client(on_loopback.port)
    client.request("GET", "/login")
    response = client.request(
        "POST",
        "/login",
        {"csrf": client.csrf, "name": "alice", "password": "alice-secret-1", "next": "//evil.example/"},
    )
    assert response.status == 303 and response.getheader("Location") == "/"
    attacker = Client(on_loopback.port)
    statuses = [attacker.login("ghost", f"guess {i}").status for i in range(6)]
    assert statuses == [401] * 5 + [429]


# --- accounts and sessions ---------------------------------------------------------------------------------


def test_passwords_are_stored_as_scrypt_hashes() -> None:
    encoded = hash_password("correct horse")
    assert encoded.startswith("scrypt$16384$8$1$") and "correct horse" not in encoded
    assert verify_password("correct horse", encoded)
    assert not verify_password("correct hors", encoded)
    assert hash_password("correct horse") != encoded  # salted
    assert not verify_password("x", "scrypt$1099511627776$8$1$AA==$AA==")  # a tampered cost is refused


def test_the_accounts_file_says_which_line_is_wrong_and_is_read_again_when_it_changes(tmp_path: Path) -> None:
    with pytest.raises(AccountsFileError, match=":2:"):
        parse_accounts("# ok\nalice:plaintext\n")
    with pytest.raises(AccountsFileError, match=":1:"):
        parse_accounts("no separator here\n")
    path = tmp_path / "users"
    path.write_text(f"alice:{hash_password('one-password')}\n")
    accounts = Accounts(path)
    assert accounts.verify("alice", "one-password") and not accounts.verify("bob", "two-password")
    time.sleep(0.01)
    path.write_text(f"alice:{hash_password('one-password')}\nbob:{hash_password('two-password')}\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert accounts.verify("bob", "two-password")


def test_a_session_cookie_cannot_be_altered_or_kept_forever() -> None:
    signer = SessionSigner(b"k" * 32, max_age_s=60)
    cookie = signer.dumps(Session.new().logged_in("alice"))
    assert signer.loads(cookie).analyst == "alice"
    _, mac = cookie.split(".")
    forged = SessionSigner(b"x" * 32).dumps(Session.new().logged_in("mallory"))
    assert signer.loads(forged) is None
    assert signer.loads(forged.split(".")[0] + "." + mac) is None
    assert signer.loads(cookie, now=time.time() + 61) is None


# --- the command -------------------------------------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str], stdin: str | None = None, timeout: float = 60):
    return subprocess.run(
        [sys.executable, "-m", "payment_platform.cli", *args],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_command_hashes_a_piped_password(tmp_path: Path) -> None:
    result = run_cli("console", "--hash-password", env={"PAYMENT_HOME": str(tmp_path)}, stdin="a long password\n")
    assert result.returncode == 0, result.stderr
    assert verify_password("a long password", result.stdout.strip())
    short = run_cli("console", "--hash-password", env={"PAYMENT_HOME": str(tmp_path)}, stdin="short\n")
    assert short.returncode == 1 and "at least 8 characters" in short.stderr


def test_the_command_fails_in_one_line_without_the_password(tmp_path: Path) -> None:
    url = sa.URL.create("mysql+pymysql", "nobody", PASSWORD, "127.0.0.1", 1, "payments").render_as_string(False)
    env = {"PAYMENT_HOME": str(tmp_path), "PAYMENT_DB_URL": url}
    helped = run_cli("console", "--help", env=env)
    assert helped.returncode == 0 and "--port" in helped.stdout and "--host" in helped.stdout
    failed = run_cli("console", "--port", str(free_port()), env=env)
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1].startswith("payment-platform console: cannot use the score store")
    for secret in secret_forms(PASSWORD):
        assert secret not in failed.stdout + failed.stderr + helped.stdout
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = run_cli("console", "--port", str(busy.getsockname()[1]), env={"PAYMENT_HOME": str(tmp_path)})
    assert taken.returncode == 1 and "cannot listen on 127.0.0.1" in taken.stderr


def secret_forms(password: str) -> list[str]:
    return [password, urllib.parse.quote(password, safe=""), urllib.parse.quote_plus(password)]


def test_the_compose_stack_serves_the_console_behind_a_login() -> None:
    import yaml

    root = Path(__file__).resolve().parents[1]
    service = yaml.safe_load((root / "docker-compose.yml").read_text())["services"]["console"]
    command = service["command"]
    assert command[:2] == ["payment-platform", "console"]
    assert command[command.index("--host") + 1] == "0.0.0.0"  # not loopback: every page needs a login
    assert service["ports"] == ["127.0.0.1:8050:8050"]
    environment = service["environment"]
    assert environment["PAYMENT_DB_URL"].split("://", 1)[1].startswith("${PAYMENT_CONSOLE_DB_USER:-console}:")
    users_mount = next(v for v in service["volumes"] if v.endswith(":/etc/payment-console/users:ro"))
    assert users_mount.startswith("${PAYMENT_CONSOLE_USERS_FILE:?")
    assert environment["PAYMENT_CONSOLE_USERS_FILE"] == "/etc/payment-console/users"
    assert "healthcheck" in service and set(service["depends_on"]) == {"mysql", "kafka"}
