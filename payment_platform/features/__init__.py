"""Behavioural features of payments on event time: one definition (`definitions.py`), two drivers.

`compute_features` featurises a whole payment frame at once (training); `OnlineFeatures` keeps
incremental per-card and per-terminal state and featurises the live stream batch after batch. Both
give the same vectors for the same payments and labels, whatever order they were delivered in.
"""

from payment_platform.features.definitions import (
    CARD_MEAN_WINDOWS,
    CARD_WINDOWS_MS,
    FEATURE_NAMES,
    TERMINAL_LABEL_DELAY_S,
    TERMINAL_WINDOWS_S,
)
from payment_platform.features.offline import compute_features
from payment_platform.features.online import OnlineFeatures

__all__ = [
    "CARD_MEAN_WINDOWS",
    "CARD_WINDOWS_MS",
    "FEATURE_NAMES",
    "TERMINAL_LABEL_DELAY_S",
    "TERMINAL_WINDOWS_S",
    "OnlineFeatures",
    "compute_features",
]
