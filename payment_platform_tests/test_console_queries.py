"""Each console query against a plain computation of the seed console's panel it replaces.

The seed ran full-table GROUP BYs; the console reads pre-aggregates it maintains itself and recent
primary-key ranges. Here both are computed on the same rows (synthetic, shaped like the scorer's output,
a few of them added out of id order as two scorers would commit them) and must agree: exactly for counts,
sums, maxima and rows, within one bucket (12 %) for latency percentiles.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import math
import threading
import uuid
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from payment_platform.console import leases, lifetime_totals, recent_windows, review_cases, verdicts, window_aggregates
from payment_platform.console.export import EXPORT_COLUMNS, ExportFilter, csv_chunks, csv_field, export_rows
from payment_platform.console.investigation import card_timeline
from payment_platform.console.live_quality import measure_day
from payment_platform.console.portable_sql import latency_bucket_bounds, latency_bucket_of
from payment_platform.console.rollup import Rollup
from payment_platform.console.sample_rows import SCORED_COLUMNS, label_rows, sample_rows
from payment_platform.console.store import ConsoleStore, open_console_store
from payment_platform.console.tables import minute_histograms, review_items, reviews
from payment_platform.console.verdict_labels import AnalystLabel, LabelNotDelivered
from payment_platform.model.metrics import average_precision, roc_auc
from payment_platform.store.tables import scored_transactions, transaction_labels

NOW = dt.datetime(2026, 11, 30, 12, 0, 0)
ROWS = 6_000
LABEL_DELAY = dt.timedelta(hours=1)


@contextlib.contextmanager
def console_store(
    kind: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConsoleStore]:
    """A fresh store with the console's tables: a MariaDB database of its own, or an SQLite file."""
    if kind == "sqlite":
        store = open_console_store(f"sqlite:///{tmp_path_factory.mktemp('console') / 'payments.db'}")
        try:
            yield store
        finally:
            store.dispose()
        return
    server = request.getfixturevalue("mysql_server_url")
    name = f"pp_console_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server)
    with admin.begin() as conn:
        conn.execute(sa.schema.CreateSchema(name))
    try:
        store = open_console_store(sa.make_url(server).set(database=name).render_as_string(hide_password=False))
        try:
            yield store
        finally:
            store.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(sa.schema.DropSchema(name, if_exists=True))
        admin.dispose()


@pytest.fixture(params=["mariadb", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStore]:
    with console_store(request.param, request, tmp_path_factory) as store:
        yield store


def insert_rows(store: ConsoleStore, rows: pd.DataFrame) -> None:
    with store.writer.begin() as conn:
        conn.execute(scored_transactions.insert(), rows[SCORED_COLUMNS].to_dict("records"))


def insert_with_ids(store: ConsoleStore, rows: pd.DataFrame, ids: list[int]) -> None:
    """Rows with the ids given: what a writer that took them earlier commits later."""
    records = rows[SCORED_COLUMNS].to_dict("records")
    with store.writer.begin() as conn:
        conn.execute(scored_transactions.insert(), [{**r, "id": i} for r, i in zip(records, ids, strict=True)])


def stored(store: ConsoleStore, sample: pd.DataFrame) -> pd.DataFrame:
    """The table as it is, read plainly (what the seed's queries would have grouped), with the sample's truth."""
    with store.reader.connect() as conn:
        frame = pd.DataFrame(conn.execute(sa.select(scored_transactions)).mappings().all())
    frame["latency_ms"] = (frame["scored_at"] - frame["event_time"]).dt.total_seconds() * 1000
    frame["amount"] = frame["amount"].astype(float)
    return frame.merge(sample[["transaction_id", "is_fraud"]], on="transaction_id")


@pytest.fixture(scope="module", params=["mariadb", "sqlite"])
def filled(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ConsoleStore, pd.DataFrame]]:
    """Rows over the 3 hours before NOW, with their fraud labels, folded in three rounds; 100 of them are
    committed after rows with higher ids were folded (a second scorer committing late). Read only."""
    with console_store(request.param, request, tmp_path_factory) as store:
        rows = sample_rows(ROWS, end=NOW, span=dt.timedelta(hours=3), seed=1)
        first, late, last = rows.iloc[:4_000], rows.iloc[4_000:4_100], rows.iloc[4_100:]
        insert_rows(store, first)
        rollup = Rollup(store.writer)
        rollup.catch_up(chunk_rows=1_500)
        insert_with_ids(store, last, list(range(4_101, ROWS + 1)))
        rollup.catch_up(chunk_rows=700)
        assert rollup.state().pending_gaps == 1  # ids 4,001..4,100
        insert_with_ids(store, late, list(range(4_001, 4_101)))
        rollup.catch_up()
        assert rollup.state().pending_gaps == 0
        with store.writer.begin() as conn:
            conn.execute(transaction_labels.insert(), label_rows(rows, LABEL_DELAY, NOW).to_dict("records"))
        yield store, stored(store, rows)


