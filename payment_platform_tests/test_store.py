"""The score store on SQLite and on the real MariaDB: idempotent writes, label upserts, reports."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from payment_platform.store.database import StoreUnavailable, connect_store
from payment_platform.store.event_time import epoch_us_of
from payment_platform.store.reports import build_daily_report, save_daily_report
from payment_platform.store.rows import SCORED_COLUMNS, LabelRow, ScoredBatch, us_to_datetimes
from payment_platform.store.stream_state import card_history, newest_event_us, read_progress, stored_payments
from payment_platform.store.tables import (
    daily_scoring_reports,
    label_events,
    scored_transactions,
    scorer_status,
    transaction_labels,
)
from payment_platform.store.writer import ScoreWriter

DAY = dt.date(2026, 3, 1)
NOON = dt.datetime(2026, 3, 1, 12, 0)


def scored_row(transaction_id: str, **fields: object) -> dict[str, object]:
    """A scored payment as the scorer writes it (naive UTC datetimes)."""
    row: dict[str, object] = {
        "transaction_id": transaction_id,
        "customer_id": "card-1",
        "terminal_id": "term-1",
        "amount": Decimal("12.50"),
        "currency": "EUR",
        "event_time": NOON,
        "score": 0.01,
        "status": "APPROVED",
        "reasons": "",
        "model_version": "v1",
        "scored_at": NOON + dt.timedelta(milliseconds=50),
        "kafka_partition": 0,
        "kafka_offset": 1,
        "shard": 0,
    }
    row.update(fields)
    assert set(row) == set(SCORED_COLUMNS)
    return row


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.integration)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A fresh score store with the contract tables, on SQLite (a temp file) or the real MariaDB."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store' / 'payments.db'}"
    else:
        url = request.getfixturevalue("mysql_database")
    store = connect_store(url)
    try:
        yield store
    finally:
        store.dispose()


def all_scored(engine: sa.Engine) -> dict[str, dict[str, object]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(scored_transactions)).mappings().all()
    return {row["transaction_id"]: dict(row) for row in rows}


def all_labels(engine: sa.Engine) -> dict[str, tuple[bool, dt.datetime]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(transaction_labels)).all()
    return {row.transaction_id: (bool(row.is_fraud), row.labelled_at) for row in rows}


# --- scored payments -----------------------------------------------------------------------------


def test_connect_store_creates_the_tables(engine: sa.Engine) -> None:
    names = set(sa.inspect(engine).get_table_names())
    assert {"scored_transactions", "transaction_labels", "daily_scoring_reports"} <= names


def test_a_row_round_trips_exactly(engine: sa.Engine) -> None:
    event_time = dt.datetime(2026, 3, 1, 12, 0, 0, 123_456)
    row = scored_row(
        "tx-1",
        event_time=event_time,
        scored_at=event_time + dt.timedelta(microseconds=7),
        amount=Decimal("999999.99"),
        score=0.123456789,
        kafka_offset=2**40,
    )
    assert ScoreWriter(engine).write([row]) == 1
    stored = all_scored(engine)["tx-1"]
    assert {k: stored[k] for k in SCORED_COLUMNS} == row
    assert isinstance(stored["id"], int)


def test_a_scored_batch_round_trips_exactly(engine: sa.Engine) -> None:
    """The scorer's columnar batch (built column-wise into the bulk file on MariaDB) stores what its rows say."""
    ids = ["plain", "tab\there", "new\nline", "back\\slash", "nul\0cr\r", "ünïcødé-€"]
    n = len(ids)
    batch = ScoredBatch(
        transaction_id=ids,
        customer_id=[f"card\t{i}" for i in range(n)],
        terminal_id=["term-1"] * n,
        amount=np.array([0.01, 12.5, 999_999.99, 1.1, 2.68, 100.0]),
        currency=["EUR"] * n,
        event_us=np.array([1_772_366_400_123_456 + i for i in range(n)], dtype=np.int64),
        score=np.array([0.123456789012345, 1e-17, 0.5, 1.0, 0.0, 1 / 3]),
        status=["APPROVED", "REVIEW", "DECLINED", "APPROVED", "REVIEW", "DECLINED"],
        reasons=["", "HIGH_SCORE", "HIGH_SCORE,VELOCITY_1H", "", "", ""],
        model_version="v\t1",
        kafka_partition=np.arange(n, dtype=np.int64),
        kafka_offset=np.arange(n, dtype=np.int64) + 2**40,
        shard=np.arange(n, dtype=np.int64) % 3,
        scored_at=NOON + dt.timedelta(microseconds=7),
    )
    assert ScoreWriter(engine).write(batch) == n
    stored = all_scored(engine)
    for row in batch.rows():
        expected = dict(zip(SCORED_COLUMNS, row, strict=True))
        expected["amount"] = Decimal(f"{expected['amount']:.2f}")
        assert {k: stored[expected["transaction_id"]][k] for k in SCORED_COLUMNS} == expected


