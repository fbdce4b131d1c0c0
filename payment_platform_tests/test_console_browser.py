"""The fraud operations console in a real browser: Debian's Chromium driven by Playwright, against the real
`payment-platform console` process on MariaDB and the Kafka-protocol broker.

One console and one browser serve the whole module. With PAYMENT_CONSOLE_SCREENSHOTS set to a directory, the
screenshots of every page are written there (the README's come from `docs/console`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from confluent_kafka import Consumer, TopicPartition

from payment_platform.console.accounts import hash_password
from payment_platform.console.live_quality import refresh_one_day
from payment_platform.console.sample_rows import SCORED_COLUMNS, label_rows, promote_sample_model, sample_rows
from payment_platform.console.store import ConsoleStore, open_console_store
from payment_platform.console.tables import reviews, rollup_cursor
from payment_platform.kafka.clients import ensure_topics
from payment_platform.store.tables import scored_transactions, scorer_status, transaction_labels
from payment_platform_tests.conftest import free_port, service_missing, wait_until

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("PAYMENT_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = os.environ.get("PAYMENT_CONSOLE_SCREENSHOTS")
VIEWPORT = {"width": 1366, "height": 768}
ANALYSTS = {"alice": "alice-password-1", "bob": "bob-password-22"}


@dataclass
class ConsoleUnderTest:
    base: str
    store: ConsoleStore
    bootstrap: str
    labels_topic: str
    log: Path


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@pytest.fixture(scope="module")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        service_missing(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        service_missing("playwright is not installed (pip install -e '.[dev]')")
    return CHROMIUM


@pytest.fixture(scope="module")
def desk_database(mysql_server_url: str) -> Iterator[str]:
    name = f"pp_console_ui_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(mysql_server_url)
    with admin.begin() as conn:
        conn.execute(sa.schema.CreateSchema(name))
    try:
        yield sa.make_url(mysql_server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.schema.DropSchema(name))
        admin.dispose()


@pytest.fixture(scope="module")
def console(
    chromium: str,
    desk_database: str,
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ConsoleUnderTest]:
    """A week of payments that matured 8 days ago, two hours of payments ending now, their labels, a running
    scorer's status, a promoted model, two analysts; then the real command, once its aggregates are level."""
    store = open_console_store(desk_database)
    now = utc_now()
    matured = sample_rows(6_000, end=now - dt.timedelta(days=8), span=dt.timedelta(days=7), seed=20, id_prefix="old")
    rows = sample_rows(4_000, end=now, span=dt.timedelta(hours=2), seed=21)
    with store.writer.begin() as conn:
        for part, label_delay in ((matured, dt.timedelta(days=7)), (rows, dt.timedelta(minutes=30))):
            conn.execute(scored_transactions.insert(), part[SCORED_COLUMNS].to_dict("records"))
            conn.execute(transaction_labels.insert(), label_rows(part, label_delay, now).to_dict("records"))
        conn.execute(
            scorer_status.insert().values(
                scorer_id="scorer-host:4242:0930",
                consumer_group="payment-scorer",
                started_at=now - dt.timedelta(hours=2),
                updated_at=now,
                running=True,
                consumed=4_012,
                scored=4_000,
                dead_lettered=12,
                labels=35,
                payments_per_s=0.6,
                consumer_lag=3,
                model_version="sample-model",
                orphan_labels=0,
                mis_keyed=0,
            )
        )
    while refresh_one_day(store.reader, store.writer, now.date(), now) is not None:
        pass  # the matured days measured now: the console itself measures one a minute
    home = tmp_path_factory.mktemp("console-home")
    promote_sample_model(home / "models")
    users = home / "users"
    users.write_text("".join(f"{name}:{hash_password(pw)}\n" for name, pw in ANALYSTS.items()), encoding="utf-8")
    labels_topic = f"payment-labels-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, [labels_topic])
    port = free_port()
    log = home / "console.log"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PAYMENT_HOME": str(home),
        "PAYMENT_DB_URL": desk_database,
        "PAYMENT_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "PAYMENT_LABELS_TOPIC": labels_topic,
        "PAYMENT_CONSOLE_USERS_FILE": str(users),
    }
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "payment_platform.cli", "console", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        assert wait_until(lambda: _answers(port), 60, every_s=0.3), log.read_text()
        assert wait_until(lambda: _caught_up(store), 60, every_s=0.3), "the console's aggregates did not catch up"
        yield ConsoleUnderTest(f"http://127.0.0.1:{port}", store, kafka_bootstrap, labels_topic, log)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
        store.dispose()


def _answers(port: int) -> bool:
    import http.client

    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/login")
        return connection.getresponse().status == 200
    except OSError:
        return False


