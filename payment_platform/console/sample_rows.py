"""Synthetic rows of `scored_transactions` (and their fraud labels) shaped like the scorer's output.

For the console's bench, which needs millions of rows in minutes, and for its tests, which need rows whose
every panel can be recomputed by hand. Event times follow a daily rhythm up to `end`; a row is written a
log-normal latency after its event (a heavy tail, as a busy scorer has); ids follow the write order; scores,
statuses and reason codes follow the decision policy's thresholds; a few cards burst (velocity) and a few
payments are large.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from payment_platform.model import ModelRegistry
from payment_platform.model.metrics import evaluate_scores
from payment_platform.store.rows import SCORED_COLUMNS as STORED_COLUMNS

# The stored columns sample rows fill: all but the card shard, which only a streaming scorer knows.
SCORED_COLUMNS = [column for column in STORED_COLUMNS if column != "shard"]


@dataclass(frozen=True)
class SampleShape:
    """How the synthetic traffic looks; the defaults give about 1 % REVIEW and 0.3 % DECLINED."""

    cards: int = 50_000
    review_threshold: float = 0.5
    decline_threshold: float = 0.8
    velocity_share: float = 0.002  # payments that trip a velocity rule (in bursts of 10 by one card)
    fraud_rate: float = 0.01
    model_version: str = "sample-model"


def sample_rows(
    n: int,
    *,
    end: dt.datetime,
    span: dt.timedelta,
    seed: int = 0,
    shape: SampleShape | None = None,
    id_prefix: str = "tx",
    first_offset: int = 0,
) -> pd.DataFrame:
    """`n` rows in write order (sorted by scored_at), event times within `span` before `end` (naive UTC),
    with a boolean `is_fraud` column for labels (not a column of the table)."""
    shape = shape or SampleShape()
    rng = np.random.default_rng(seed)
    start = end - span
    span_s = span.total_seconds()
    # Daily rhythm: more payments in the day than at night (accept-reject on a sine of the hour).
    offsets = rng.uniform(0, span_s, size=int(n * 1.7) + 100)
    hour = ((pd.Timestamp(start).hour * 3600 + offsets) % 86_400) / 3600
    keep = rng.uniform(size=offsets.size) < 0.6 + 0.4 * np.sin((hour - 8) / 24 * 2 * np.pi)
    offsets = np.sort(offsets[keep][:n])
    if offsets.size < n:  # very short spans: top up uniformly
        offsets = np.sort(np.concatenate([offsets, rng.uniform(0, span_s, size=n - offsets.size)]))
    event_time = (pd.Timestamp(start) + pd.to_timedelta(offsets, unit="s")).floor("us")
    latency_ms = np.clip(rng.lognormal(mean=np.log(80), sigma=0.45, size=n), 5, None)
    latency_ms[rng.uniform(size=n) < 0.002] *= 20  # a slow tail: broker or database hiccups
    scored_at = (event_time + pd.to_timedelta(latency_ms, unit="ms")).floor("us")
    scored_at = scored_at.where(scored_at <= pd.Timestamp(end), pd.Timestamp(end))
    order = np.argsort(scored_at.to_numpy(), kind="stable")
    event_time, scored_at = event_time[order], scored_at[order]

    # Cards: a long tail of light users and a few heavy ones, ids shuffled.
    weights = 1.0 / (np.arange(shape.cards) + 20.0) ** 0.9
    card = rng.permutation(shape.cards)[rng.choice(shape.cards, size=n, p=weights / weights.sum())]
    # Bursts: a card pays 10 times in a row (card testing); from its 5th payment the velocity rule fires.
    bursts = max(int(n * shape.velocity_share / 6), 1) if n >= 20 else 0
    velocity = np.zeros(n, dtype=bool)
    if bursts:
        rows_of_burst = rng.choice(n - 10, size=bursts, replace=False)[:, None] + np.arange(10)
        card[rows_of_burst] = rng.integers(0, shape.cards, size=bursts)[:, None]
        velocity[rows_of_burst[:, 4:]] = True
    score = rng.beta(0.35, 14.0, size=n)
    is_fraud = rng.uniform(size=n) < np.clip(score * shape.fraud_rate / 0.0244, 0, 0.97)  # 0.0244: mean score
    score = np.where(is_fraud, np.clip(score + rng.beta(2.0, 2.0, size=n) * 0.8, 0, 1), score)
    amount = np.round(np.clip(rng.lognormal(mean=3.6, sigma=1.1, size=n), 0, 1_000_000), 2)
    amount[rng.uniform(size=n) < 0.0005] = 12_500.00

    declined = score >= shape.decline_threshold
    model_review = (score >= shape.review_threshold) & ~declined
    high_amount = amount >= 10_000
    status = np.where(declined, "DECLINED", np.where(model_review | velocity | high_amount, "REVIEW", "APPROVED"))
    reasons = np.array(
        [
            ",".join(code for code, fired in (("model_score", m), ("velocity_10m", v), ("high_amount", h)) if fired)
            for m, v, h in zip(declined | model_review, velocity, high_amount, strict=True)
        ],
        dtype=object,
    )
    return pd.DataFrame(
        {
            "transaction_id": [f"{id_prefix}{i:010d}" for i in range(n)],
            "customer_id": [f"C{c:07d}" for c in card],
            "terminal_id": [f"T{x:05d}" for x in rng.integers(0, 20_000, size=n)],
            "amount": amount,
            "currency": "EUR",
            "event_time": event_time.to_numpy(),
            "score": np.round(score, 6),
            "status": status,
            "reasons": reasons,
            "model_version": shape.model_version,
            "scored_at": scored_at.to_numpy(),
            "kafka_partition": rng.integers(0, 4, size=n),
            "kafka_offset": np.arange(first_offset, first_offset + n),
            "is_fraud": is_fraud,
        }
    )


def label_rows(rows: pd.DataFrame, label_delay: dt.timedelta, now: dt.datetime) -> pd.DataFrame:
    """The fraud labels that would have come back by `now`: frauds, `label_delay` after their event."""
    labelled_at = pd.to_datetime(rows["event_time"]) + label_delay
    due = rows["is_fraud"].to_numpy() & (labelled_at <= pd.Timestamp(now)).to_numpy()
    return pd.DataFrame(
        {
            "transaction_id": rows["transaction_id"][due].to_numpy(),
            "is_fraud": True,
            "labelled_at": labelled_at[due].to_numpy(),
        }
    )


def promote_sample_model(root: Path, shape: SampleShape | None = None) -> str:
    """A promoted registry version whose thresholds are the sample's, with test metrics measured on sample
    rows, so that pages showing thresholds agree with the sample's statuses. The console reads metadata only:
    the stored "model" is a placeholder, never used to score."""
    shape = shape or SampleShape()
    test = sample_rows(50_000, end=dt.datetime(2026, 1, 15), span=dt.timedelta(days=3), seed=99, shape=shape)
    metrics = evaluate_scores(
        test["is_fraud"].astype(int),
        test["score"],
        test["customer_id"],
        pd.to_datetime(test["event_time"]).dt.tz_localize("UTC"),
        review_threshold=shape.review_threshold,
        decline_threshold=shape.decline_threshold,
    )
    registry = ModelRegistry(root)
    version = registry.save(
        {"placeholder": "sample rows carry their own scores"},
        ["amount"],
        {
            "source": "sample rows",
            "review_threshold": shape.review_threshold,
            "decline_threshold": shape.decline_threshold,
            "metrics": metrics.as_dict(),
            "training_window": {},
        },
    )
    registry.promote(version)
    return version