def test_the_same_transaction_twice_keeps_one_row_and_the_first_stands(engine: sa.Engine) -> None:
    writer = ScoreWriter(engine)
    assert writer.write([scored_row("tx-1", score=0.1, model_version="first")]) == 1
    assert writer.write([scored_row("tx-1", score=0.9, status="DECLINED", model_version="second")]) == 0
    stored = all_scored(engine)
    assert list(stored) == ["tx-1"]
    assert (stored["tx-1"]["score"], stored["tx-1"]["model_version"]) == (0.1, "first")


def test_write_counts_only_new_rows(engine: sa.Engine) -> None:
    writer = ScoreWriter(engine)
    assert writer.write([scored_row("a"), scored_row("b")]) == 2
    assert writer.write([scored_row("b"), scored_row("c"), scored_row("a"), scored_row("d")]) == 2
    assert writer.write([scored_row("a"), scored_row("b")]) == 0
    assert sorted(all_scored(engine)) == ["a", "b", "c", "d"]


def test_a_replayed_batch_is_absorbed(engine: sa.Engine) -> None:
    writer = ScoreWriter(engine)
    batch = [scored_row(f"tx-{i}", kafka_offset=i) for i in range(500)]
    assert writer.write(batch) == 500
    assert writer.write(batch) == 0
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(scored_transactions)).scalar_one() == 500


def test_a_duplicate_inside_one_batch_keeps_the_first(engine: sa.Engine) -> None:
    writer = ScoreWriter(engine)
    assert writer.write([scored_row("dup", model_version="first"), scored_row("dup", model_version="second")]) == 1
    assert all_scored(engine)["dup"]["model_version"] == "first"


def test_an_empty_batch_writes_nothing(engine: sa.Engine) -> None:
    assert ScoreWriter(engine).write([]) == 0
    assert all_scored(engine) == {}


def test_transaction_ids_are_case_sensitive(engine: sa.Engine) -> None:
    assert ScoreWriter(engine).write([scored_row("Tx-A"), scored_row("tx-a")]) == 2
    assert sorted(all_scored(engine)) == ["Tx-A", "tx-a"]


@pytest.mark.parametrize(
    "text",
    [
        "💳😀🚀",  # 4-byte UTF-8: needs utf8mb4
        'O\'Brien "quoted" `back`',
        "'; DROP TABLE x; --",
        "Zürich-ß-東京-\\n-%_",
        "x" * 64,
    ],
)
def test_strings_are_stored_verbatim(engine: sa.Engine, text: str) -> None:
    row = scored_row(text, customer_id=text, terminal_id=text, reasons=text, model_version=text)
    assert ScoreWriter(engine).write([row]) == 1
    ScoreWriter(engine).write([], [LabelRow(text, True, NOON)])
    stored = all_scored(engine)[text]
    assert [stored[k] for k in ("transaction_id", "customer_id", "terminal_id", "reasons", "model_version")] == [
        text
    ] * 5
    assert all_labels(engine) == {text: (True, NOON)}
    assert {"scored_transactions", "transaction_labels"} <= set(sa.inspect(engine).get_table_names())


# --- labels --------------------------------------------------------------------------------------

EARLY = LabelRow("tx-1", False, dt.datetime(2026, 3, 1, 12, 0, 0, 1))
LATE = LabelRow("tx-1", True, dt.datetime(2026, 3, 8, 9, 30, 0, 250_000))


@pytest.mark.parametrize("order", ["early-then-late", "late-then-early"])
def test_the_latest_label_wins_in_both_arrival_orders(engine: sa.Engine, order: str) -> None:
    writer = ScoreWriter(engine)
    first, second = (EARLY, LATE) if order == "early-then-late" else (LATE, EARLY)
    assert writer.write([], [first]) == 0
    writer.write([], [second])
    assert all_labels(engine) == {"tx-1": (True, LATE.labelled_at)}