def reference_window(frame: pd.DataFrame, window: window_aggregates.Window) -> pd.DataFrame:
    minute = (frame["scored_at"] - dt.datetime(1970, 1, 1)).dt.total_seconds() // 60
    return frame[(minute >= window.first_minute) & (minute <= window.last_minute)]


# --- lifetime panels ---------------------------------------------------------------------------------------


def test_status_totals_and_latency_equal_the_seed_full_table_queries(filled: tuple[ConsoleStore, pd.DataFrame]) -> None:
    store, frame = filled
    with store.reader.connect() as conn:
        totals = lifetime_totals.status_totals_all_time(conn)
    # Seed: SELECT status, COUNT(*) ... GROUP BY status; AVG and MAX of the latency over the table.
    assert totals.payments == {s: int((frame["status"] == s).sum()) for s in lifetime_totals.STATUSES}
    assert totals.total == ROWS
    assert totals.latency_avg_ms == pytest.approx(frame["latency_ms"].mean(), rel=1e-9)
    assert totals.latency_max_ms == pytest.approx(frame["latency_ms"].max(), abs=1e-3)


def test_reason_breakdown_counts_each_code_like_the_seed_breakdown(filled: tuple[ConsoleStore, pd.DataFrame]) -> None:
    store, frame = filled
    window = window_aggregates.Window(NOW, 60)
    with store.reader.connect() as conn:
        breakdown = window_aggregates.reason_breakdown(conn, window)

    def codes(rows: pd.DataFrame) -> Counter[str]:
        return Counter(code for reasons in rows["reasons"] for code in dict.fromkeys(reasons.split(",")) if code)

    lifetime, recent = codes(frame), codes(reference_window(frame, window))
    assert {r.reason: r.all_time for r in breakdown} == dict(lifetime)
    assert {r.reason: r.in_window for r in breakdown} == {code: recent.get(code, 0) for code in lifetime}
    assert {"model_score", "velocity_10m"} <= set(lifetime)


def test_top_risk_cards_rank_by_declines_like_the_seed(filled: tuple[ConsoleStore, pd.DataFrame]) -> None:
    store, frame = filled
    with store.reader.connect() as conn:
        top = lifetime_totals.top_risk_cards(conn, limit=10)
    by_card = frame.groupby("customer_id").agg(
        payments=("status", "size"),
        declined=("status", lambda s: int((s == "DECLINED").sum())),
        review=("status", lambda s: int((s == "REVIEW").sum())),
        max_score=("score", "max"),
        mean_score=("score", "mean"),
    )
    # Seed: ORDER BY fraud_tx (DECLINED) DESC LIMIT 10; ties here go to REVIEW, then the highest score.
    expected = by_card.sort_values(["declined", "review", "max_score"], ascending=False).head(10)
    assert [c.customer_id for c in top] == list(expected.index)
    for card in top:
        row = by_card.loc[card.customer_id]
        assert (card.payments, card.declined, card.review) == (row.payments, row.declined, row.review)
        assert card.average_score == pytest.approx(row.mean_score)


def test_one_card_equals_the_seed_customer_investigation(filled: tuple[ConsoleStore, pd.DataFrame]) -> None:
    store, frame = filled
    busiest = frame["customer_id"].value_counts().index[0]
    with store.reader.connect() as conn:
        risk = lifetime_totals.card_risk(conn, busiest)
        timeline = card_timeline(conn, busiest, limit=1_000)
    mine = frame[frame["customer_id"] == busiest]
    # Seed: COUNT(*), SUM(status = 'DECLINED'), AVG(score) WHERE customer_id = :customer_id.
    assert risk is not None
    assert (risk.payments, risk.declined) == (len(mine), int((mine["status"] == "DECLINED").sum()))
    assert risk.average_score == pytest.approx(mine["score"].mean())
    assert [e.transaction_id for e in timeline] == list(
        mine.sort_values(["event_time", "id"], ascending=False)["transaction_id"]
    )


