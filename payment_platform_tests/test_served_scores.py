"""`verify`'s rescoring of stored rows, on an embedded (SQLite) store: rows stored with their offline scores
verify, a tampered score is found, and rows of a model missing from the registry are counted apart."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from payment_platform.backtest.served_scores import rescore_stored, stored_range
from payment_platform.features import compute_features
from payment_platform.features.labels import label_events_of
from payment_platform.model import ModelRegistry
from payment_platform.store.database import connect_store
from payment_platform.store.tables import label_events, scored_transactions
from payment_platform.stream.decisions import score_and_decide
from payment_platform.stream.model_source import bind
from payment_platform.world import World

FIRST, LAST = dt.date(2026, 9, 1), dt.date(2026, 9, 20)


@pytest.fixture()
def store(tmp_path: Path, model_dir: Path) -> tuple[str, ModelRegistry, pd.DataFrame]:
    """Twenty days of a small world stored as the scorer would have: offline scores, labels a week later."""
    payments = World(seed=12, n_cards=150).days(FIRST, LAST)
    registry = ModelRegistry(model_dir)
    loaded = registry.load_production()
    assert loaded is not None
    features = compute_features(payments).to_numpy()
    score, decisions = score_and_decide(bind(loaded), features, payments["amount"].to_numpy())
    url = f"sqlite:///{tmp_path / 'payments.db'}"
    engine = connect_store(url)
    naive = payments["event_time"].dt.tz_localize(None).dt.to_pydatetime()
    rows = [
        {
            "transaction_id": tx,
            "customer_id": card,
            "terminal_id": terminal,
            "amount": Decimal(f"{amount:.2f}"),
            "currency": "EUR",
            "event_time": at,
            "score": float(s),
            "status": status,
            "reasons": reasons,
            "model_version": loaded.version,
            "scored_at": at,
        }
        for tx, card, terminal, amount, at, s, status, reasons in zip(
            payments["transaction_id"],
            payments["customer_id"],
            payments["terminal_id"],
            payments["amount"],
            naive,
            score,
            decisions.status,
            decisions.reasons,
            strict=True,
        )
    ]
    labels = label_events_of(payments)
    label_rows = [
        {
            "transaction_id": tx,
            "is_fraud": bool(fraud),
            "labelled_at": dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(us)),
            "received_at": dt.datetime(2026, 11, 1),
        }
        for tx, fraud, us in zip(labels["transaction_id"], labels["is_fraud"], labels["labelled_us"], strict=True)
    ]
    with engine.begin() as conn:
        conn.execute(sa.insert(scored_transactions), rows)
        conn.execute(sa.insert(label_events), label_rows)
    engine.dispose()
    return url, registry, payments


def whole_range(url: str) -> tuple[dt.datetime, dt.datetime]:
    stored = stored_range(url)
    assert stored is not None
    return stored[0], stored[1] + dt.timedelta(microseconds=1)


def test_stored_offline_scores_verify(store: tuple[str, ModelRegistry, pd.DataFrame]) -> None:
    url, registry, payments = store
    rescored = rescore_stored(url, registry, *whole_range(url))
    assert len(rescored.rows) == len(payments)
    assert (payments["is_fraud"] == 1).sum() > 0
    assert not rescored.differing.any() and rescored.missing_versions == ()
    assert "0 differ from the offline rescoring" in rescored.summary()


def test_a_range_is_rescored_with_the_history_its_windows_reach(store: tuple[str, ModelRegistry, pd.DataFrame]) -> None:
    url, registry, payments = store
    start = dt.datetime.combine(LAST, dt.time())
    rescored = rescore_stored(url, registry, start, start + dt.timedelta(days=1))
    assert len(rescored.rows) == int((payments["event_time"].dt.date == LAST).sum())
    assert not rescored.differing.any()  # the card windows of the last day reach 30 days back


def test_a_tampered_score_is_found_and_a_missing_model_is_counted(
    store: tuple[str, ModelRegistry, pd.DataFrame],
) -> None:
    url, registry, payments = store
    tampered, orphan = payments["transaction_id"].iloc[[100, 200]]
    engine = sa.create_engine(url)
    t = scored_transactions.c
    with engine.begin() as conn:
        conn.execute(sa.update(scored_transactions).where(t.transaction_id == tampered).values(score=0.5))
        conn.execute(sa.update(scored_transactions).where(t.transaction_id == orphan).values(model_version="gone"))
    engine.dispose()

    rescored = rescore_stored(url, registry, *whole_range(url))

    assert rescored.rows.loc[rescored.differing, "transaction_id"].tolist() == [tampered]
    assert rescored.missing_versions == ("gone",)
    assert rescored.rows.loc[rescored.unverifiable, "transaction_id"].tolist() == [orphan]
    assert np.isnan(rescored.rows.loc[rescored.unverifiable, "offline_score"]).all()
    assert "1 differ" in rescored.summary() and "not in the registry: gone" in rescored.summary()


def test_training_from_the_store_dates_each_label_when_it_came(tmp_path: Path) -> None:
    """Training from the database computes the terminal fraud shares from each label's own labelled_at, as
    the live path did; an unlabelled payment's genuine label is dated the standard week after it."""
    from payment_platform.model.pipeline import TrainingWindow
    from payment_platform.store.tables import transaction_labels
    from payment_platform.training_data import read_labelled_payments

    url = f"sqlite:///{tmp_path / 'payments.db'}"
    engine = connect_store(url)
    paid = dt.datetime(2026, 9, 1, 12)
    row = {"customer_id": "c", "terminal_id": "t", "amount": Decimal("10.00"), "currency": "EUR", "score": 0.1}
    row |= {"status": "APPROVED", "reasons": "", "model_version": "v", "event_time": paid, "scored_at": paid}
    with engine.begin() as conn:
        conn.execute(sa.insert(scored_transactions), [{**row, "transaction_id": tx} for tx in ("early", "none")])
        conn.execute(
            sa.insert(transaction_labels),
            [{"transaction_id": "early", "is_fraud": True, "labelled_at": paid + dt.timedelta(days=2)}],
        )
    engine.dispose()

    payments = read_labelled_payments(url, TrainingWindow(paid.date(), paid.date())).set_index("transaction_id")
    assert payments.loc["early", "is_fraud"] == 1 and payments.loc["none", "is_fraud"] == 0
    assert payments.loc["early", "labelled_at"] == pd.Timestamp("2026-09-03 12:00", tz="UTC")
    assert payments.loc["none", "labelled_at"] == pd.Timestamp("2026-09-08 12:00", tz="UTC")