def test_a_retraction_arriving_later_wins(engine: sa.Engine) -> None:
    writer = ScoreWriter(engine)
    retraction = LabelRow("tx-1", False, LATE.labelled_at + dt.timedelta(days=2))
    writer.write([], [LATE])
    writer.write([], [retraction])
    writer.write([], [EARLY])
    assert all_labels(engine) == {"tx-1": (False, retraction.labelled_at)}


def test_labels_in_one_batch_in_either_order(engine: sa.Engine) -> None:
    writer = ScoreWriter(engine)
    writer.write([], [LabelRow("a", True, LATE.labelled_at), LabelRow("a", False, EARLY.labelled_at)])
    writer.write([], [LabelRow("b", False, EARLY.labelled_at), LabelRow("b", True, LATE.labelled_at)])
    assert all_labels(engine) == {"a": (True, LATE.labelled_at), "b": (True, LATE.labelled_at)}


def test_label_before_or_after_its_payment_ends_the_same(engine: sa.Engine) -> None:
    writer = ScoreWriter(engine)
    writer.write([], [LabelRow("before", True, LATE.labelled_at)])
    writer.write([scored_row("before"), scored_row("after")])
    writer.write([], [LabelRow("after", True, LATE.labelled_at)])
    assert all_labels(engine) == {"before": (True, LATE.labelled_at), "after": (True, LATE.labelled_at)}
    assert sorted(all_scored(engine)) == ["after", "before"]


def test_payments_and_labels_in_one_batch(engine: sa.Engine) -> None:
    inserted = ScoreWriter(engine).write([scored_row("p1"), scored_row("p2")], [LabelRow("p1", True, NOON)])
    assert inserted == 2
    assert all_labels(engine) == {"p1": (True, NOON)}


def test_the_label_history_keeps_every_label_once_and_the_latest_row_follows_it(engine: sa.Engine) -> None:
    """transaction_labels is derived from label_events: the latest labelled_at, ties to the later arrival,
    and a label received twice stays one event in its first place (so a re-sent old verdict cannot win)."""
    writer = ScoreWriter(engine)
    fraud, genuine = LabelRow("t", True, NOON, "chargeback"), LabelRow("t", False, NOON, "analyst:ann")
    writer.write([], [fraud, genuine])
    assert all_labels(engine) == {"t": (False, NOON)}
    writer.write([], [fraud])  # the same fraud label again: already known, still behind the correction
    assert all_labels(engine) == {"t": (False, NOON)}
    with engine.connect() as conn:
        events = conn.execute(
            sa.select(label_events.c.is_fraud, label_events.c.source).order_by(label_events.c.id)
        ).all()
    assert [tuple(e) for e in events] == [(True, "chargeback"), (False, "analyst:ann")]


def test_progress_only_moves_forward_and_status_is_one_row_per_scorer(engine: sa.Engine) -> None:
    writer = ScoreWriter(engine)
    status = {
        "scorer_id": "host:1:2",
        "consumer_group": "g",
        "started_at": NOON,
        "running": True,
        "consumed": 5,
        "scored": 4,
        "dead_lettered": 1,
        "labels": 0,
        "payments_per_s": 2.5,
        "consumer_lag": None,
        "model_version": "v1",
        "orphan_labels": 0,
        "mis_keyed": 3,
    }
    writer.write([], progress={("shards", 0): 100, ("shards", 1): 50}, consumer_group="g", status=status)
    writer.write([], progress={("shards", 0): 70}, consumer_group="g", status={**status, "scored": 9})
    writer.write([], progress={("shards", 0): 70}, consumer_group="other")
    assert read_progress(engine, "g") == {("shards", 0): 100, ("shards", 1): 50}
    assert read_progress(engine, "other") == {("shards", 0): 70}
    with engine.connect() as conn:
        rows = conn.execute(sa.select(scorer_status.c.scorer_id, scorer_status.c.scored)).all()
    assert [tuple(row) for row in rows] == [("host:1:2", 9)]


