"""A restarted scorer rebuilds its feature state from the score store (issue: state survives restarts).

The scorer is simulated batch by batch: each batch's rows and the labels delivered with it are written
as the scorer writes them, then "committed". At the crash, the last written batch is not committed yet,
so the restarted scorer reads it again. The restored state must then give every later payment exactly
the features an uninterrupted state gives it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from payment_platform.features import FEATURE_NAMES, FeatureState
from payment_platform.features.definitions import DAY_MS, event_time_ms
from payment_platform.store.database import connect_store
from payment_platform.store.feature_history import read_feature_history
from payment_platform.store.writer import LabelRow, ScoreWriter, us_to_datetimes
from payment_platform.world import World

BATCH = 500
PARTITIONS = 4
LABEL_DELAY_MS = 2 * DAY_MS


@pytest.fixture(params=["sqlite", "mysql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'restore.db'}"
    else:
        url = request.getfixturevalue("mysql_database")
    engine = connect_store(url)
    yield engine
    engine.dispose()


def world_stream() -> pd.DataFrame:
    """40 days of 300 cards: enough history for every card and delayed terminal window."""
    frame = World(seed=21, n_cards=300).days(dt.date(2026, 3, 1), dt.date(2026, 4, 9))
    return frame.reset_index(drop=True)


def partition_of(cards: pd.Series) -> np.ndarray:
    return pd.util.hash_array(cards.to_numpy()).astype(np.int64) % PARTITIONS


class SimulatedScorer:
    """Feeds a FeatureState the way the scorer does: before each batch, the labels that are known by the
    batch's newest event time; then the batch. Optionally writes what it feeds, as the scorer would."""

    def __init__(self, frame: pd.DataFrame, state: FeatureState, writer: ScoreWriter | None = None) -> None:
        self.frame, self.state, self.writer = frame, state, writer
        t_ms = event_time_ms(frame["event_time"])
        self.label_order = np.argsort(t_ms + LABEL_DELAY_MS, kind="stable")
        self.label_due = (t_ms + LABEL_DELAY_MS)[self.label_order]
        self.t_ms, self.delivered = t_ms, 0
        self.partition = partition_of(frame["customer_id"])

    def run_batch(self, start: int) -> np.ndarray:
        rows = self.frame.iloc[start : start + BATCH]
        known = int(np.searchsorted(self.label_due, self.t_ms[start : start + BATCH].max(), "right"))
        fresh = self.label_order[self.delivered : known]
        self.delivered = max(self.delivered, known)
        ids = self.frame["transaction_id"].to_numpy()[fresh].tolist()
        flags = self.frame["is_fraud"].to_numpy()[fresh].astype(bool).tolist()
        self.state.add_labels(ids, flags)
        features = self.state.featurise(rows)
        if self.writer is not None:
            self._write(rows, start, ids, flags)
        return features

    def _write(self, rows: pd.DataFrame, start: int, label_ids: list[str], flags: list[bool]) -> None:
        event_times = us_to_datetimes(event_time_ms(rows["event_time"]) * 1_000)
        scored = [
            {
                "transaction_id": tx,
                "customer_id": card,
                "terminal_id": terminal,
                "amount": amount,
                "currency": "EUR",
                "event_time": event_times[i],
                "score": 0.0,
                "status": "APPROVED",
                "reasons": "",
                "model_version": "test",
                "scored_at": event_times[i],
                "kafka_partition": int(self.partition[start + i]),
                "kafka_offset": start + i,
            }
            for i, (tx, card, terminal, amount) in enumerate(
                zip(rows["transaction_id"], rows["customer_id"], rows["terminal_id"], rows["amount"], strict=True)
            )
        ]
        now = dt.datetime(2026, 5, 1)
        assert self.writer is not None
        self.writer.write(scored, [LabelRow(tx, flag, now) for tx, flag in zip(label_ids, flags, strict=True)])


def test_a_restored_state_gives_the_next_payments_the_uninterrupted_features(engine: sa.Engine) -> None:
    frame = world_stream()
    starts = list(range(0, len(frame), BATCH))
    crash = len(starts) * 2 // 3  # batches [0, crash) written; batch crash - 1 not committed

    uninterrupted = SimulatedScorer(frame, FeatureState())
    expected = [uninterrupted.run_batch(start) for start in starts]

    before = SimulatedScorer(frame, FeatureState(), ScoreWriter(engine))
    for start in starts[: crash - 1]:
        before.run_batch(start)
    committed_labels = before.delivered
    before.run_batch(starts[crash - 1])

    history = read_feature_history(engine, range(PARTITIONS), dt.timedelta(milliseconds=FeatureState().reach_ms))
    assert len(history.payments) > 0 and history.labels["is_fraud"].any()
    restored = FeatureState()
    restored.restore(history.payments, history.labels["transaction_id"].tolist(), history.labels["is_fraud"].tolist())
    after = SimulatedScorer(frame, restored)
    after.delivered = committed_labels  # the uncommitted batch's labels come again, with it
    got = [after.run_batch(start) for start in starts[crash - 1 :]]

    for want, have in zip(expected[crash - 1 :], got, strict=True):
        np.testing.assert_allclose(have, want, rtol=1e-12, atol=0)
    assert restored.active_cards == uninterrupted.state.active_cards

    # Without the restore, the same payments get different features: the test can fail.
    cold = SimulatedScorer(frame, FeatureState())
    cold.delivered = after.delivered
    cold_features = cold.run_batch(starts[crash])
    card_count_30d = FEATURE_NAMES.index("card_count_30d")
    assert (cold_features[:, card_count_30d] < expected[crash][:, card_count_30d]).any()


def test_restoring_only_some_partitions_restores_only_their_cards(engine: sa.Engine) -> None:
    frame = world_stream().iloc[: BATCH * 6]
    writer = SimulatedScorer(frame, FeatureState(), ScoreWriter(engine))
    for start in range(0, len(frame), BATCH):
        writer.run_batch(start)
    history = read_feature_history(engine, [1], dt.timedelta(milliseconds=FeatureState().reach_ms))
    cards = set(history.payments["customer_id"])
    assert cards and cards == set(frame["customer_id"][partition_of(frame["customer_id"]) == 1])


def test_restoring_an_empty_store_gives_an_empty_state(engine: sa.Engine) -> None:
    history = read_feature_history(engine, range(PARTITIONS), dt.timedelta(days=40))
    state = FeatureState()
    state.restore(history.payments, [], [])
    assert state.active_cards == 0
