"""What the console shows of the model registry: the promoted version, its thresholds and test metrics.

Read from each version's checksummed metadata (verified, never unpickled: the console has no use for the
model itself) and cached per version, since a version never changes once saved.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from payment_platform.model import ModelRegistry
from payment_platform.model.registry import METADATA_FILE, ModelRegistryError

logger = logging.getLogger(__name__)

RETRY_UNREADABLE_S = 60.0

# Test metrics worth a line on the health page, in this order.
SHOWN_METRICS = (
    ("roc_auc", "ROC AUC"),
    ("average_precision", "average precision"),
    ("card_precision_at_k", "CP@100"),
    ("best_card_precision_at_k", "best possible CP@100"),
    ("precision_at_review", "precision at REVIEW"),
    ("recall_at_review", "recall at REVIEW"),
    ("precision_at_decline", "precision at DECLINED"),
    ("recall_at_decline", "recall at DECLINED"),
    ("n_test", "test payments"),
    ("n_test_fraud", "test frauds"),
)


@dataclass(frozen=True)
class ModelInfo:
    version: str
    review_threshold: float
    decline_threshold: float
    metrics: dict[str, Any]
    created_at: str | None
    source: str | None
    training_window: dict[str, Any]


class ModelCatalog:
    """Model versions' metadata from the registry directory, cached per version."""

    def __init__(self, root: Path) -> None:
        self.registry = ModelRegistry(root)
        self._cache: dict[str, ModelInfo] = {}
        self._unreadable: dict[str, float] = {}  # version -> when it last failed: not retried every page
        self._lock = threading.Lock()

    def production(self) -> ModelInfo | None:
        """The promoted model, or None when none is promoted or its files fail their checksums."""
        try:
            version = self.registry.production_version()
        except ModelRegistryError as exc:
            logger.warning("the model registry's production pointer is unusable: %s", exc)
            return None
        return None if version is None else self.version(version)

    def version(self, version: str) -> ModelInfo | None:
        with self._lock:
            cached = self._cache.get(version)
            failed_at = self._unreadable.get(version)
        if cached is not None:
            return cached
        if failed_at is not None and time.monotonic() - failed_at < RETRY_UNREADABLE_S:
            return None
        try:
            folder = self.registry.verify(version)
            metadata = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
            info = ModelInfo(
                version=version,
                review_threshold=float(metadata["review_threshold"]),
                decline_threshold=float(metadata["decline_threshold"]),
                metrics=dict(metadata.get("metrics") or {}),
                created_at=metadata.get("created_at"),
                source=metadata.get("source") or (metadata.get("training_window") or {}).get("source"),
                training_window=dict(metadata.get("training_window") or {}),
            )
        except (ModelRegistryError, OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("model %s cannot be shown: %s", version, exc)
            with self._lock:
                self._unreadable[version] = time.monotonic()
            return None
        with self._lock:
            self._cache[version] = info
        return info
