"""A versioned model registry in a directory, with a promoted pointer the scorer follows.

Layout under the root (e.g. $PAYMENT_HOME/models):

    <version>/model.skops       the fitted model, in skops' format: no pickle anywhere
    <version>/features.json     the ordered feature names the model expects
    <version>/metadata.json     thresholds, metrics, training window, created_at, sklearn version, source
    <version>/checksum.sha256   sha256 of the three files above, in `sha256sum -c` format (the manifest)
    PRODUCTION                  the promoted version, then `sha256:<digest of its manifest>`

Whoever can write this directory must not be able to run code in the processes that read it. So a
model is never unpickled: skops rebuilds it from a JSON schema and numpy arrays, and only from the
types in TRUSTED_MODEL_TYPES and skops' defaults (scikit-learn estimators, numpy, builtins); the trees'
node arrays are then bounds-checked, since scikit-learn indexes them unchecked when predicting.

The checksums catch corruption and a half-copied version. The digest in PRODUCTION binds the pointer
to the exact files promotion verified: a pointer written by hand (a bare version name), or a version
altered after it was promoted, is refused. It does not authenticate who wrote it: anyone who can
write the directory and compute sha256 can still point at a model of trusted types, which can make
bad decisions but run no code.

A version is written to a hidden temporary folder and renamed into place, and PRODUCTION is
replaced atomically, so a reader never sees half a version or half a pointer.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import os
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
import skops.io
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
from skops.io.exceptions import UntrustedTypesFoundException
from threadpoolctl import ThreadpoolController

logger = logging.getLogger(__name__)

MODEL_FILE = "model.skops"
FEATURES_FILE = "features.json"
METADATA_FILE = "metadata.json"
CHECKSUM_FILE = "checksum.sha256"
PRODUCTION_POINTER = "PRODUCTION"
_CHECKED_FILES = (MODEL_FILE, FEATURES_FILE, METADATA_FILE)
# Types a stored model may hold beyond skops' defaults. The tree predictor is outside them because its
# node indices are used unchecked when predicting; _check_tree_predictors bounds-checks them on load.
TRUSTED_MODEL_TYPES = (
    "payment_platform.model.training.FraudScoreModel",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)
_TREE_PREDICTOR = TRUSTED_MODEL_TYPES[1]
_POINTER_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
# Letters, digits, '.', '_', '-'; starting with a letter or digit: no separators, no "..", no hidden names.
_VERSION_PATTERN = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,63}")


class ModelRegistryError(Exception):
    """Base class of the registry's errors."""


class InvalidModelVersionError(ModelRegistryError, ValueError):
    """A version name that is not a plain folder name inside the registry (e.g. '../x')."""


class ModelNotFoundError(ModelRegistryError, LookupError):
    """No such version in the registry."""


class ModelIntegrityError(ModelRegistryError):
    """A stored version or the pointer to it is incomplete, altered or unreadable; the text is one line."""


@dataclass(frozen=True)
class ProductionPointer:
    """What PRODUCTION says: the promoted version and the sha256 of its manifest when it was promoted."""

    version: str
    manifest_sha256: str


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


class ModelRegistry:
    """Versions of the fraud model stored under `root`, and which one is in production."""

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
            _dump_model(model, staging / MODEL_FILE)
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
            checksums = "".join(f"{_sha256(staging / name)}  {name}\n" for name in _CHECKED_FILES)
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
            if _sha256(path) != expected[name]:
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
        if manifest_sha256 is not None and _sha256(folder / CHECKSUM_FILE) != manifest_sha256:
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
        model = _load_model(folder / MODEL_FILE, version)
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

    def promote(self, version: str) -> None:
        """Point PRODUCTION at a version and its manifest's digest, atomically, once the version loads.

        Loading it first means the pointer never names a version the scorer would refuse.
        """
        digest = _sha256(self.verify(version) / CHECKSUM_FILE)
        self._load(version, manifest_sha256=digest)
        pointer = self.root / PRODUCTION_POINTER
        fd, temp_name = tempfile.mkstemp(prefix=f".{PRODUCTION_POINTER}.", dir=self.root)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as temp:
                temp.write(f"{version}\nsha256:{digest}\n")
                temp.flush()
                os.fsync(temp.fileno())
            os.replace(temp_name, pointer)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        logger.info("promoted model version %s", version)

    def production_version(self) -> str | None:
        """The version PRODUCTION names, or None when nothing was ever promoted.

        Only the name is checked: load_production verifies the digest. Promotion reads it to log
        what it replaces, and must still work when the pointer was tampered with.
        """
        lines = self._pointer_lines()
        return None if lines is None else _pointer_version(lines)

    def production_pointer(self) -> ProductionPointer | None:
        """The pointer as promotion wrote it; None when nothing was ever promoted.

        Raises InvalidModelVersionError for a name outside the registry, and ModelIntegrityError for
        a pointer without the digest promotion writes (e.g. a version name written by hand).
        """
        lines = self._pointer_lines()  # read once: promotion may replace it meanwhile
        if lines is None:
            return None
        version = _pointer_version(lines)
        digest = _POINTER_DIGEST.fullmatch(lines[1].strip()) if len(lines) == 2 else None
        if digest is None:
            raise ModelIntegrityError(
                f"{PRODUCTION_POINTER} names model {version} without the digest promotion writes: "
                "it was not written by promotion; promote a model instead of editing the pointer"
            )
        return ProductionPointer(version, digest.group(1))

    def load_promoted(self, pointer: ProductionPointer) -> LoadedModel:
        """The model a pointer names, refused unless its manifest still has the pointer's digest."""
        return self._load(pointer.version, manifest_sha256=pointer.manifest_sha256)

    def load_production(self) -> LoadedModel | None:
        """The promoted model, pointer and files verified; None when nothing was ever promoted."""
        pointer = self.production_pointer()
        return None if pointer is None else self.load_promoted(pointer)

    def _pointer_lines(self) -> list[str] | None:
        try:
            text = (self.root / PRODUCTION_POINTER).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelIntegrityError(f"{PRODUCTION_POINTER} cannot be read: {_one_line(exc)}") from None
        return text.splitlines()

    def _folder(self, version: str) -> Path:
        """The folder of an existing version, guaranteed to be a direct child of the root."""
        _check_version_name(version)
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


