"""Security: SQL injection, secrets in output, least privilege, dependency bounds, model integrity.

The end-to-end test runs the real `payment-platform score` command, as the least-privilege user the
MySQL init script creates, over injection strings in every text field; the others are static checks
of the source and the deployment files, and checks of the model registry's refusals.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import io
import json
import logging
import os
import pickle
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
import skops.io
import sqlalchemy as sa
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from packaging.requirements import Requirement

from payment_platform.kafka.clients import ensure_topics, payment_producer
from payment_platform.model import ModelRegistry
from payment_platform.model.registry import MODEL_FILE, InvalidModelVersionError, ModelIntegrityError
from payment_platform.settings import redact_text, redact_url
from payment_platform.stream.config import ScorerConfig
from payment_platform.stream.model_source import ModelSource
from payment_platform.stream.runner import build_scorer
from payment_platform_tests.conftest import scorer_cli_env, wait_until
from payment_platform_tests.test_hostile_input import (
    MISSING,
    Case,
    assert_corpus_outcome,
    naive_utc,
    payment_value,
    run_corpus,
    small_model_dir,
    stored_payment,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "payment_platform"
MYSQL_INIT_SCRIPT = REPO_ROOT / "deploy" / "mysql-init" / "01-databases.sh"
PASSWORD = "pw'\\\"%s;--@:/?#`$(x)"

INJECTIONS = [
    "'",
    "''",
    "\\",
    "\\'",
    "\x00",
    "%s",
    "%(x)s",
    ":x",
    "?",
    "' OR 1=1 --",
    "'); DROP TABLE x; --",
    '"; DROP TABLE x; --',
    "`x`; DROP TABLE x; #",
    "/* */ UNION SELECT 1 --",
    "\\'; DROP TABLE x; -- \x00 %s",
]


# --- SQL injection through the real scorer -------------------------------------------------------


@pytest.fixture()
def scorer_account(mysql_server_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A score store database and its user, created by the deployment's own MySQL init script."""
    suffix = uuid.uuid4().hex[:10]
    names = {
        "PAYMENT_DB_NAME": f"pp_sec_{suffix}",
        "PAYMENT_DB_USER": f"pp_sec_{suffix}",
        "PAYMENT_DB_PASSWORD": PASSWORD,
        "DAGSTER_MYSQL_DB": f"pp_sec_{suffix}_dagster",
        "DAGSTER_MYSQL_USER": f"pp_secd_{suffix}",
        "DAGSTER_MYSQL_PASSWORD": "unused-here",
        "PAYMENT_CONSOLE_DB_USER": f"pp_secc_{suffix}",
        "PAYMENT_CONSOLE_DB_PASSWORD": "unused-here-too",
    }
    captured = tmp_path / "init.sql"
    shim = f'set -eo pipefail; docker_process_sql() {{ cat > "{captured}"; }}; . "{MYSQL_INIT_SCRIPT}"'
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **names}
    subprocess.run(["bash", "-c", shim], env=env, check=True, capture_output=True, timeout=60)
    admin = sa.make_url(mysql_server_url)
    connect = {"host": admin.host or "127.0.0.1", "port": admin.port or 3306, "user": admin.username or "root"}
    flags = pymysql.constants.CLIENT.MULTI_STATEMENTS
    with (
        pymysql.connect(**connect, password=admin.password or "", client_flag=flags, autocommit=True) as conn,
        conn.cursor() as cur,
    ):
        cur.execute(captured.read_text())
        while cur.nextset():
            pass
    try:
        yield names
    finally:
        with pymysql.connect(**connect, password=admin.password or "", autocommit=True) as conn, conn.cursor() as cur:
            for db in (names["PAYMENT_DB_NAME"], names["DAGSTER_MYSQL_DB"]):
                cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
            for user in (names["PAYMENT_DB_USER"], names["DAGSTER_MYSQL_USER"], names["PAYMENT_CONSOLE_DB_USER"]):
                cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")


