"""Model versions stored in a directory, each verified by checksums before it is read.

Layout under the root (e.g. $PAYMENT_HOME/models):

    <version>/model.skops       the fitted model, in skops' format: no pickle anywhere (model_file.py)
    <version>/features.json     the ordered feature names the model expects
    <version>/metadata.json     thresholds, metrics, training window, created_at, sklearn version, source
    <version>/checksum.sha256   sha256 of the three files above, in `sha256sum -c` format (the manifest)

The checksums catch corruption and a half-copied version. A version is written to a hidden temporary
folder and renamed into place, so a reader never sees half a version.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import re
import secrets
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from threadpoolctl import ThreadpoolController

from payment_platform.model.model_file import MODEL_FILE, dump_model, load_model
from payment_platform.model.registry_errors import (
    InvalidModelVersionError,
    ModelIntegrityError,
    ModelNotFoundError,
)

logger = logging.getLogger(__name__)

FEATURES_FILE = "features.json"
METADATA_FILE = "metadata.json"
CHECKSUM_FILE = "checksum.sha256"
PRODUCTION_POINTER = "PRODUCTION"  # the registry's pointer file (registry.py), named in integrity errors
_CHECKED_FILES = (MODEL_FILE, FEATURES_FILE, METADATA_FILE)
# Letters, digits, '.', '_', '-'; starting with a letter or digit: no separators, no "..", no hidden names.
_VERSION_PATTERN = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,63}")


@dataclass(frozen=True)
class LoadedModel:
    """A verified model version, ready to score."""

    version: str
    model: Any
    feature_names: tuple[str, ...]
    review_threshold: float
    decline_threshold: float
    metadata: dict[str, Any]

    def predict_proba(self, X: np.ndarray | pd.DataFrame) -> np.ndarray:
        """Fraud probabilities of a batch; a DataFrame is reordered to the model's feature order.

        Runs on one OpenMP thread: for scorer-sized batches that was ~3x faster than the default
        when the cores are shared with other processes, and the scorer scales out by process.
        """
        if isinstance(X, pd.DataFrame):
            X = X[list(self.feature_names)].to_numpy(dtype=np.float64)
        matrix = np.asarray(X, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(self.feature_names):
            raise ValueError(
                f"model {self.version} expects {len(self.feature_names)} features, got shape {matrix.shape}"
            )
        with _openmp_controller().limit(limits=1, user_api="openmp"):
            proba = self.model.predict_proba(matrix)
        return np.asarray(proba[:, 1], dtype=np.float64)


class ModelVersions:
    """Versions of the fraud model stored under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def save(self, model: Any, feature_names: Sequence[str], metadata: dict[str, Any]) -> str:
        """Store a new version and return its name; it is not promoted.

        `metadata` must hold `review_threshold` and `decline_threshold` (0 <= review <= decline <= 1)
        and be JSON-serialisable (timestamps and numpy numbers are converted).
        """
        names = [str(name) for name in feature_names]
        if not names or len(set(names)) != len(names):
            raise ValueError("feature_names must be non-empty and unique")
        _thresholds(metadata, source="metadata")
        self.root.mkdir(parents=True, exist_ok=True)
        version = _new_version()
        staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=self.root))
        try:
            dump_model(model, staging / MODEL_FILE)
            _write_json(staging / FEATURES_FILE, names)
            _write_json(
                staging / METADATA_FILE,
                {
                    **metadata,
                    "version": version,
                    "created_at": dt.datetime.now(dt.UTC).isoformat(),
                    "sklearn_version": sklearn.__version__,
                    "feature_names": names,
                },
            )
            checksums = "".join(f"{sha256(staging / name)}  {name}\n" for name in _CHECKED_FILES)
            (staging / CHECKSUM_FILE).write_text(checksums, encoding="utf-8")
            staging.rename(self.root / version)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        logger.info("saved model version %s in %s", version, self.root)
        return version

    def versions(self) -> list[str]:
        """Stored version names, oldest first (names sort by creation time)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _VERSION_PATTERN.fullmatch(p.name))

    def verify(self, version: str) -> Path:
        """Check a version's files against its checksums; its folder. Raises ModelIntegrityError."""
        folder = self._folder(version)
        expected = _read_checksums(folder, version)
        for name in _CHECKED_FILES:
            path = folder / name
            if name not in expected:
                raise ModelIntegrityError(f"model {version}: {name} has no checksum in {CHECKSUM_FILE}")
            if not path.is_file():
                raise ModelIntegrityError(f"model {version}: {name} is missing")
            if sha256(path) != expected[name]:
                raise ModelIntegrityError(f"model {version}: {name} does not match its sha256 checksum")
        return folder

    def metadata(self, version: str) -> dict[str, Any]:
        """The verified metadata of a version (thresholds, test metrics, window), without loading the model."""
        folder = self.verify(version)
        try:
            metadata = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ModelIntegrityError(f"model {version}: unreadable metadata: {exc}") from exc
        if not isinstance(metadata, dict):
            raise ModelIntegrityError(f"model {version}: metadata is not an object")
        return metadata

    def load(self, version: str) -> LoadedModel:
        """The verified model of a version. Raises ModelNotFoundError or ModelIntegrityError."""
        return self._load(version, manifest_sha256=None)

    def _load(self, version: str, *, manifest_sha256: str | None) -> LoadedModel:
        folder = self.verify(version)
        if manifest_sha256 is not None and sha256(folder / CHECKSUM_FILE) != manifest_sha256:
            raise ModelIntegrityError(
                f"model {version} does not match the digest in {PRODUCTION_POINTER}: "
                "its files changed after it was promoted"
            )
        try:
            feature_names = tuple(json.loads((folder / FEATURES_FILE).read_text(encoding="utf-8")))
            metadata = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
            review, decline = _thresholds(metadata, source=f"model {version} metadata")
        except (ValueError, TypeError) as exc:
            raise ModelIntegrityError(f"model {version}: unreadable features or metadata: {exc}") from exc
        model = load_model(folder / MODEL_FILE, version)
        if metadata.get("sklearn_version") != sklearn.__version__:
            logger.warning(
                "model %s was saved with scikit-learn %s, running %s",
                version,
                metadata.get("sklearn_version"),
                sklearn.__version__,
            )
        return LoadedModel(
            version=version,
            model=model,
            feature_names=feature_names,
            review_threshold=review,
            decline_threshold=decline,
            metadata=metadata,
        )

    def _folder(self, version: str) -> Path:
        """The folder of an existing version, guaranteed to be a direct child of the root."""
        check_version_name(version)
        folder = self.root / version
        if not folder.is_dir():
            raise ModelNotFoundError(f"model version {version} not found in {self.root}")
        if folder.resolve().parent != self.root.resolve():
            raise InvalidModelVersionError(f"model version {version} resolves outside {self.root}")
        return folder


