"""The promoted model, as the scorer sees it: swapped in without a restart when a new one is promoted."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from payment_platform.features import FEATURE_NAMES
from payment_platform.model import (
    LoadedModel,
    ModelIntegrityError,
    ModelRegistry,
    ModelRegistryError,
    ProductionPointer,
)

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

    A promoted model that fails to load (missing, corrupt, checksum mismatch, a pointer not written
    by promotion) is refused with one error line, logged once, and the last good model stays in
    service. With no model in service yet, the refusal is raised: the scorer cannot start.
    """

    def __init__(self, registry: ModelRegistry, refresh_s: float = 5.0) -> None:
        self.registry = registry
        self.refresh_s = refresh_s
        self._model: ScoringModel | None = None
        self._pointer: ProductionPointer | None = None
        self._checked = 0.0
        self._refused_pointer: ProductionPointer | None = None
        self._refused_reason: str | None = None

    def current(self) -> ScoringModel:
        now = time.monotonic()
        if self._model is None or now - self._checked >= self.refresh_s:
            self._checked = now
            self._refresh()
        if self._model is None:
            raise NoPromotedModel("no model has been promoted yet: run `payment-platform train` first")
        return self._model

    def _refresh(self) -> None:
        try:
            pointer = self.registry.production_pointer()
        except ModelRegistryError as exc:
            self._refuse(exc)
            return
        if pointer is None or pointer in (self._pointer, self._refused_pointer):
            return
        try:
            model = bind(self.registry.load_promoted(pointer))
        except ModelRegistryError as exc:
            self._refused_pointer = pointer
            self._refuse(exc)
            return
        if self._model is not None:
            logger.info("switched from model %s to %s", self._model.version, model.version)
        else:
            logger.info("scoring with model %s", model.version)
        self._model, self._pointer = model, pointer
        self._refused_pointer = self._refused_reason = None

    def _refuse(self, exc: ModelRegistryError) -> None:
        """Raise when there is no model to keep; otherwise log the reason once and keep the model."""
        if self._model is None:
            raise exc
        reason = str(exc)
        if reason != self._refused_reason:
            self._refused_reason = reason
            logger.error("refusing the promoted model: %s; keeping %s", reason, self._model.version)
