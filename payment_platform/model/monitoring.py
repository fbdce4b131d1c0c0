"""Watching the live model: the share of payments it flags, and its quality once labels have come back.

Both answer the same question from two sides: is the model still doing what it was promoted for?
The flag rate needs no labels and reacts within the hour; live quality needs the labels of a day to
mature (a week here) and says whether the ranking itself has drifted.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pydantic

from payment_platform.model.metrics import UndefinedMetricError, average_precision, daily_card_precision_at_k, roc_auc


class Finding(enum.Enum):
    """How far a watched quantity is from where it should be."""

    IN_BAND = "in band"
    WARN = "slightly out of band"
    ERROR = "far out of band"


class FlagRateBands(pydantic.BaseModel):
    """Where the share of flagged payments should lie, over how recent a stretch of scoring.

    The Dagster check's config is this same model, so the launchpad shows these fields and defaults."""

    model_config = pydantic.ConfigDict(frozen=True)

    lookback_minutes: int = pydantic.Field(default=60, description="payments scored in this many last minutes")
    min_payments: int = pydantic.Field(default=200, description="fewer payments than this: too few to judge")
    flagged_min: float = pydantic.Field(default=0.001, description="lowest share of DECLINED + REVIEW")
    flagged_max: float = pydantic.Field(default=0.05, description="highest share of DECLINED + REVIEW")
    model_flagged_min: float = pydantic.Field(default=0.0005, description="lowest share flagged by the model score")
    model_flagged_max: float = pydantic.Field(default=0.04, description="highest share flagged by the model score")
    error_factor: float = pydantic.Field(
        default=2.0, description="ERROR beyond the band times this (or below it divided by this), WARN within"
    )

    def judge(self, shares: dict[str, float]) -> Finding:
        """IN_BAND when every share is within its band; WARN when slightly out; ERROR when far out."""
        bands = {
            "flagged_share": (self.flagged_min, self.flagged_max),
            "model_flagged_share": (self.model_flagged_min, self.model_flagged_max),
        }
        worst = Finding.IN_BAND
        for name, share in shares.items():
            low, high = bands[name]
            if low <= share <= high:
                continue
            if share > high * self.error_factor or share < low / self.error_factor:
                return Finding.ERROR
            worst = Finding.WARN
        return worst

    def describe(self, shares: dict[str, float]) -> str:
        return (
            f"flagged {shares['flagged_share']:.2%} (band {self.flagged_min:.2%}–{self.flagged_max:.2%}), "
            f"model-flagged {shares['model_flagged_share']:.2%} "
            f"(band {self.model_flagged_min:.2%}–{self.model_flagged_max:.2%})"
        )


# "Clearly below" the test metrics: live AUC more than AUC_DROP under the test AUC, or live AP / CP@100
# under SHARE_KEPT of theirs.
AUC_DROP, SHARE_KEPT = 0.05, 0.5
MIN_LABELLED_SHARE = 0.5  # a day with fewer labelled payments has not matured yet
COMPARED_METRICS = ("roc_auc", "average_precision", "card_precision_at_k")


@dataclass(frozen=True)
class LiveQuality:
    """What the scorer decided on one day, measured against the labels that came back since."""

    payments: int
    frauds: int
    labelled_share: float
    model_versions: tuple[str, ...]
    metrics: dict[str, float] = field(default_factory=dict)
    undefined: str | None = None  # why the ranking metrics have no value (e.g. one class only)

    @property
    def matured(self) -> bool:
        return self.labelled_share >= MIN_LABELLED_SHARE and "roc_auc" in self.metrics


def measure_live_quality(rows: pd.DataFrame) -> LiveQuality:
    """AUC, AP, CP@100 and the precision of alerts and declines of a day's scored rows.

    `rows` has customer_id, event_time, score, status, model_version and is_fraud (NaN: no label yet,
    counted as genuine, as an investigator would until told otherwise)."""
    labelled_share = float(rows["is_fraud"].notna().mean()) if len(rows) else 0.0
    labels = rows["is_fraud"].fillna(0).to_numpy(dtype=int)
    alerts = (rows["status"] != "APPROVED").to_numpy()
    declined = (rows["status"] == "DECLINED").to_numpy()
    metrics: dict[str, float] = {}
    undefined = None
    try:
        metrics["roc_auc"] = roc_auc(labels, rows["score"])
        metrics["average_precision"] = average_precision(labels, rows["score"])
        metrics["card_precision_at_k"] = float(
            daily_card_precision_at_k(rows["score"], labels, rows["customer_id"], rows["event_time"]).mean()
        )
    except UndefinedMetricError as exc:
        undefined = str(exc)
    if alerts.any():
        metrics["precision_of_alerts"] = float(labels[alerts].mean())
    if declined.any():
        metrics["precision_of_declines"] = float(labels[declined].mean())
    return LiveQuality(
        payments=len(rows),
        frauds=int(labels.sum()),
        labelled_share=labelled_share,
        model_versions=tuple(sorted(rows["model_version"].unique())),
        metrics=metrics,
        undefined=undefined,
    )


def served_test_metrics(metrics_by_version: dict[str, dict[str, float]], rows: pd.DataFrame) -> dict[str, float]:
    """The test metrics the day's serving models promised, weighted by how many of its payments each scored.

    A day scored by one model compares with that model's test metrics; a day that spans a hot swap
    compares with the mix of the models that actually decided it."""
    counts = rows["model_version"].value_counts()
    promised: dict[str, float] = {}
    for name in COMPARED_METRICS:
        weighted = [
            (metrics_by_version[str(version)][name], n)
            for version, n in counts.items()
            if name in metrics_by_version.get(str(version), {})
        ]
        if weighted and sum(n for _, n in weighted) == len(rows):
            promised[name] = float(np.average([v for v, _ in weighted], weights=[n for _, n in weighted]))
    return promised


def drift_findings(live: LiveQuality, promised: dict[str, float]) -> list[str]:
    """The metrics on which live quality falls clearly below the serving model's test metrics."""
    below = []
    if "roc_auc" in promised and live.metrics["roc_auc"] < promised["roc_auc"] - AUC_DROP:
        below.append(f"AUC {live.metrics['roc_auc']:.3f} vs test {promised['roc_auc']:.3f}")
    for name in ("average_precision", "card_precision_at_k"):
        if name in promised and live.metrics.get(name, np.inf) < SHARE_KEPT * promised[name]:
            below.append(f"{name} {live.metrics[name]:.3f} vs test {promised[name]:.3f}")
    return below