def test_stored_payments_and_card_history_read_back_what_was_written(engine: sa.Engine) -> None:
    writer = ScoreWriter(engine)
    writer.write(
        [
            scored_row("a", customer_id="c1", shard=1, event_time=NOON, amount=Decimal("1.25")),
            scored_row("b", customer_id="c2", shard=1, event_time=NOON + dt.timedelta(seconds=1)),
            scored_row("c", customer_id="c3", shard=2, event_time=NOON),
        ]
    )
    found = stored_payments(engine, ["a", "zz"])
    assert list(found) == ["a"] and found["a"].amount_cents == 125 and found["a"].shard == 1
    assert found["a"].event_us == epoch_us_of(NOON)
    history = card_history(engine, 1, epoch_us_of(NOON) - 1)
    assert history.cards == ["c1", "c2"] and history.t_ms.tolist() == [
        epoch_us_of(NOON) // 1000,
        epoch_us_of(NOON) // 1000 + 1000,
    ]
    assert card_history(engine, 1, epoch_us_of(NOON)).cards == ["c2"]  # strictly after
    assert newest_event_us(engine, 1) == epoch_us_of(NOON) + 1_000_000
    assert newest_event_us(engine, 9) is None


def test_us_to_datetimes_gives_naive_utc() -> None:
    epoch_us = np.array([0, 1_772_366_400_123_456])
    assert us_to_datetimes(epoch_us) == [dt.datetime(1970, 1, 1), dt.datetime(2026, 3, 1, 12, 0, 0, 123_456)]


# --- connecting ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "mysql+pymysql://u:secret@127.0.0.1:1/x",
        "mysql+nosuchdriver://u:secret@127.0.0.1:3306/x",
        "postgresql+psycopg9://u:secret@127.0.0.1:1/x",
    ],
)
def test_an_unusable_store_raises_without_the_password(url: str) -> None:
    with pytest.raises(StoreUnavailable) as caught:
        connect_store(url)
    message = str(caught.value)
    assert "secret" not in message
    assert "\n" not in message
    assert "127.0.0.1" in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


@pytest.mark.integration
def test_a_wrong_password_is_not_echoed(mysql_server_url: str) -> None:
    url = sa.make_url(mysql_server_url).set(username="nobody_here", password="secret-pw", database="x")
    with pytest.raises(StoreUnavailable) as caught:
        connect_store(url.render_as_string(hide_password=False))
    assert "secret-pw" not in str(caught.value)


def test_a_garbage_url_is_unusable() -> None:
    with pytest.raises(StoreUnavailable, match="not usable") as caught:
        connect_store("definitely not a url with secret")
    assert "secret" not in str(caught.value)


def test_connect_store_creates_the_sqlite_folder(tmp_path: Path) -> None:
    engine = connect_store(f"sqlite:///{tmp_path / 'a' / 'b' / 'payments.db'}")
    try:
        assert (tmp_path / "a" / "b" / "payments.db").exists()
    finally:
        engine.dispose()


# --- the daily report ----------------------------------------------------------------------------


def day_rows() -> list[dict[str, object]]:
    """Five payments on DAY (latencies 100..500 ms), one the day before and one the day after."""
    rows = []
    statuses = ["APPROVED", "APPROVED", "APPROVED", "REVIEW", "DECLINED"]
    for i, status in enumerate(statuses):
        event_time = NOON + dt.timedelta(minutes=i)
        rows.append(
            scored_row(
                f"d{i}",
                status=status,
                amount=Decimal(f"{10 * (i + 1)}.00"),
                event_time=event_time,
                scored_at=event_time + dt.timedelta(milliseconds=100 * (i + 1)),
            )
        )
    rows.append(scored_row("prev", event_time=dt.datetime(2026, 2, 28, 23, 59, 59, 999_999), amount=Decimal(5000)))
    rows.append(scored_row("next", event_time=dt.datetime(2026, 3, 2), amount=Decimal(5000)))
    midnight = dt.datetime(2026, 3, 1)
    rows.append(
        scored_row(
            "midnight", event_time=midnight, scored_at=midnight + dt.timedelta(milliseconds=50), amount=Decimal(50)
        )
    )
    return rows


def test_build_daily_report_counts_amounts_and_latency(engine: sa.Engine) -> None:
    writer = ScoreWriter(engine)
    writer.write(day_rows(), [LabelRow("d3", True, NOON), LabelRow("d0", False, NOON), LabelRow("next", True, NOON)])
    report = build_daily_report(engine, DAY)
    assert report.day == DAY
    assert (report.payments, report.approved, report.review, report.declined) == (6, 4, 1, 1)
    assert report.flagged_share == pytest.approx(2 / 6)
    assert report.labelled_fraud_rate == pytest.approx(0.5)  # d3 fraud, d0 genuine; "next" is another day
    assert report.amount_total == pytest.approx(200.0)
    assert report.amount_max == pytest.approx(50.0)
    assert report.amount_mean == pytest.approx(200.0 / 6)
    latencies = [100, 200, 300, 400, 500, 50]
    assert report.latency_p50_ms == pytest.approx(np.percentile(latencies, 50))
    assert report.latency_p95_ms == pytest.approx(np.percentile(latencies, 95))
    assert report.latency_p99_ms == pytest.approx(np.percentile(latencies, 99))
    assert report.latency_p50_ms <= report.latency_p95_ms <= report.latency_p99_ms <= 500


