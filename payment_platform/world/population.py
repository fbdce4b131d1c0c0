"""Cards and terminals: who pays, how much, how often, and where.

Both live on a square map where most people and shops cluster in a few towns and the rest are
spread over the countryside. A card has a home, its own spending level (log-normal amounts), its
own rhythm (payments per day) and a handful of habitual terminals near home, so "a terminal this
card never used, far from home" means something. The population depends on the seed and the sizes
only, never on the day.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from payment_platform.world.seeds import NO_DAY, Stream, rng_for

MAP_SIZE = 100.0
N_TOWNS = 12
TOWN_SHARE = 0.75  # of homes and terminals; the rest are uniform over the map
MEAN_PAYMENTS_PER_CARD = 2.0  # per day, averaged over the week
HABITUAL_TERMINALS = 5  # per card; the first ones are used most
TERMINALS_PER_CELL = 8  # on average, in the grid that finds a terminal near a spot


@dataclass(frozen=True)
class Terminals:
    """Merchant terminals located on the map, bucketed in grid cells to find one near a spot fast.

    A random terminal of the spot's cell is as good as the nearest one for "a shop around there"
    and costs an array lookup; only spots in empty cells ask the (slower) k-d tree.
    """

    location: np.ndarray  # (n, 2) float
    index: cKDTree
    cells_per_side: int
    by_cell: np.ndarray  # terminal indices ordered by cell
    cell_start: np.ndarray  # (cells + 1,) offsets of each cell's terminals in by_cell

    @staticmethod
    def at(location: np.ndarray) -> Terminals:
        cells_per_side = max(1, int(np.sqrt(len(location) / TERMINALS_PER_CELL)))
        cell = _cell_of(location, cells_per_side)
        counts = np.bincount(cell, minlength=cells_per_side**2)
        return Terminals(
            location=location,
            index=cKDTree(location),
            cells_per_side=cells_per_side,
            by_cell=np.argsort(cell, kind="stable"),
            cell_start=np.concatenate([[0], np.cumsum(counts)]),
        )

    def __len__(self) -> int:
        return len(self.location)

    def near(self, rng: np.random.Generator, spots: np.ndarray) -> np.ndarray:
        """A terminal close to each spot of an (n, 2) array: a random one of its cell, else the nearest."""
        spots = np.clip(spots.reshape(-1, 2), 0.0, MAP_SIZE)
        cell = _cell_of(spots, self.cells_per_side)
        start, end = self.cell_start[cell], self.cell_start[cell + 1]
        pick = start + (rng.random(len(spots)) * (end - start)).astype(np.int64)
        chosen = self.by_cell[np.minimum(pick, len(self) - 1)]
        empty = np.flatnonzero(end == start)
        if len(empty):
            chosen[empty] = self.index.query(spots[empty])[1]
        return chosen.astype(np.int64)


def _cell_of(points: np.ndarray, cells_per_side: int) -> np.ndarray:
    column = np.clip((points[:, 0] * cells_per_side / MAP_SIZE).astype(np.int64), 0, cells_per_side - 1)
    row = np.clip((points[:, 1] * cells_per_side / MAP_SIZE).astype(np.int64), 0, cells_per_side - 1)
    return row * cells_per_side + column


@dataclass(frozen=True)
class Cards:
    """Per-card habits as parallel arrays, indexed by card number."""

    home: np.ndarray  # (n, 2) float
    payments_per_day: np.ndarray  # mean of a Poisson count
    amount_log_mean: np.ndarray  # amounts are log-normal per card
    amount_log_sd: np.ndarray
    reach: np.ndarray  # how far from home the card usually pays (map units)
    habitual_terminals: np.ndarray  # (n, HABITUAL_TERMINALS) terminal indices

    def __len__(self) -> int:
        return len(self.home)


def _locations(
    rng: np.random.Generator, n: int, towns: np.ndarray, spread: np.ndarray, weight: np.ndarray
) -> np.ndarray:
    """Points clustered around towns, with a uniform countryside share."""
    town = rng.choice(len(towns), size=n, p=weight)
    clustered = towns[town] + rng.normal(size=(n, 2)) * spread[town, None]
    uniform = rng.uniform(0.0, MAP_SIZE, size=(n, 2))
    in_town = rng.random(n) < TOWN_SHARE
    return np.clip(np.where(in_town[:, None], clustered, uniform), 0.0, MAP_SIZE)


def build_population(seed: int, n_cards: int, n_terminals: int) -> tuple[Cards, Terminals]:
    """The cards and terminals of a world, from its seed and sizes alone."""
    rng = rng_for(seed, NO_DAY, Stream.POPULATION)
    towns = rng.uniform(10.0, MAP_SIZE - 10.0, size=(N_TOWNS, 2))
    spread = rng.uniform(2.0, 7.0, size=N_TOWNS)
    weight = rng.dirichlet(np.full(N_TOWNS, 2.0))

    terminal_location = _locations(rng, n_terminals, towns, spread, weight)
    terminals = Terminals.at(terminal_location)

    home = _locations(rng, n_cards, towns, spread, weight)
    reach = rng.lognormal(np.log(1.5), 0.5, size=n_cards)
    favourite_spots = home[:, None, :] + rng.normal(size=(n_cards, HABITUAL_TERMINALS, 2)) * reach[:, None, None]
    habitual = terminals.near(rng, favourite_spots).reshape(n_cards, HABITUAL_TERMINALS)
    cards = Cards(
        home=home,
        payments_per_day=rng.gamma(shape=2.0, scale=MEAN_PAYMENTS_PER_CARD / 2.0, size=n_cards),
        amount_log_mean=rng.normal(np.log(30.0), 0.55, size=n_cards),
        amount_log_sd=rng.uniform(0.35, 0.85, size=n_cards),
        reach=reach,
        habitual_terminals=habitual,
    )
    return cards, terminals
