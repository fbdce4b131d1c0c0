"""The promoted model, as the scorer sees it: swapped in without a restart when a new one is promoted."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from payment_platform.features import FEATURE_NAMES
from payment_platform.model import LoadedModel, ModelIntegrityError, ModelRegistry, ModelRegistryError

logger = logging.getLogger(__name__)


class NoPromotedModel(RuntimeError):
    """Nothing has been promoted yet: the scorer has no model to score with."""


@dataclass(frozen=True)
class ScoringModel:
    """A loaded model bound to the online feature order."""

    version: str
    review_threshold: float
    decline_threshold: float
    feature_index: np.ndarray  # positions of the model's features in FEATURE_NAMES
    loaded: LoadedModel

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return self.loaded.predict_proba(features)


def bind(loaded: LoadedModel) -> ScoringModel:
    missing = [name for name in loaded.feature_names if name not in FEATURE_NAMES]
    if missing:
        raise ModelIntegrityError(f"model {loaded.version} needs features the platform lacks: {missing}")
    index = np.array([FEATURE_NAMES.index(name) for name in loaded.feature_names], dtype=np.intp)
    return ScoringModel(loaded.version, loaded.review_threshold, loaded.decline_threshold, index, loaded)


class ModelSource:
    """Hands out the promoted model; checks the registry's pointer every `refresh_s` seconds.

    A promoted model that fails to load (missing, corrupt, checksum mismatch) is refused with an
    error log and the last good model stays in service.
    """

    def __init__(self, registry: ModelRegistry, refresh_s: float = 5.0) -> None:
        self.registry = registry
        self.refresh_s = refresh_s
        self._model: ScoringModel | None = None
        self._checked = 0.0
        self._refused: str | None = None

    def current(self) -> ScoringModel:
        now = time.monotonic()
        if self._model is None or now - self._checked >= self.refresh_s:
            self._checked = now
            self._refresh()
        if self._model is None:
            raise NoPromotedModel("no model has been promoted yet: run `payment-platform train` first")
        return self._model

    def _refresh(self) -> None:
        version = self.registry.production_version()
        if version is None or (self._model and version == self._model.version) or version == self._refused:
            return
        try:
            model = bind(self.registry.load(version))
        except ModelRegistryError as exc:
            self._refused = version
            if self._model is None:
                raise
            logger.error("refusing promoted model %s (%s); keeping %s", version, exc, self._model.version)
            return
        if self._model is not None:
            logger.info("switched from model %s to %s", self._model.version, model.version)
        else:
            logger.info("scoring with model %s", model.version)
        self._model = model