@functools.cache
def _openmp_controller() -> ThreadpoolController:
    """Built on first use, once a model is loaded and its OpenMP runtime is in the process."""
    return ThreadpoolController()


def _new_version() -> str:
    """UTC creation time to the microsecond (sorts chronologically) plus random hex (unique)."""
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(4)}"


def check_version_name(version: str) -> None:
    if not isinstance(version, str) or not _VERSION_PATTERN.fullmatch(version) or ".." in version:
        raise InvalidModelVersionError(f"invalid model version name: {version!r}")


def _thresholds(metadata: dict[str, Any], *, source: str) -> tuple[float, float]:
    try:
        review = float(metadata["review_threshold"])
        decline = float(metadata["decline_threshold"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{source} needs numeric review_threshold and decline_threshold") from exc
    if not 0.0 <= review <= decline <= 1.0:
        raise ValueError(f"{source}: need 0 <= review_threshold <= decline_threshold <= 1")
    return review, decline


def _read_checksums(folder: Path, version: str) -> dict[str, str]:
    try:
        lines = (folder / CHECKSUM_FILE).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise ModelIntegrityError(f"model {version}: {CHECKSUM_FILE} is missing") from exc
    checksums: dict[str, str] = {}
    for line in lines:
        digest, _, name = line.partition("  ")
        checksums[name.strip()] = digest.strip()
    return checksums


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_json(path: Path, content: object) -> None:
    path.write_text(json.dumps(content, indent=2, default=_json_value) + "\n", encoding="utf-8")


def _json_value(value: object) -> object:
    """JSON form of the values training metadata holds besides plain Python ones."""
    if isinstance(value, dt.datetime | dt.date | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"metadata value of type {type(value).__name__} is not JSON-serialisable")