def injection_corpus() -> list[Case]:
    """Each injection string in every text field of payments and labels."""
    label_time = "2026-02-01T08:30:00Z"
    cases: list[Case] = []
    for i, text in enumerate(INJECTIONS):
        tx = f"{i}{text}"
        cases.append(
            Case(
                "payment",
                payment_value(transaction_id=tx, customer_id=text, terminal_id=text),
                row=stored_payment(tx, text, terminal_id=text),
            )
        )
        labelled = {"transaction_id": text, "is_fraud": i % 2, "labelled_at": label_time}
        cases.append(
            Case(
                "label",
                json.dumps(labelled).encode(),
                row={"transaction_id": text, "is_fraud": bool(i % 2), "labelled_at": naive_utc(label_time)},
            )
        )
        # Fields with a format: an injection string breaks it and goes to the DLQ.
        cases.append(Case("payment", payment_value(transaction_id=f"c{i}", currency=text), "currency must be"))
        cases.append(Case("payment", payment_value(transaction_id=f"t{i}", timestamp=text), "timestamp is not"))
        bad_label = {"transaction_id": f"l{i}", "is_fraud": True, "labelled_at": text}
        cases.append(Case("label", json.dumps(bad_label).encode(), "labelled_at is not ISO-8601"))
    cases.append(Case("payment", payment_value(transaction_id=MISSING, customer_id=INJECTIONS[-1]), "required"))
    return cases


def secret_forms(password: str) -> list[str]:
    """The password as written, and as it appears percent-encoded in a URL."""
    return [password, urllib.parse.quote(password, safe=""), urllib.parse.quote_plus(password)]


@pytest.mark.integration
def test_injection_strings_are_stored_verbatim_by_the_least_privilege_scorer(
    kafka_bootstrap: str,
    mysql_server_url: str,
    scorer_account: dict[str, str],
    topic_names: dict[str, str],
    tmp_path: Path,
) -> None:
    database = scorer_account["PAYMENT_DB_NAME"]
    admin_url = sa.make_url(mysql_server_url).set(database=database).render_as_string(hide_password=False)
    scorer_url = sa.URL.create(
        "mysql+pymysql",
        username=scorer_account["PAYMENT_DB_USER"],
        password=scorer_account["PAYMENT_DB_PASSWORD"],
        host=sa.make_url(mysql_server_url).host,
        port=sa.make_url(mysql_server_url).port,
        database=database,
        query={"charset": "utf8mb4"},
    ).render_as_string(hide_password=False)
    admin = sa.create_engine(admin_url)
    with admin.begin() as conn:
        conn.execute(sa.text("CREATE TABLE x (id INT PRIMARY KEY)"))  # what the injections try to drop
        conn.execute(sa.text("INSERT INTO x VALUES (1)"))
    small_model_dir(tmp_path / "home" / "models")
    outputs: list[str] = []

    def score_with_the_cli(setup: ScorerConfig) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PAYMENT_HOME": str(tmp_path / "home"),
            "PAYMENT_KAFKA_BOOTSTRAP": setup.bootstrap,
            "PAYMENT_DB_URL": scorer_url,
            "PAYMENT_CONSUMER_GROUP": setup.consumer_group,
            "PAYMENT_TOPIC": setup.payment_topic,
            "PAYMENT_LABELS_TOPIC": setup.labels_topic,
            "PAYMENT_DLQ_TOPIC": setup.dlq_topic,
            "PAYMENT_DECISIONS_TOPIC": setup.decisions_topic,
        }
        command = [sys.executable, "-m", "payment_platform.cli", "--verbose", "score", "--idle-timeout-s", "3"]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
        outputs.append(result.stdout + result.stderr)
        assert result.returncode == 0, result.stderr[-3000:]

    cases = injection_corpus()
    run = run_corpus(cases, kafka_bootstrap, topic_names, admin_url, tmp_path, score=score_with_the_cli)

    assert run.other_rows.pop("x") == 1  # the canary table survived every injection
    assert_corpus_outcome(cases, run, topic_names)
    with admin.connect() as conn:
        assert conn.execute(sa.text("SELECT id FROM x")).scalars().all() == [1]
        tables = set(sa.inspect(conn).get_table_names())
    admin.dispose()
    assert {"x", "scored_transactions", "transaction_labels"} <= tables
    for secret in secret_forms(PASSWORD):
        assert secret not in outputs[0]
    assert "scored" in outputs[0]  # the command ran and reported


# --- SQL is never built from values ---------------------------------------------------------------

SQL_CALLS = {"text", "execute", "executemany", "exec_driver_sql"}
# Reviewed places where SQL text is assembled, keyed by file and enclosing function.
REVIEWED_SQL = {
    ("payment_platform/bench/environment.py", "database"): (
        "a database name made from uuid4: identifiers cannot be bound"
    ),
}
_CONSTANT_NAME = re.compile(r"_?[A-Z][A-Z0-9_]*|len|str")