def _dump_model(model: Any, path: Path) -> None:
    """Write the model with skops; refuse one the registry would refuse to load, before it is stored."""
    try:
        skops.io.dump(model, path)
        untrusted = sorted(set(skops.io.get_untrusted_types(file=path)) - set(TRUSTED_MODEL_TYPES))
    except Exception as exc:  # noqa: BLE001 - skops refuses unsupported objects in several ways
        raise ValueError(f"the model cannot be stored safely: {_one_line(exc)}") from None
    if untrusted:
        raise ValueError(f"the model holds types the registry does not load: {', '.join(untrusted)}")


def _load_model(path: Path, version: str) -> Any:
    """The model rebuilt by skops from trusted types only, its tree arrays bounds-checked."""
    try:
        has_trees = _TREE_PREDICTOR in skops.io.get_untrusted_types(file=path)
        model = skops.io.load(path, trusted=list(TRUSTED_MODEL_TYPES))
    except UntrustedTypesFoundException as exc:
        reason = f"holds types outside the trusted list: {_one_line(exc)}"
        raise ModelIntegrityError(f"model {version}: {MODEL_FILE} {reason}") from None
    except Exception as exc:  # noqa: BLE001 - a crafted or foreign file fails in any way; each means a bad file
        reason = f"is not a readable skops model: {_one_line(exc)}"
        raise ModelIntegrityError(f"model {version}: {MODEL_FILE} {reason}") from None
    if has_trees:
        _check_tree_predictors(model, version)
    return model


def _check_tree_predictors(model: Any, version: str) -> None:
    """Refuse tree nodes that would make scikit-learn read outside its arrays or loop forever.

    Predicting walks the nodes by their `left`/`right` indices and reads the column `feature_idx`
    without bounds checks. Nodes are stored parents first, so every child index must be greater than
    its parent's and inside the array, and every feature inside the model's inputs. Trees are only
    accepted where they are checked: in a gradient-boosting classifier, bare or in a FraudScoreModel.
    """
    classifier = getattr(model, "classifier", model)
    predictors = getattr(classifier, "_predictors", None)
    if (
        not isinstance(classifier, HistGradientBoostingClassifier)
        or getattr(classifier, "_preprocessor", None) is not None
        or not isinstance(predictors, list)
    ):
        raise ModelIntegrityError(f"model {version}: trees outside a plain gradient-boosting classifier")
    n_features = int(getattr(classifier, "n_features_in_", 0))
    trees = [tree for stage in predictors for tree in (stage if isinstance(stage, list) else [stage])]
    for tree in trees:
        nodes = getattr(tree, "nodes", None)
        if not isinstance(nodes, np.ndarray) or nodes.dtype != PREDICTOR_RECORD_DTYPE or nodes.ndim != 1:
            raise ModelIntegrityError(f"model {version}: a tree has malformed nodes")
        inner = np.flatnonzero(nodes["is_leaf"] == 0)
        children = np.concatenate([nodes["left"][inner], nodes["right"][inner]]).astype(np.int64)
        parents = np.concatenate([inner, inner])
        if (
            nodes.size == 0
            or (children <= parents).any()
            or (children >= nodes.size).any()
            or (nodes["feature_idx"][inner] < 0).any()
            or (nodes["feature_idx"][inner] >= n_features).any()
            or (nodes["is_categorical"] != 0).any()
        ):
            raise ModelIntegrityError(f"model {version}: a tree has node indices out of bounds")


def _one_line(exc: BaseException) -> str:
    """An exception as one short line, for reasons that must fit on one line."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


def _new_version() -> str:
    """UTC creation time to the microsecond (sorts chronologically) plus random hex (unique)."""
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(4)}"


def _pointer_version(lines: list[str]) -> str:
    version = lines[0].strip() if lines else ""
    _check_version_name(version)
    return version


def _check_version_name(version: str) -> None:
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


def _sha256(path: Path) -> str:
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