# --- windows -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("minutes", [15, 60, 360, 1440])
def test_decisions_per_minute_by_status_equal_a_plain_count(
    filled: tuple[ConsoleStore, pd.DataFrame], minutes: int
) -> None:
    store, frame = filled
    window = window_aggregates.Window(NOW, minutes)
    with store.reader.connect() as conn:
        series = window_aggregates.decisions_over_time(conn, window)
    recent = reference_window(frame, window)
    assert series.payments == {s: int((recent["status"] == s).sum()) for s in lifetime_totals.STATUSES}
    minute = (recent["scored_at"] - dt.datetime(1970, 1, 1)).dt.total_seconds() // 60
    point = (minute - minute % window.step).astype(int)
    for status in lifetime_totals.STATUSES:
        counts = recent[recent["status"] == status].groupby(point[recent["status"] == status]).size()
        got = dict(zip(series.minutes, series.per_minute[status], strict=True))
        for p, value in got.items():
            assert value * window.step == pytest.approx(counts.get(p, 0))
    assert series.latency_max_ms == pytest.approx(recent["latency_ms"].max(), abs=1e-3)


@pytest.mark.parametrize("minutes", [180, 1440])
def test_latency_percentiles_are_within_one_bucket_of_the_exact_ones(
    filled: tuple[ConsoleStore, pd.DataFrame], minutes: int
) -> None:
    store, frame = filled
    window = window_aggregates.Window(NOW, minutes)
    with store.reader.connect() as conn:
        latency = window_aggregates.latency_over_time(conn, window)
    recent = reference_window(frame, window)["latency_ms"].to_numpy()
    for name, q in (("p50", 50), ("p95", 95), ("p99", 99)):
        exact = float(np.percentile(recent, q))
        assert latency.overall[name] is not None
        assert abs(math.log(latency.overall[name] / exact)) <= math.log(10 ** (1 / 20)) + 1e-9, (name, exact)
    assert len(latency.minutes) == len(latency.p50) == minutes // window.step


def test_latency_buckets_in_sql_are_the_python_buckets(filled: tuple[ConsoleStore, pd.DataFrame]) -> None:
    store, frame = filled
    with store.reader.connect() as conn:
        counts = dict(
            conn.execute(
                sa.select(minute_histograms.c.bucket, sa.func.sum(minute_histograms.c.payments))
                .where(minute_histograms.c.metric == "latency", minute_histograms.c.span == 1)
                .group_by(minute_histograms.c.bucket)
            ).all()
        )
    expected = Counter(latency_bucket_of(v) for v in frame["latency_ms"])
    # A value on a bucket's edge may fall either side in the database's floating point.
    assert sum(int(n) for n in counts.values()) == ROWS
    assert sum(abs(int(counts.get(b, 0)) - expected.get(b, 0)) for b in set(counts) | set(expected)) <= 4
    low, high = latency_bucket_bounds(41)
    assert latency_bucket_of(low) == 41 and latency_bucket_of(high * 0.9999) == 41


@pytest.mark.parametrize("minutes", [120, 1440])
def test_score_distribution_equals_a_histogram(filled: tuple[ConsoleStore, pd.DataFrame], minutes: int) -> None:
    store, frame = filled
    window = window_aggregates.Window(NOW, minutes)
    with store.reader.connect() as conn:
        distribution = window_aggregates.score_distribution(conn, window)
    scores = reference_window(frame, window)["score"].to_numpy()
    expected = np.minimum(np.floor(scores * 50), 49).astype(int)
    assert distribution.payments == [int((expected == b).sum()) for b in range(50)]


@pytest.mark.parametrize("minutes", [1, 5, 15])
def test_recent_window_panels_equal_the_seed_queries(filled: tuple[ConsoleStore, pd.DataFrame], minutes: int) -> None:
    store, frame = filled
    since = NOW - dt.timedelta(minutes=minutes)
    with store.reader.connect() as conn:
        count = recent_windows.payments_since(conn, since)
        high = {q: recent_windows.high_risk_payments(conn, since, min_score=q) for q in (0.8, 0.1)}
        velocity = recent_windows.velocity_suspects(conn, since, min_payments=2)
    recent = frame[frame["scored_at"] >= since]
    # Seed: COUNT(*) WHERE created_at >= NOW() - INTERVAL 1 MINUTE.
    assert count == len(recent) > 0
    # Seed: score >= 0.8 in the window ORDER BY score DESC LIMIT 50 (and a lower score, so that rows are there).
    for min_score, payments in high.items():
        risky = recent[recent["score"] >= min_score].sort_values(["score", "id"], ascending=False).head(50)
        assert [p.transaction_id for p in payments] == list(risky["transaction_id"])
    assert high[0.1]
    # Seed: GROUP BY customer_id HAVING COUNT(*) >= n ORDER BY COUNT(*) DESC.
    counts = recent.groupby("customer_id").size()
    assert {(v.customer_id, v.payments) for v in velocity} == set(counts[counts >= 2].items())
    assert [v.payments for v in velocity] == sorted((v.payments for v in velocity), reverse=True)
    if minutes == 15:
        assert velocity


