"""`payment-platform backtest HISTORY --train-until DATE --test NEXT`, in one command, what the README's
six commands do: HISTORY replayed through the broker with labels a delay later and scored by the live
scorer; a model trained from the store up to DATE and promoted (through Dagster, as `train` does); NEXT
replayed and scored by it. The streamed scores of NEXT's rows are then measured next to the offline
rescoring of the same rows by the same model: equal figures mean the live path lost nothing.

Every step is the code of its own command: `replay` (sources/replay.py), `score` itself in a child process
that runs throughout (scorer_process.py), `train` (defs/operations.py).
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from payment_platform.backtest.scorer_process import ScorerProcess, ScorerStopped
from payment_platform.backtest.served_scores import rescore_stored
from payment_platform.model.metrics import UndefinedMetricError, average_precision, card_precision_at_k, roc_auc
from payment_platform.model.registry import ModelRegistry
from payment_platform.settings import Settings
from payment_platform.sources.feed import open_payment_feed
from payment_platform.sources.replay import read_history_file, replay

Say = Callable[[str], None]


class BacktestError(RuntimeError):
    """The backtest cannot go on; the text says why, in one line."""


@dataclass(frozen=True)
class BacktestPlan:
    history: Path
    train_until: dt.date
    test: Path
    label_delay_days: float = 7.0
    batch_size: int = 5_000
    training: dict[str, int] = field(default_factory=dict)  # TrainingPlan fields for the retraining


@dataclass(frozen=True)
class Quality:
    roc_auc: float
    average_precision: float
    card_precision_at_100: float


@dataclass(frozen=True)
class BacktestReport:
    model_versions: tuple[str, ...]
    payments: int
    frauds: int
    streamed: Quality
    offline: Quality
    differing: int

    def table(self) -> str:
        lines = [f"{'':>18} {'AUC':>7} {'AP':>7} {'CP@100':>7}"]
        for name, quality in (("streamed", self.streamed), ("offline rescoring", self.offline)):
            lines.append(
                f"{name:>18} {quality.roc_auc:7.4f} {quality.average_precision:7.4f} "
                f"{quality.card_precision_at_100:7.4f}"
            )
        lines.append(
            f"{self.payments:,} payments of the test file ({self.frauds:,} frauds), scored by model "
            f"{', '.join(self.model_versions)}; {self.differing:,} stored scores differ from the offline rescoring"
        )
        return "\n".join(lines)


def run_backtest(settings: Settings, plan: BacktestPlan, say: Say) -> BacktestReport:
    from payment_platform.defs.operations import TrainingFailed, train_through_dagster

    history, test = read_history_file(plan.history), read_history_file(plan.test)
    if "is_fraud" not in history.columns or "is_fraud" not in test.columns:
        raise BacktestError("both files need an is_fraud column: the history to train on, the test file to measure")
    registry = ModelRegistry(settings.model_dir)
    try:
        if registry.production_version() is None:
            say("no promoted model to score the history with: training one on the synthetic world first")
            train_through_dagster(settings)
        scorer = ScorerProcess(settings, settings.home / "backtest-scorer.log", plan.batch_size)
        try:
            stream(settings, plan, scorer, history, f"1/3 {plan.history.name}")
            say(f"2/3 training from the store up to {plan.train_until} (the scorer waits, running)")
            version, metrics = train_through_dagster(
                settings, source="database", until=plan.train_until, **plan.training
            )
            held_out = f"held-out AUC {metrics['roc_auc']:.4f}, AP {metrics['average_precision']:.4f}"
            say(f"promoted model {version} ({held_out}); the running scorer switches to it")
            stream(settings, plan, scorer, test, f"3/3 {plan.test.name}")
        finally:
            scorer.stop()
    except (TrainingFailed, ScorerStopped) as exc:
        raise BacktestError(str(exc)) from None
    say(f"rescoring the test file's stored rows offline (scorer log: {scorer.log})")
    return measure(settings.db_url, registry, test)


def stream(settings: Settings, plan: BacktestPlan, scorer: ScorerProcess, frame: pd.DataFrame, step: str) -> None:
    """Replay a frame at full speed, labels `label_delay_days` later, and wait until the running scorer has
    stored every payment and label of it."""
    feed = open_payment_feed(settings, plan.label_delay_days)
    with _bar(len(frame), f"{step}: replay") as bar:
        replay(feed, frame, on_progress=lambda done: _advance(bar, done))
    with _bar(len(frame), f"{step}: score") as bar:
        scorer.wait_for(len(frame), feed.labels_sent, lambda done: _advance(bar, done))


def _bar(total: int, desc: str) -> tqdm:
    return tqdm(total=total, unit="payment", desc=desc, mininterval=1, file=sys.stderr)


def _advance(bar: tqdm, done: int) -> None:
    bar.update(done - bar.n)


def measure(db_url: str, registry: ModelRegistry, test: pd.DataFrame) -> BacktestReport:
    """The test file's streamed scores and their offline rescoring, measured on its labels."""
    start = test["event_time"].min().tz_convert("UTC").tz_localize(None).to_pydatetime()
    end = test["event_time"].max().tz_convert("UTC").tz_localize(None).to_pydatetime() + dt.timedelta(microseconds=1)
    rescored = rescore_stored(db_url, registry, start, end)
    if rescored.missing_versions:
        raise BacktestError(f"models not in the registry: {', '.join(rescored.missing_versions)}")
    labels_of = test.set_index("transaction_id")["is_fraud"]
    rows = rescored.rows[rescored.rows["transaction_id"].isin(labels_of.index)]
    if len(rows) < len(test):
        raise BacktestError(f"only {len(rows):,} of the test file's {len(test):,} payments are in the store")
    labels = labels_of.loc[rows["transaction_id"]].to_numpy().astype(int)
    differing = int(rescored.differing[rows.index.to_numpy()].sum())
    cards, times = rows["customer_id"].to_numpy(), rows["event_time"].reset_index(drop=True)

    def quality(scores: np.ndarray) -> Quality:
        try:
            return Quality(
                roc_auc(labels, scores),
                average_precision(labels, scores),
                card_precision_at_k(scores, labels, cards, times, k=100),
            )
        except UndefinedMetricError as exc:
            raise BacktestError(f"the test file cannot be measured: {exc}") from None

    return BacktestReport(
        model_versions=tuple(sorted(rows["model_version"].unique())),
        payments=len(rows),
        frauds=int(labels.sum()),
        streamed=quality(rows["score"].to_numpy()),
        offline=quality(rows["offline_score"].to_numpy()),
        differing=differing,
    )