def _caught_up(store: ConsoleStore) -> bool:
    with store.reader.connect() as conn:
        folded = conn.execute(sa.select(rollup_cursor.c.last_id)).scalar()
        latest = conn.execute(sa.select(sa.func.max(scored_transactions.c.id))).scalar()
    return folded is not None and folded == latest


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Visit:
    """A browser context of its own (cookies: one analyst), recording script errors and failed requests."""

    def __init__(self, browser: object, base: str) -> None:
        self.context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)  # type: ignore[attr-defined]
        self.page = self.context.new_page()
        self.base = base
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(f"script error: {error}"))
        self.page.on(
            "response",
            lambda r: self.errors.append(f"{r.status} {r.url}") if r.status >= 400 and "/login" not in r.url else None,
        )

    def open(self, path: str) -> object:
        self.page.goto(self.base + path)
        self.page.wait_for_load_state("networkidle")
        return self.page

    def login(self, name: str) -> None:
        page = self.open("/login")
        page.fill("#name", name)
        page.fill("#password", ANALYSTS[name])
        page.click("button[type=submit]")
        page.wait_for_selector("#analyst-name")

    def shoot(self, name: str) -> None:
        if SCREENSHOTS:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"))

    def close(self) -> None:
        self.context.close()


@pytest.fixture()
def visit(browser: object, console: ConsoleUnderTest) -> Iterator[Visit]:
    opened = Visit(browser, console.base)
    yield opened
    opened.close()
    assert not opened.errors, opened.errors


def table_totals(store: ConsoleStore) -> dict[str, int]:
    with store.reader.connect() as conn:
        return dict(
            conn.execute(
                sa.select(scored_transactions.c.status, sa.func.count()).group_by(scored_transactions.c.status)
            ).all()
        )


def shown_totals(page: object) -> dict[str, int]:
    return {
        status: int(page.inner_text(f"[data-status={status}]").replace(",", ""))  # type: ignore[attr-defined]
        for status in ("APPROVED", "REVIEW", "DECLINED")
    }


# --- the tests ---------------------------------------------------------------------------------------------


def test_an_analyst_logs_in(visit: Visit) -> None:
    page = visit.open("/login")
    page.fill("#name", "alice")
    page.fill("#password", "not her password")
    page.click("button[type=submit]")
    assert "wrong password" in page.inner_text("#login-error")
    visit.errors.clear()  # the refused login answered 401, as it should
    visit.login("alice")
    assert page.inner_text("#analyst-name") == "alice"


def test_the_totals_are_the_tables_and_refresh_by_themselves(visit: Visit, console: ConsoleUnderTest) -> None:
    page = visit.open("/")
    page.wait_for_selector("#chart-decisions canvas")
    expected = table_totals(console.store)
    assert shown_totals(page) == {s: expected.get(s, 0) for s in ("APPROVED", "REVIEW", "DECLINED")}
    visit.shoot("overview")
    # A scorer writes more: the open page follows without a reload.
    page.select_option("#refresh-every", "5")
    more = sample_rows(60, end=utc_now(), span=dt.timedelta(seconds=30), seed=22, id_prefix="later")
    with console.store.writer.begin() as conn:
        conn.execute(scored_transactions.insert(), more[SCORED_COLUMNS].to_dict("records"))
    after = table_totals(console.store)
    deadline = time.monotonic() + 40
    while shown_totals(page) != {s: after.get(s, 0) for s in ("APPROVED", "REVIEW", "DECLINED")}:
        assert time.monotonic() < deadline, f"the page still shows {shown_totals(page)}, the table has {after}"
        page.wait_for_timeout(500)
    assert page.url.rstrip("/") == console.base  # refreshed in place, not reloaded elsewhere