def test_a_busy_window_is_shortened_to_its_latest_minutes(
    filled: tuple[ConsoleStore, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, frame = filled
    monkeypatch.setattr(recent_windows, "MAX_WINDOW_ROWS", 200)
    asked = NOW - dt.timedelta(minutes=15)
    with store.reader.connect() as conn:
        window = recent_windows.recent_window(conn, asked)
    assert window.shortened and window.since > asked and window.since.second == 0
    assert 0 < int((frame["scored_at"] >= window.since).sum()) <= 200 < int((frame["scored_at"] >= asked).sum())
    monkeypatch.setattr(recent_windows, "MAX_WINDOW_ROWS", 100_000)
    with store.reader.connect() as conn:
        assert recent_windows.recent_window(conn, asked) == recent_windows.RecentWindow(
            asked, False, int((frame["scored_at"] >= asked.replace(second=0, microsecond=0)).sum())
        )


def test_recent_panels_refuse_to_scan_while_the_aggregates_are_far_behind(store: ConsoleStore) -> None:
    insert_rows(store, sample_rows(200, end=NOW, span=dt.timedelta(minutes=30), seed=2))
    with store.reader.connect() as conn, pytest.raises(recent_windows.AggregatesBehind):
        recent_windows.payments_since(conn, NOW - dt.timedelta(minutes=1))  # never folded: no cursor yet


# --- the rollup itself -------------------------------------------------------------------------------------


def test_a_restarted_or_concurrent_rollup_folds_every_row_once(store: ConsoleStore) -> None:
    rows = sample_rows(3_000, end=NOW, span=dt.timedelta(hours=1), seed=3)
    insert_rows(store, rows.iloc[:1_000])
    Rollup(store.writer).step(400)  # a console that stops after one step
    insert_rows(store, rows.iloc[1_000:])
    failures: list[BaseException] = []

    def console() -> None:
        try:
            Rollup(store.writer).catch_up(chunk_rows=300)
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    workers = [threading.Thread(target=console) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert not failures
    with store.reader.connect() as conn:
        totals = lifetime_totals.status_totals_all_time(conn)
        items = conn.execute(sa.select(sa.func.count()).select_from(review_items)).scalar_one()
    assert totals.payments == {s: int((rows["status"] == s).sum()) for s in lifetime_totals.STATUSES}
    assert items == int((rows["status"] == "REVIEW").sum())


def test_a_gap_that_never_fills_is_given_up_after_the_grace(store: ConsoleStore) -> None:
    clock = {"now": NOW}
    rollup = Rollup(store.writer, gap_grace=dt.timedelta(minutes=10), clock=lambda: clock["now"])
    rows = sample_rows(30, end=NOW, span=dt.timedelta(minutes=5), seed=4)
    insert_with_ids(store, rows, [i + (100 if i >= 10 else 1) for i in range(len(rows))])
    rollup.catch_up()
    assert rollup.state().pending_gaps == 1  # ids 11..109: a skipped batch, or a late one
    clock["now"] = NOW + dt.timedelta(minutes=11)
    rollup.step()
    assert rollup.state().pending_gaps == 0


def test_the_aggregates_are_rebuilt_when_the_store_is_emptied(store: ConsoleStore) -> None:
    insert_rows(store, sample_rows(500, end=NOW, span=dt.timedelta(hours=1), seed=5))
    rollup = Rollup(store.writer)
    rollup.catch_up()
    with store.writer.begin() as conn:
        conn.execute(scored_transactions.delete())
    rollup.catch_up()
    with store.reader.connect() as conn:
        assert lifetime_totals.status_totals_all_time(conn).total == 0
    fresh = sample_rows(50, end=NOW, span=dt.timedelta(hours=1), seed=6, id_prefix="again")
    insert_with_ids(store, fresh, list(range(1, 51)))  # ids start again from 1: a recreated table
    rollup.catch_up()
    with store.reader.connect() as conn:
        assert lifetime_totals.status_totals_all_time(conn).total == 50


# --- export ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "selection",
    [
        ExportFilter(status="REVIEW", limit=None),
        ExportFilter(limit=250),
        ExportFilter(since=NOW - dt.timedelta(minutes=50), until=NOW - dt.timedelta(minutes=20), limit=None),
        ExportFilter(status="APPROVED", since=NOW - dt.timedelta(minutes=30), limit=40),
        ExportFilter(customer_id="__busiest__", limit=None),
    ],
    ids=["status", "limit", "time range", "status+range+limit", "card"],
)
def test_the_streamed_export_equals_the_filtered_table(
    filled: tuple[ConsoleStore, pd.DataFrame], selection: ExportFilter
) -> None:
    store, frame = filled
    if selection.customer_id == "__busiest__":
        selection = ExportFilter(customer_id=frame["customer_id"].value_counts().index[0], limit=None)
    text = b"".join(csv_chunks(export_rows(store.reader, selection, chunk=7), rows_per_chunk=5)).decode()
    exported = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    assert list(exported.columns) == EXPORT_COLUMNS
    expected = frame
    if selection.status:
        expected = expected[expected["status"] == selection.status]
    if selection.customer_id:
        expected = expected[expected["customer_id"] == selection.customer_id]
    if selection.since:
        expected = expected[expected["event_time"] >= selection.since]
    if selection.until:
        expected = expected[expected["event_time"] < selection.until]
    order = ["event_time", "id"] if selection.by_event_time else ["id"]
    expected = expected.sort_values(order, ascending=False).head(selection.limit or len(expected))
    assert list(exported["transaction_id"]) == list(expected["transaction_id"])
    assert list(exported["status"]) == list(expected["status"])
    assert list(exported["amount"]) == [f"{a:.2f}" for a in expected["amount"]]
    labelled = set(label_rows(frame, LABEL_DELAY, NOW)["transaction_id"])
    assert list(exported["is_fraud"]) == ["1" if tx in labelled else "" for tx in expected["transaction_id"]]
    assert len(exported) > 0


def test_exported_text_never_runs_as_a_spreadsheet_formula() -> None:
    assert csv_field("customer_id", '=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert csv_field("terminal_id", "@SUM(A1)") == "'@SUM(A1)"
    assert csv_field("customer_id", "C-1") == "C-1"
    assert csv_field("event_time", dt.datetime(2026, 1, 2, 3, 4, 5, 6)) == "2026-01-02T03:04:05.000006Z"


# --- the review desk ---------------------------------------------------------------------------------------


class RecordingSink:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[AnalystLabel] = []
        self.fail = fail

    def publish(self, labels: list[AnalystLabel]) -> None:
        if self.fail:
            raise LabelNotDelivered("broker down")
        self.sent.extend(labels)


def test_cases_group_review_payments_by_card_riskiest_first(filled: tuple[ConsoleStore, pd.DataFrame]) -> None:
    store, frame = filled
    with store.reader.connect() as conn:
        queue = review_cases.review_queue(conn, NOW, limit=500)
        cases, payments = review_cases.open_cases(conn)
    review = frame[frame["status"] == "REVIEW"]
    by_card = review.groupby("customer_id")["score"].agg(["size", "max"])
    assert (cases, payments) == (len(by_card), len(review))
    assert {(c.customer_id, c.open_payments, c.max_score) for c in queue} == set(
        zip(by_card.index, by_card["size"], by_card["max"], strict=True)
    )
    assert [c.max_score for c in queue] == sorted((c.max_score for c in queue), reverse=True)


def test_a_verdict_sends_labels_writes_the_audit_trail_and_closes_the_case(store: ConsoleStore) -> None:
    insert_rows(store, sample_rows(3_000, end=NOW, span=dt.timedelta(hours=2), seed=8))
    Rollup(store.writer).catch_up()
    with store.reader.connect() as conn:
        case = review_cases.review_queue(conn, NOW, limit=1)[0]
        loaded = review_cases.load_case(conn, case.customer_id, NOW)
    txs = [p.transaction_id for p in loaded.open_payments]
    assert len(txs) == case.open_payments
    leases.take_case(store.writer, case.customer_id, "alice", NOW)
    with pytest.raises(leases.CaseTaken, match="alice"):
        leases.take_case(store.writer, case.customer_id, "bob", NOW + dt.timedelta(minutes=1))
    sink = RecordingSink()
    with pytest.raises(leases.CaseTaken):
        verdicts.record_verdict(
            store.writer,
            sink,
            customer_id=case.customer_id,
            analyst="bob",
            verdict="fraud",
            note="",
            transaction_ids=txs,
            now=NOW,
        )
    with pytest.raises(LabelNotDelivered):
        verdicts.record_verdict(
            store.writer,
            RecordingSink(fail=True),
            customer_id=case.customer_id,
            analyst="alice",
            verdict="fraud",
            note="n",
            transaction_ids=txs,
            now=NOW,
        )
    with store.reader.connect() as conn:  # a verdict the broker refused left nothing behind
        assert review_cases.open_payments_of(conn, case.customer_id) == len(txs)
        assert conn.execute(sa.select(sa.func.count()).select_from(reviews)).scalar_one() == 0
    judged = verdicts.record_verdict(
        store.writer,
        sink,
        customer_id=case.customer_id,
        analyst="alice",
        verdict="fraud",
        note="called the cardholder",
        transaction_ids=txs,
        now=NOW,
    )
    assert judged == len(txs)
    assert [(label.transaction_id, label.is_fraud, label.source) for label in sink.sent] == [
        (tx, True, "analyst:alice") for tx in txs
    ]
    with store.reader.connect() as conn:
        audit = conn.execute(
            sa.select(reviews.c.transaction_id, reviews.c.analyst, reviews.c.verdict, reviews.c.note)
        ).all()
        assert review_cases.open_payments_of(conn, case.customer_id) == 0
        assert case.customer_id not in {c.customer_id for c in review_cases.review_queue(conn, NOW, limit=10_000)}
    assert sorted(audit) == sorted((tx, "alice", "fraud", "called the cardholder") for tx in txs)
    with pytest.raises(verdicts.NothingToReview):
        verdicts.record_verdict(
            store.writer,
            sink,
            customer_id=case.customer_id,
            analyst="alice",
            verdict="genuine",
            note="",
            transaction_ids=txs,
            now=NOW,
        )


def test_an_expired_lease_can_be_taken_over(store: ConsoleStore) -> None:
    leases.take_case(store.writer, "C1", "alice", NOW)
    renewed = leases.take_case(store.writer, "C1", "alice", NOW + dt.timedelta(minutes=5))
    assert renewed.taken_at == NOW and renewed.expires_at == NOW + dt.timedelta(minutes=5) + leases.LEASE_TTL
    later = NOW + dt.timedelta(minutes=5) + leases.LEASE_TTL + dt.timedelta(seconds=1)
    lease = leases.take_case(store.writer, "C1", "bob", later)
    assert (lease.analyst, lease.taken_at) == ("bob", later)


def test_the_label_value_follows_the_contract() -> None:
    label = AnalystLabel("tx-1", True, dt.datetime(2026, 11, 30, 12, 0, 0, 5), "alice")
    assert json.loads(label.value()) == {
        "transaction_id": "tx-1",
        "is_fraud": True,
        "labelled_at": "2026-11-30T12:00:00.000005Z",
        "source": "analyst:alice",
    }


# --- live quality ------------------------------------------------------------------------------------------


def test_live_quality_of_a_day_equals_the_metrics_on_its_rows(store: ConsoleStore) -> None:
    day = dt.date(2026, 11, 20)
    rows = sample_rows(3_000, end=dt.datetime(2026, 11, 21), span=dt.timedelta(days=1), seed=7)
    insert_rows(store, rows)
    labels = label_rows(rows, dt.timedelta(days=7), NOW)
    with store.writer.begin() as conn:
        conn.execute(transaction_labels.insert(), labels.to_dict("records"))
    quality = measure_day(store.reader, day, NOW)
    truth = rows["transaction_id"].isin(set(labels["transaction_id"])).astype(int)
    assert (quality.payments, quality.frauds) == (len(rows), int(truth.sum()))
    assert quality.roc_auc == pytest.approx(roc_auc(truth, rows["score"]))
    assert quality.average_precision == pytest.approx(average_precision(truth, rows["score"]))
    alerts = rows["status"] != "APPROVED"
    assert quality.precision_of_alerts == pytest.approx(truth[alerts].mean())