def test_a_day_without_payments_reports_zeros(engine: sa.Engine) -> None:
    report = build_daily_report(engine, DAY)
    assert (report.payments, report.approved, report.flagged_share) == (0, 0, 0.0)
    assert report.labelled_fraud_rate is None


def test_saving_a_report_twice_keeps_one_row(engine: sa.Engine) -> None:
    writer = ScoreWriter(engine)
    writer.write(day_rows()[:2])
    save_daily_report(engine, build_daily_report(engine, DAY))
    writer.write(day_rows()[2:])
    save_daily_report(engine, build_daily_report(engine, DAY))
    save_daily_report(engine, build_daily_report(engine, DAY + dt.timedelta(days=1)))
    with engine.connect() as conn:
        rows = conn.execute(sa.select(daily_scoring_reports).order_by(daily_scoring_reports.c.day)).mappings().all()
    assert [(row["day"], row["payments"]) for row in rows] == [(DAY, 6), (DAY + dt.timedelta(days=1), 1)]
    assert rows[0]["labelled_fraud_rate"] is None
    assert rows[0]["review"] == 1


def test_the_bulk_file_escapes_what_load_data_would_misread() -> None:
    from payment_platform.store.bulk_load import tsv

    row = ["a\tb", "c\nd", "back\\slash", "nul\0", 1.5, None, dt.datetime(2026, 1, 2, 3, 4, 5, 6), 7]
    assert tsv([row]) == b"a\\tb\tc\\nd\tback\\\\slash\tnul\\0\t1.5\t\\N\t2026-01-02 03:04:05.000006\t7\n"


@pytest.mark.parametrize(
    ("error", "failure"),
    [
        (1205, "transient"),  # lock wait (a table locked by LOCK TABLES too)
        (1213, "transient"),  # deadlock
        (2013, "transient"),  # lost connection
        (2006, "transient"),
        (1142, "permanent"),  # INSERT revoked
        (1054, "permanent"),  # a dropped column
        (1146, "permanent"),  # a dropped table
    ],
)
def test_database_errors_are_transient_or_permanent_from_either_layer(error: int, failure: str) -> None:
    import pymysql

    from payment_platform.store.errors import classify, first_line

    raw = pymysql.err.OperationalError(error, "server says no")
    wrapped = sa.exc.OperationalError("LOAD DATA ...", {}, raw)
    assert classify(raw).value == failure  # the bulk load raises the driver's own error
    assert classify(wrapped).value == failure
    assert first_line(wrapped) == f"({error}) server says no"


def test_spool_files_live_in_a_folder_of_the_process_removed_at_stop_and_by_the_next_start(tmp_path: Path) -> None:
    """A scorer killed with SIGKILL leaves its spool folder behind; the next writer's start removes it."""
    import subprocess
    import sys

    from payment_platform.store import bulk_load

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"{bulk_load.SPOOL_PREFIX}{dead.stdout.strip()}-abc"
    stale.mkdir()
    (stale / "batch.tsv").write_bytes(b"x" * 1000)
    bulk_load.remove_stale_spools(tmp_path)
    assert not stale.exists()

    spool = bulk_load.spool_path()
    assert spool.parent.name.startswith(f"{bulk_load.SPOOL_PREFIX}{os.getpid()}-")
    spool.write_bytes(b"rows")
    bulk_load.remove_stale_spools(spool.parent.parent)  # a living process's folder stays
    assert spool.exists()
    bulk_load.remove_spool(spool)
    assert not spool.parent.exists()


@pytest.mark.integration
def test_a_writer_removes_its_spool_when_closed(mysql_database: str) -> None:
    engine = connect_store(mysql_database)
    writer = ScoreWriter(engine)
    assert writer._spool is not None and writer._spool.parent.exists()
    folder = writer._spool.parent
    writer.write([scored_row("s1")])
    writer.close()
    assert not folder.exists()
    engine.dispose()
