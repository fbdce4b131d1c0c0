"""Independent random streams of the world, one per (seed, day, purpose).

Deriving every generator from ``SeedSequence([seed, day_ordinal, stream])`` makes any day
reproducible on its own: generating day X never depends on having generated day X-1, and adding a
new stream never shifts the numbers another stream draws.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

# The population is the same on every day; it uses this ordinal in place of a day.
NO_DAY = 0


class Stream(IntEnum):
    """What a generator is used for; its value is part of the seed, so never renumber."""

    POPULATION = 0
    TRAFFIC = 1
    TERMINAL_COMPROMISE = 2
    CARD_COMPROMISE = 3
    COMPROMISED_CARD_PAYMENTS = 4
    CARD_TESTING = 5
    AMOUNT_OUTLIER = 6


def rng_for(seed: int, day_ordinal: int, stream: Stream) -> np.random.Generator:
    """The generator of one stream on one day."""
    return np.random.default_rng(np.random.SeedSequence([seed, day_ordinal, int(stream)]))
