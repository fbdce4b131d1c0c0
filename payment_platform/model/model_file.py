"""A model's file: written and read by skops, never pickle, and only from trusted types.

Whoever can write the registry must not be able to run code in the processes that read it. skops
rebuilds a model from a JSON schema and numpy arrays, and only from the types in TRUSTED_MODEL_TYPES and
skops' defaults (scikit-learn estimators, numpy, builtins); the trees' node arrays are then
bounds-checked, since scikit-learn indexes them unchecked when predicting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import skops.io
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
from skops.io.exceptions import UntrustedTypesFoundException

from payment_platform.model.registry_errors import ModelIntegrityError

MODEL_FILE = "model.skops"
# Types a stored model may hold beyond skops' defaults. The tree predictor is outside them because its
# node indices are used unchecked when predicting; _check_tree_predictors bounds-checks them on load.
TRUSTED_MODEL_TYPES = (
    "payment_platform.model.training.FraudScoreModel",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)
_TREE_PREDICTOR = TRUSTED_MODEL_TYPES[1]


def dump_model(model: Any, path: Path) -> None:
    """Write the model with skops; refuse one the registry would refuse to load, before it is stored."""
    try:
        skops.io.dump(model, path)
        untrusted = sorted(set(skops.io.get_untrusted_types(file=path)) - set(TRUSTED_MODEL_TYPES))
    except Exception as exc:  # noqa: BLE001 - skops refuses unsupported objects in several ways
        raise ValueError(f"the model cannot be stored safely: {one_line(exc)}") from None
    if untrusted:
        raise ValueError(f"the model holds types the registry does not load: {', '.join(untrusted)}")


def load_model(path: Path, version: str) -> Any:
    """The model rebuilt by skops from trusted types only, its tree arrays bounds-checked."""
    try:
        has_trees = _TREE_PREDICTOR in skops.io.get_untrusted_types(file=path)
        model = skops.io.load(path, trusted=list(TRUSTED_MODEL_TYPES))
    except UntrustedTypesFoundException as exc:
        reason = f"holds types outside the trusted list: {one_line(exc)}"
        raise ModelIntegrityError(f"model {version}: {MODEL_FILE} {reason}") from None
    except Exception as exc:  # noqa: BLE001 - a crafted or foreign file fails in any way; each means a bad file
        reason = f"is not a readable skops model: {one_line(exc)}"
        raise ModelIntegrityError(f"model {version}: {MODEL_FILE} {reason}") from None
    if has_trees:
        check_tree_predictors(model, version)
    return model


def check_tree_predictors(model: Any, version: str) -> None:
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


def one_line(exc: BaseException) -> str:
    """An exception as one short line, for reasons that must fit on one line."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__
