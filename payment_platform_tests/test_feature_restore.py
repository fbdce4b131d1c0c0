"""A scorer that starts (or restarts, or takes over shards) rebuilds its state from the score store: the
cards of its shards from their stored payments, the terminals of every card from every scorer's stored
payments and labels (store/terminal_feed.py). The features it then gives the next payments must equal the
offline driver's on the whole history, on SQLite and on the real MariaDB."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from payment_platform.features import FEATURE_NAMES, OnlineFeatures, compute_features
from payment_platform.features.definitions import CARD_REACH_MS, DAY_MS, event_time_us
from payment_platform.features.labels import label_events_of
from payment_platform.features.parity import release_batches
from payment_platform.features.terminal_feed import TerminalFeed, horizons_us
from payment_platform.store.database import connect_store
from payment_platform.store.event_time import datetime_of
from payment_platform.store.rows import LabelRow, ScoredBatch
from payment_platform.store.stream_state import card_history
from payment_platform.store.terminal_feed import StoreTerminalSource
from payment_platform.store.writer import ScoreWriter
from payment_platform.world import World

SHARDS = 4
RESTART = pd.Timestamp("2026-04-10", tz="UTC")


@pytest.fixture(params=["sqlite", "mysql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    url = (
        f"sqlite:///{tmp_path / 'restore.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("mysql_database")
    )
    engine = connect_store(url)
    yield engine
    engine.dispose()


def history() -> tuple[pd.DataFrame, pd.DataFrame]:
    """45 days of 300 cards, and their labels: a week after each payment, some corrected a day later."""
    frame = World(seed=21, n_cards=300).days(dt.date(2026, 3, 1), dt.date(2026, 4, 14)).reset_index(drop=True)
    frame["shard"] = pd.util.hash_array(frame["customer_id"].to_numpy()).astype(np.int64) % SHARDS
    labels = label_events_of(frame)
    corrected = labels.sample(frac=0.01, random_state=1).assign(is_fraud=lambda f: ~f["is_fraud"])
    corrected["labelled_us"] += DAY_MS * 1_000
    labels = pd.concat([labels, corrected], ignore_index=True)
    labels["seq"] = np.arange(len(labels))
    return frame, labels


def write(writer: ScoreWriter, rows: pd.DataFrame, labels: pd.DataFrame) -> None:
    n = len(rows)
    writer.write(
        ScoredBatch(
            transaction_id=rows["transaction_id"].tolist(),
            customer_id=rows["customer_id"].tolist(),
            terminal_id=rows["terminal_id"].tolist(),
            amount=rows["amount"].to_numpy(dtype=np.float64),
            currency=rows["currency"].tolist(),
            event_us=event_time_us(rows["event_time"]),
            score=np.zeros(n),
            status=["APPROVED"] * n,
            reasons=[""] * n,
            model_version="test",
            kafka_partition=rows["shard"].to_numpy(),
            kafka_offset=np.arange(n, dtype=np.int64),
            shard=rows["shard"].to_numpy(),
            scored_at=dt.datetime(2026, 5, 1),
        ),
        [
            LabelRow(tx, bool(fraud), datetime_of(int(at)))
            for tx, fraud, at in zip(labels["transaction_id"], labels["is_fraud"], labels["labelled_us"], strict=True)
        ],
    )


def restored(engine: sa.Engine, shards: list[int], restart_ms: int) -> tuple[OnlineFeatures, TerminalFeed]:
    """What a scorer starting at restart_ms reads back: its shards' cards, every terminal."""
    online = OnlineFeatures()
    for shard in shards:
        cards = card_history(engine, shard, (restart_ms - CARD_REACH_MS - DAY_MS) * 1_000)
        online.cards(shard).add(cards.cards, cards.t_ms.tolist(), cards.cents.tolist())
    feed = TerminalFeed(online.terminals, StoreTerminalSource(engine))
    start_ms = restart_ms - DAY_MS
    feed.start_for(start_ms)
    return online, feed


def test_a_restored_scorer_gives_the_next_payments_their_offline_features(engine: sa.Engine) -> None:
    frame, labels = history()
    before = frame["event_time"] < RESTART
    known = labels["labelled_us"].to_numpy() < event_time_us(pd.Series([RESTART]))[0]
    writer = ScoreWriter(engine)
    write(writer, frame[before], labels[known])

    online, feed = restored(engine, list(range(SHARDS)), int(RESTART.value // 1_000_000))
    rest = frame[~before]
    t_ms = event_time_us(rest["event_time"]) // 1_000
    late_labels = labels[~known].sort_values("labelled_us")
    got = np.empty((len(rest), len(FEATURE_NAMES)))
    for rows in release_batches(t_ms, 400):
        batch = rest.iloc[rows]
        # The labels the group has written by the time this batch may see them (other scorers' progress).
        due = late_labels["labelled_us"].to_numpy() < horizons_us(int(t_ms[rows].max()))[1]
        write(writer, batch.iloc[:0], late_labels[due])
        late_labels = late_labels[~due]
        feed.advance_for(int(t_ms[rows].max()))
        for shard, part in batch.groupby("shard"):
            where = rows[batch["shard"].to_numpy() == shard]
            got[where] = online.featurise(
                part["customer_id"].tolist(),
                part["terminal_id"].tolist(),
                t_ms[where],
                part["amount"].to_numpy(),
                int(shard),
            )
        write(writer, batch, late_labels.iloc[:0])

    expected = compute_features(frame, labels).loc[rest.index].to_numpy()
    np.testing.assert_array_equal(got, expected)
    assert expected[:, FEATURE_NAMES.index("terminal_fraud_share_30d")].max() > 0
    assert online.terminals.tracked_frauds > 0


def test_restoring_some_shards_restores_only_their_cards(engine: sa.Engine) -> None:
    frame, labels = history()
    write(ScoreWriter(engine), frame, labels)
    online, _ = restored(engine, [1, 3], int(frame["event_time"].max().value // 1_000_000))
    recent = frame[frame["event_time"] > frame["event_time"].max() - pd.Timedelta(days=31)]
    mine = recent[recent["shard"].isin([1, 3])]["customer_id"].nunique()
    assert online.active_cards == mine and set(online.shards) == {1, 3}


def test_an_empty_store_restores_an_empty_state(engine: sa.Engine) -> None:
    online, feed = restored(engine, [0, 1], 1_780_000_000_000)
    feed.advance_for(1_780_000_000_000)
    assert online.active_cards == 0 and len(online.terminals) == 0