def test_a_fraud_verdict_reaches_the_labels_topic_and_the_reviews_table(
    visit: Visit, console: ConsoleUnderTest
) -> None:
    visit.login("alice")
    page = visit.open("/queue")
    row = page.locator("#queue tbody tr[data-card]").first
    card = row.get_attribute("data-card")
    row.locator("button", has_text="Open case").click()
    page.wait_for_selector("#verdict-form")
    assert f"card={card}" in page.url.replace("%2F", "/") or card in page.inner_text("h1")
    transactions = [e.get_attribute("value") for e in page.locator("#verdict-form input[name=tx]").all()]
    assert transactions and len(transactions) == page.locator("#open-payments tbody tr").count()
    assert page.locator("#open-payments .reasons li").count() >= len(transactions)  # each with its thresholds
    page.wait_for_selector("#chart-case canvas")
    page.fill("#note", "confirmed with the cardholder")
    visit.shoot("case")
    page.click("#mark-fraud")
    page.wait_for_selector("#verdict-done")
    assert page.locator(f'#queue tr[data-card="{card}"]').count() == 0  # the case left the queue
    visit.shoot("queue")

    labels = read_labels(console, set(transactions))
    assert set(labels) == set(transactions)
    for transaction_id, value in labels.items():
        assert value["transaction_id"] == transaction_id and value["is_fraud"] is True
        assert value["source"] == "analyst:alice"
        labelled_at = dt.datetime.strptime(value["labelled_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
        assert abs((utc_now() - labelled_at).total_seconds()) < 120
    with console.store.reader.connect() as conn:
        audit = conn.execute(
            sa.select(
                reviews.c.transaction_id, reviews.c.customer_id, reviews.c.analyst, reviews.c.verdict, reviews.c.note
            )
        ).all()
    assert sorted(audit) == sorted((tx, card, "alice", "fraud", "confirmed with the cardholder") for tx in transactions)
    page = visit.open("/card?" + f"id={card}")
    assert page.locator("#timeline .tag.fraud").count() >= len(transactions)  # the verdicts on the timeline


def read_labels(console: ConsoleUnderTest, wanted: set[str], timeout_s: float = 30.0) -> dict[str, dict]:
    consumer = Consumer(
        {"bootstrap.servers": console.bootstrap, "group.id": f"reader-{uuid.uuid4().hex}", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(console.labels_topic, p, 0) for p in range(4)])
    found: dict[str, dict] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while set(found) != wanted and time.monotonic() < deadline:
            for message in consumer.consume(500, 0.5):
                if message.error() is None:
                    key = message.key().decode()
                    found[key] = json.loads(message.value())
    finally:
        consumer.close()
    return found


def test_a_filtered_export_equals_the_table(visit: Visit, console: ConsoleUnderTest) -> None:
    now = utc_now().replace(microsecond=0)
    since, until = now - dt.timedelta(minutes=100), now - dt.timedelta(minutes=10)
    page = visit.open("/export")
    page.select_option("#status", "REVIEW")
    page.fill("#since", since.isoformat())
    page.fill("#until", until.isoformat())
    page.fill("#limit", "0")
    visit.shoot("export")
    with page.expect_download() as download:
        page.click("#download")
    text = Path(download.value.path()).read_text(encoding="utf-8")
    exported = list(csv.DictReader(io.StringIO(text)))
    t = scored_transactions.c
    with console.store.reader.connect() as conn:
        expected = conn.execute(
            sa.select(t.transaction_id, t.customer_id, t.score, t.status, t.event_time)
            .where(t.status == "REVIEW", t.event_time >= since, t.event_time < until)
            .order_by(t.event_time.desc(), t.id.desc())
        ).all()
    assert len(exported) == len(expected) > 0
    for line, row in zip(exported, expected, strict=True):
        assert (line["transaction_id"], line["customer_id"], line["status"]) == (
            row.transaction_id,
            row.customer_id,
            row.status,
        )
        assert float(line["score"]) == row.score
        assert line["event_time"] == row.event_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_a_second_analyst_sees_the_case_taken(browser: object, visit: Visit, console: ConsoleUnderTest) -> None:
    visit.login("alice")
    page = visit.open("/queue")
    row = page.locator("#queue tbody tr[data-card]").first
    card = row.get_attribute("data-card")
    row.locator("button", has_text="Open case").click()
    page.wait_for_selector("#lease-status")
    bob = Visit(browser, console.base)
    try:
        bob.login("bob")
        queue = bob.open("/queue")
        state = queue.locator(f'#queue tr[data-card="{card}"] .case-state').inner_text()
        assert re.search(r"taken by alice", state), state
        assert queue.locator(f'#queue tr[data-card="{card}"] button', has_text="Open case").count() == 0
        bob.open(f"/case?card={card}")
        assert "Taken by alice" in bob.page.inner_text("#taken-by")
        assert bob.page.locator("#verdict-form").count() == 0
        bob.shoot("case-taken")
        assert not bob.errors, bob.errors
    finally:
        bob.close()


@pytest.mark.parametrize(
    "name, path, chart",
    [
        ("overview-24h", "/?window=1440", "#chart-latency canvas"),
        ("risk", "/risk?minutes=15&min_score=0.3&min_payments=3", None),
        ("investigate", "/card?id=__busiest__", "#chart-timeline canvas"),
        ("health", "/health", None),
        ("login", "/login", None),
    ],
)
def test_every_page_reads_well_at_1366x768(
    visit: Visit, console: ConsoleUnderTest, name: str, path: str, chart: str | None
) -> None:
    if "__busiest__" in path:
        with console.store.reader.connect() as conn:
            busiest = conn.execute(
                sa.select(scored_transactions.c.customer_id)
                .group_by(scored_transactions.c.customer_id)
                .order_by(sa.func.count().desc())
                .limit(1)
            ).scalar_one()
        path = path.replace("__busiest__", busiest)
    page = visit.open(path)
    if chart:
        page.wait_for_selector(chart)
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]  # no sideways scrolling
    assert page.locator("main h1").count() == 1
    visit.shoot(name)