def constant_expression(node: ast.expr, tables: set[str]) -> bool:
    """Only UPPER_CASE constants, literals, `.join` of them and the `.name` of a contract table."""
    for inner in ast.walk(node):
        if isinstance(inner, ast.Name) and not (_CONSTANT_NAME.fullmatch(inner.id) or inner.id in tables):
            return False
        if isinstance(inner, ast.Attribute) and inner.attr not in ("join", "name"):
            return False
    return True


def built_from_values(node: ast.expr, assignments: dict[str, list[ast.expr]], tables: set[str]) -> bool:
    """SQL text formatted from anything but constants: f-string, %, +, .format(), or a name bound to one."""
    if isinstance(node, ast.JoinedStr):
        values = [v.value for v in node.values if isinstance(v, ast.FormattedValue)]
        return not all(constant_expression(value, tables) for value in values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return True
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return True
    if isinstance(node, ast.Name):
        return any(built_from_values(value, {}, tables) for value in assignments.get(node.id, []))
    return False


def formatted_sql(path: Path) -> list[tuple[str, int, str]]:
    """(enclosing function, line, call) of each SQL call in a file whose statement is built from values."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assignments: dict[str, list[ast.expr]] = {}
    tables = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "payment_platform.store.tables":
            tables |= {alias.asname or alias.name for alias in node.names}
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    assignments.setdefault(target.id, []).append(node.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            assignments.setdefault(node.target.id, []).append(node.value)
    found = []
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        if name in SQL_CALLS and built_from_values(node.args[0], assignments, tables):
            owners = [f for f in functions if f.lineno <= node.lineno <= (f.end_lineno or f.lineno)]
            owner = max(owners, key=lambda f: f.lineno).name if owners else "<module>"
            found.append((owner, node.lineno, ast.unparse(node)[:120]))
    return sorted(found, key=lambda site: site[1])


def test_the_checker_recognises_sql_built_from_values(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "import sqlalchemy as sa\n"
        "from payment_platform.store.tables import scored_transactions\n"
        "COLUMNS = 'a, b'\n"
        "QUERY = f'SELECT {COLUMNS} FROM {scored_transactions.name} WHERE a = %s'\n"
        "def bad(conn, cur, v):\n"
        "    conn.execute(sa.text(f\"SELECT * FROM t WHERE a = '{v}'\"))\n"
        "    cur.execute('SELECT * FROM t WHERE a = %s' % v)\n"
        "    cur.execute('SELECT * FROM t WHERE a = ' + v)\n"
        "    conn.exec_driver_sql('SELECT {}'.format(v))\n"
        "    statement = f'DELETE FROM t WHERE a = {v}'\n"
        "    cur.execute(statement)\n"
        "def good(conn, cur, v):\n"
        "    conn.execute(sa.text('SELECT * FROM t WHERE a = :v'), {'v': v})\n"
        "    cur.execute('SELECT * FROM t WHERE a = %s', (v,))\n"
        "    cur.execute(QUERY, (v,))\n"
    )
    assert [(owner, line) for owner, line, _ in formatted_sql(source)] == [("bad", n) for n in (6, 7, 8, 9, 11)]


def test_no_sql_is_formatted_from_values_in_the_package() -> None:
    unreviewed = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(REPO_ROOT).as_posix()
        for owner, line, call in formatted_sql(path):
            if (relative, owner) not in REVIEWED_SQL:
                unreviewed.append(f"{relative}:{line} in {owner}: {call}")
    assert not unreviewed, "SQL built from values; bind parameters instead:\n" + "\n".join(unreviewed)


# --- no password in output --------------------------------------------------------------------------

COMMANDS = ("broker", "produce", "replay", "train", "score", "dev")


def run_cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "payment_platform.cli", *args],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_redact_url_masks_every_form_of_the_password() -> None:
    url = sa.URL.create("mysql+pymysql", "scorer", PASSWORD, "db", 3306, "payments").render_as_string(False)
    shown = redact_url(url)
    assert shown == "mysql+pymysql://scorer:***@db:3306/payments"
    for secret in secret_forms(PASSWORD):
        assert secret not in shown
    assert redact_url(f"not a url {PASSWORD}") == "<unparseable database URL>"


TOKEN = "aB3dE5gH7jK9mN1pQ3rS5tU7vW9"  # what a generated key looks like
HEX_KEY = "0123456789abcdef0123456789abcdef"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzY29yZXIifQ.c2lnbmF0dXJl"
ENCODED = urllib.parse.quote(PASSWORD, safe="")

# Every URL form SQLAlchemy accepts for the drivers a deployment may use: (URL, as shown, secrets hidden).
URL_FORMS = {
    "user and password": (
        "mysql+pymysql://scorer:s3cret-pw@db:3306/payments",
        "mysql+pymysql://scorer:***@db:3306/payments",
        ["s3cret-pw"],
    ),
    "password percent-encoded with @ : / ? #": (
        f"mysql+pymysql://scorer:{ENCODED}@db/payments",
        "mysql+pymysql://scorer:***@db/payments",
        [PASSWORD],
    ),
    "password with a raw @": (
        "mysql+pymysql://scorer:p@ss-word@db/payments",
        "mysql+pymysql://scorer:***@db/payments",
        ["p@ss-word", "ss-word"],
    ),
    "password only in the query": (
        "mysql+pymysql://scorer@db/payments?password=s3cret-pw",
        "mysql+pymysql://scorer@db/payments?password=***",
        ["s3cret-pw"],
    ),
    "query password percent-encoded": (
        f"mysql+pymysql://scorer@db/payments?password={ENCODED}",
        "mysql+pymysql://scorer@db/payments?password=***",
        [PASSWORD],
    ),
    "query password in upper case": (
        "mysql+pymysql://scorer@db/payments?PassWord=s3cret-pw",
        "mysql+pymysql://scorer@db/payments?PassWord=***",
        ["s3cret-pw"],
    ),
    "passwd and pwd": (
        "mysql+mysqldb://scorer@db/payments?passwd=s3cret-a&pwd=s3cret-b",
        "mysql+mysqldb://scorer@db/payments?passwd=***&pwd=***",
        ["s3cret-a", "s3cret-b"],
    ),
    "password given twice": (
        "postgresql://scorer@db/payments?password=s3cret-a&password=s3cret-b",
        "postgresql://scorer@db/payments?password=***&password=***",
        ["s3cret-a", "s3cret-b"],
    ),
    "token, secret and api key": (
        "snowflake://scorer@acct/payments?token=tok-123&client_secret=sec-456&api_key=key-789",
        "snowflake://scorer@acct/payments?token=***&client_secret=***&api_key=***",
        ["tok-123", "sec-456", "key-789"],
    ),
    "TLS key file and its password": (
        "mysql+pymysql://scorer:pw-1234@db/payments?ssl_key=/etc/keys/scorer.pem&ssl_ca=/etc/ca.pem&charset=utf8mb4",
        "mysql+pymysql://scorer:***@db/payments?ssl_key=***&ssl_ca=***&charset=utf8mb4",
        ["/etc/keys/scorer.pem", "%2Fetc%2Fkeys%2Fscorer.pem", "pw-1234"],
    ),
    "postgres sslpassword beside sslmode": (
        "postgresql+psycopg://scorer@db/payments?sslmode=require&sslpassword=s3cret-pw",
        "postgresql+psycopg://scorer@db/payments?sslmode=require&sslpassword=***",
        ["s3cret-pw"],
    ),
    "IPv6 host": (
        "mysql+pymysql://scorer:s3cret-pw@[::1]:3306/payments",
        "mysql+pymysql://scorer:***@[::1]:3306/payments",
        ["s3cret-pw"],
    ),
    "IPv6 host with a zone": (
        "mysql+pymysql://scorer:s3cret-pw@[fe80::1%25eth0]:3306/payments?password=other-pw",
        "mysql+pymysql://scorer:***@[fe80::1%25eth0]:3306/payments?password=***",
        ["s3cret-pw", "other-pw"],
    ),
    "unix socket": (
        "mysql+pymysql://scorer:s3cret-pw@/payments?unix_socket=/run/mysqld/mysqld.sock",
        "mysql+pymysql://scorer:***@/payments?unix_socket=/run/mysqld/mysqld.sock",
        ["s3cret-pw"],
    ),
    "unix socket and query password": (
        "mysql+pymysql://scorer@localhost/payments?unix_socket=/run/mysqld/mysqld.sock&password=s3cret-pw",
        "mysql+pymysql://scorer@localhost/payments?unix_socket=/run/mysqld/mysqld.sock&password=***",
        ["s3cret-pw"],
    ),
    "odbc_connect string": (
        "mssql+pyodbc:///?odbc_connect="
        + urllib.parse.quote_plus("DRIVER={ODBC Driver 18};SERVER=db;UID=scorer;PWD=s3cret-pw"),
        "mssql+pyodbc:///?odbc_connect=***",
        ["s3cret-pw"],
    ),
    "odbc DSN with a password": (
        "mssql+pyodbc://scorer:s3cret-pw@payments_dsn",
        "mssql+pyodbc://scorer:***@payments_dsn",
        ["s3cret-pw"],
    ),
    "oracle service name": (
        "oracle+oracledb://scorer:s3cret-pw@db:1521/?service_name=PAYMENTS",
        "oracle+oracledb://scorer:***@db:1521/?service_name=***",
        ["s3cret-pw"],
    ),
    "sqlite absolute path": ("sqlite:////var/lib/payment/payments.db", "sqlite:////var/lib/payment/payments.db", []),
    "sqlite relative path": ("sqlite:///.payment_platform/payments.db", "sqlite:///.payment_platform/payments.db", []),
    "sqlite in memory": ("sqlite://", "sqlite://", []),
    "sqlite URI with options": (
        "sqlite:///file:payments.db?mode=ro&uri=true",
        "sqlite:///file%3Apayments.db?mode=***&uri=***",
        [],
    ),
    "a generated token as the user": (
        f"mysql+pymysql://{TOKEN}@db/payments",
        "mysql+pymysql://***@db/payments",
        [TOKEN],
    ),
    "a hex key in the database name": (
        f"mysql+pymysql://scorer@db/payments_{HEX_KEY}",
        "mysql+pymysql://scorer@db/payments_***",
        [HEX_KEY],
    ),
    "a JWT in a harmless-looking option": (
        f"mysql+pymysql://scorer@db/payments?charset={JWT}",
        "mysql+pymysql://scorer@db/payments?charset=***",
        [JWT],
    ),
}


@pytest.mark.parametrize("form", sorted(URL_FORMS))
def test_redact_url_masks_every_credential_in_every_url_form(form: str) -> None:
    url, expected, secrets = URL_FORMS[form]
    assert redact_url(url) == expected
    for secret in secrets:
        for spelling in secret_forms(secret):
            assert spelling not in expected, spelling
    # A driver's error that quotes any of them is masked too, while the rest of it stays readable.
    message = f"connection failed for {url} ({' '.join(secrets)}) on port 3306"
    shown = redact_text(message, url)
    assert shown.startswith(f"connection failed for {expected} (") and shown.endswith(") on port 3306")
    for secret in secrets:
        assert secret not in shown


def test_redact_text_masks_every_piece_of_a_url_it_cannot_parse() -> None:
    url = "mysql+pymysql://scorer:s3cret-pw@db:notaport/payments"
    assert redact_url(url) == "<unparseable database URL>"
    shown = redact_text("invalid literal for int() with base 10: 's3cret-pw@db:notaport'", url)
    assert "s3cret-pw" not in shown and "notaport" not in shown


_SECRET_KEYS = ["password", "passwd", "pwd", "token", "secret", "ssl_key", "api_key", "odbc_connect", "x"]


@settings(max_examples=300, deadline=None)
@given(
    secret=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=4, max_size=40),
    where=st.sampled_from(["userinfo", *_SECRET_KEYS]),
    key_case=st.sampled_from([str.lower, str.upper, str.title]),
)
def test_redact_url_never_shows_a_secret_wherever_it_is_put(secret: str, where: str, key_case) -> None:
    skeleton = "mysql+pymysql://scorer@db.example:3306/payments?charset=utf8mb4&password="
    assume(not any(form in skeleton + "***" for form in secret_forms(secret)))
    if where == "userinfo":
        url = sa.URL.create("mysql+pymysql", "scorer", secret, "db.example", 3306, "payments")
    elif where == "odbc_connect":
        url = sa.URL.create("mssql+pyodbc", query={"odbc_connect": f"DRIVER={{x}};SERVER=db;PWD={secret}"})
    else:
        url = sa.URL.create("mysql+pymysql", "scorer", None, "db.example", 3306, "payments", {key_case(where): secret})
    text = url.render_as_string(hide_password=False)
    shown = redact_url(text)
    message = redact_text(f"error near {secret!r} in {text}", text)
    for form in secret_forms(secret):
        assert form not in shown and form not in message


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_never_shows_the_database_url(command: str | None, tmp_path: Path) -> None:
    url = f"mysql+pymysql://scorer:{urllib.parse.quote(PASSWORD, safe='')}@127.0.0.1:1/payments"
    result = run_cli(
        *([command] if command else []), "--help", env={"PAYMENT_DB_URL": url, "PAYMENT_HOME": str(tmp_path)}
    )
    assert result.returncode == 0 and "usage: payment-platform" in result.stdout
    for secret in [*secret_forms(PASSWORD), url]:
        assert secret not in result.stdout + result.stderr


@pytest.mark.integration
@pytest.mark.parametrize("given_as", ["user info", "query parameter"])
@pytest.mark.parametrize("where", ["unreachable server", "wrong password"])
def test_store_errors_of_score_never_show_the_password(
    where: str, given_as: str, kafka_bootstrap: str, mysql_server_url: str, tmp_path: Path
) -> None:
    small_model_dir(tmp_path / "models")
    server = sa.make_url(mysql_server_url)
    port = 1 if where == "unreachable server" else server.port
    if given_as == "user info":
        url = sa.URL.create("mysql+pymysql", "nobody_here", PASSWORD, server.host, port, "payments")
        shown = f"mysql+pymysql://nobody_here:***@{server.host}:{port}/payments"
    else:
        query = {"password": PASSWORD, "charset": "utf8mb4"}
        url = sa.URL.create("mysql+pymysql", "nobody_here", None, server.host, port, "payments", query)
        shown = f"mysql+pymysql://nobody_here@{server.host}:{port}/payments?charset=utf8mb4&password=***"
    env = {
        "PAYMENT_HOME": str(tmp_path),
        "PAYMENT_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "PAYMENT_DB_URL": url.render_as_string(hide_password=False),
    }
    result = run_cli("--verbose", "score", "--idle-timeout-s", "1", env=env)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]  # after the log lines of --verbose: the one-line reason
    assert last.startswith(f"payment-platform score: cannot use the score store at {shown}: "), last
    for secret in secret_forms(PASSWORD):
        assert secret not in result.stdout + result.stderr


# --- deployment: least privilege, localhost only ------------------------------------------------------


def test_no_service_reaches_mysql_as_root() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    urls = []
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        items = env.items() if isinstance(env, dict) else (item.split("=", 1) for item in env)
        for key, value in items:
            if "USER" in key and "MYSQL_ROOT" not in key:
                assert "root" not in str(value).lower(), f"{name}.{key} = {value}"
            if "://" in str(value) and "@" in str(value):
                urls.append((name, key, str(value)))
    store_urls = [value.split("://", 1)[1] for _, key, value in urls if key == "PAYMENT_DB_URL"]
    assert store_urls and all(
        url.startswith(("${PAYMENT_DB_USER:-scorer}:", "${PAYMENT_CONSOLE_DB_USER:-console}:")) for url in store_urls
    )
    assert compose["services"]["mysql"]["environment"]["MYSQL_ROOT_HOST"] == "localhost"


# --- dependencies ---------------------------------------------------------------------------------------


def setup_requirements() -> list[Requirement]:
    """install_requires and every extra of setup.py, read without running it."""
    tree = ast.parse((REPO_ROOT / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    keywords = {
        k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg in ("install_requires", "extras_require")
    }
    texts = [*keywords["install_requires"], *(r for extra in keywords["extras_require"].values() for r in extra)]
    return [Requirement(text) for text in texts]


def test_every_dependency_has_a_lower_and_an_upper_bound() -> None:
    unbounded = []
    for requirement in setup_requirements():
        operators = {spec.operator for spec in requirement.specifier}
        if not (operators & {">=", ">", "==", "~="} and operators & {"<", "<=", "==", "~="}):
            unbounded.append(str(requirement))
    assert not unbounded, f"give these a lower and an upper bound: {unbounded}"


def test_every_imported_distribution_is_a_declared_dependency() -> None:
    declared = {re.sub(r"[-_.]+", "-", r.name).lower() for r in setup_requirements()}
    stdlib = sys.stdlib_module_names
    distributions = importlib.metadata.packages_distributions()
    missing = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in stdlib or top == "payment_platform":
                    continue
                names = {re.sub(r"[-_.]+", "-", d).lower() for d in distributions.get(top, [top])}
                if not names & declared:
                    missing.add(f"{top} ({', '.join(sorted(names))}) in {path.relative_to(REPO_ROOT)}")
    assert not missing, f"imported but not declared in setup.py: {sorted(missing)}"


# --- models: only from the registry, only when their checksums match --------------------------------


class _Payload:
    """A pickle that creates a file when it is unpickled: proof of code execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def test_a_tampered_model_is_refused_before_it_is_unpickled(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    small_model_dir(registry.root)
    version = registry.production_version()
    assert version is not None
    marker = tmp_path / "code-ran"
    (registry.root / version / "model.skops").write_bytes(pickle.dumps(_Payload(marker)))

    with pytest.raises(ModelIntegrityError, match=r"model\.skops does not match its sha256 checksum"):
        ModelSource(registry).current()
    assert not marker.exists()


def skops_file_that_calls(function: str, argument: str) -> bytes:
    """A skops file whose schema asks the loader to call `module.function(argument)` to rebuild it."""
    inner = skops.io.dumps((argument,))
    with zipfile.ZipFile(io.BytesIO(inner)) as archive:
        schema = json.loads(archive.read("schema.json"))
    module, _, name = function.rpartition(".")
    crafted = {
        "__class__": name,
        "__module__": module,
        "__loader__": "ConstructorFromReduceNode",
        "content": {k: v for k, v in schema.items() if k not in ("protocol", "_skops_version")},
        "protocol": schema["protocol"],
        "_skops_version": schema["_skops_version"],
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", json.dumps(crafted))
    return buffer.getvalue()


def forge_production(registry: ModelRegistry, model_file: bytes, pointer: str) -> None:
    """The attack of issue 14: replace the promoted model, rewrite its checksums and the pointer."""
    version = registry.production_version()
    assert version is not None
    folder = registry.root / version
    (folder / MODEL_FILE).write_bytes(model_file)
    names = (MODEL_FILE, "features.json", "metadata.json")
    manifest = "".join(f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}\n" for n in names)
    (folder / "checksum.sha256").write_text(manifest)
    digest = hashlib.sha256(manifest.encode()).hexdigest()
    (registry.root / "PRODUCTION").write_text(
        version + "\n" if pointer == "by hand" else f"{version}\nsha256:{digest}\n"
    )


MALICIOUS_MODELS = {
    "pickle whose __reduce__ runs code": (lambda marker: pickle.dumps(_Payload(marker)), "not a readable skops model"),
    "skops file that calls os.mkdir": (
        lambda marker: skops_file_that_calls("os.mkdir", str(marker)),
        r"holds types outside the trusted list: .*os\.mkdir",
    ),
}


@pytest.mark.parametrize("pointer", ["with its digest recomputed", "by hand"])
@pytest.mark.parametrize("attack", sorted(MALICIOUS_MODELS))
def test_a_malicious_model_with_rewritten_checksums_and_pointer_never_runs(
    attack: str, pointer: str, tmp_path: Path
) -> None:
    make, reason = MALICIOUS_MODELS[attack]
    registry = ModelRegistry(tmp_path / "models")
    small_model_dir(registry.root)
    marker = tmp_path / "code-ran"
    forge_production(registry, make(marker), pointer)

    expected = "without the digest promotion writes" if pointer == "by hand" else reason
    with pytest.raises(ModelIntegrityError, match=expected) as refused:
        ModelSource(registry).current()
    assert "\n" not in str(refused.value)
    assert not marker.exists()


@pytest.mark.parametrize("pointer", ["with its digest recomputed", "by hand"])
def test_score_refuses_a_malicious_model_in_one_line(pointer: str, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    small_model_dir(registry.root)
    marker = tmp_path / "code-ran"
    forge_production(registry, pickle.dumps(_Payload(marker)), pointer)

    result = run_cli("score", "--idle-timeout-s", "1", env={"PAYMENT_HOME": str(tmp_path)})
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"payment-platform score: model {registry.production_version()}") or line.startswith(
        "payment-platform score: PRODUCTION names model"
    ), line
    assert not marker.exists()


def test_a_running_scorer_keeps_its_model_when_the_registry_is_forged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = ModelRegistry(tmp_path / "models")
    small_model_dir(registry.root)
    source = ModelSource(registry, refresh_s=0.0)
    good = source.current()
    marker = tmp_path / "code-ran"
    for pointer in ("with its digest recomputed", "by hand"):
        forge_production(registry, skops_file_that_calls("os.mkdir", str(marker)), pointer)
        with caplog.at_level(logging.ERROR, logger="payment_platform.stream.model_source"):
            assert [source.current() for _ in range(3)] == [good] * 3
    refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(refusals) == 2, refusals  # one line per forgery, not one per check
    assert all(f"keeping {good.version}" in line and "\n" not in line for line in refusals)
    assert not marker.exists()


@pytest.mark.parametrize("pointer", ["../../x", "../models/v1", "/etc/passwd", "v1/../../x", ".hidden", "v 1"])
def test_a_production_pointer_outside_the_registry_is_refused(pointer: str, tmp_path: Path) -> None:
    outside = ModelRegistry(tmp_path / "x")  # a real, valid model where the pointer leads
    small_model_dir(outside.root)
    registry = ModelRegistry(tmp_path / "home" / "models")
    registry.root.mkdir(parents=True)
    (registry.root / "PRODUCTION").write_text(pointer + "\n")

    with pytest.raises(InvalidModelVersionError, match="invalid model version name"):
        ModelSource(registry).current()
    setup = ScorerConfig("127.0.0.1:1", "g", "p", "l", "d", "x", "sqlite://", registry.root)
    with pytest.raises(InvalidModelVersionError):
        build_scorer(setup)  # refused before any connection is tried


def test_score_refuses_a_traversing_production_pointer(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "PRODUCTION").write_text("../../x\n")
    result = run_cli("score", "--idle-timeout-s", "1", env={"PAYMENT_HOME": str(tmp_path)})
    assert result.returncode != 0
    assert "invalid model version name: '../../x'" in result.stderr


def test_score_says_in_one_line_why_it_refuses_the_model(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "PRODUCTION").write_text("../../x\n")
    result = run_cli("score", "--idle-timeout-s", "1", env={"PAYMENT_HOME": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["payment-platform score: invalid model version name: '../../x'"]


@pytest.mark.integration
def test_a_running_scorer_never_runs_a_model_planted_in_its_registry(
    kafka_bootstrap: str, mysql_database: str, topic_names: dict[str, str], tmp_path: Path
) -> None:
    """Issue 14's attack on a live scorer: model, checksums and pointer rewritten while it scores."""
    home = tmp_path / "home"
    registry = ModelRegistry(home / "models")
    small_model_dir(registry.root)
    good = registry.production_version()
    ensure_topics(kafka_bootstrap, topic_names.values())
    producer = payment_producer(kafka_bootstrap)
    engine = sa.create_engine(mysql_database)

    def send(prefix: str, count: int) -> None:
        for i in range(count):
            producer.produce(topic_names["payment_topic"], key=b"c", value=payment_value(transaction_id=f"{prefix}{i}"))
        assert producer.flush(10) == 0

    def stored() -> list[str]:
        try:
            with engine.connect() as conn:
                return list(conn.execute(sa.text("SELECT model_version FROM scored_transactions")).scalars())
        except sa.exc.ProgrammingError:  # the scorer has not created the table yet
            return []

    group = f"planted-{uuid.uuid4().hex[:8]}"
    env = scorer_cli_env(home, kafka_bootstrap, mysql_database, group, topic_names)
    marker = tmp_path / "code-ran"
    command = [sys.executable, "-m", "payment_platform.cli", "score", "--idle-timeout-s", "60"]
    scorer = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        send("before-", 20)
        assert wait_until(lambda: len(stored()) == 20, 90), "the scorer did not score the first payments"
        forge_production(registry, pickle.dumps(_Payload(marker)), "with its digest recomputed")
        time.sleep(6)  # past the scorer's 5 s look at the pointer
        send("after-", 20)
        assert wait_until(lambda: len(stored()) == 40, 60), "the scorer stopped scoring"
    finally:
        scorer.send_signal(signal.SIGTERM)
        _, stderr = scorer.communicate(timeout=30)
        engine.dispose()
    assert not marker.exists()
    assert set(stored_versions := stored()) == {good}, stored_versions
    refusals = [line for line in stderr.splitlines() if "refusing the promoted model" in line]
    assert len(refusals) == 1 and "is not a readable skops model" in refusals[0], stderr[-2000:]
