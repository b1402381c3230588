"""Greedy refinement of a node -> rank map for lower (directed) communication volume.

Volume = distinct (source cell, target rank) pairs with the source on another rank: NEURON makes one
InputPresyn per such pair and a targeted spike exchange sends one message per pair and spike. METIS
minimises edge cut, or an undirected volume of its own; this pass optimises the directed quantity
directly, starting from any map, with every candidate move scored exactly and all at once:

moving cell v from rank a to rank b changes
  - v's own term by  [v targets a] - [v targets b]             (a becomes "another rank", b stops being one)
  - each presynaptic cell u's term by  -[u's only targets on a are v's synapses, a != rank(u)]
                                       +[u has no target on b yet, b != rank(u)]
Counts C[u, r] (synapses of u onto rank r) make all of these array look-ups, so one pass costs
O(edges x ranks) in numpy. The best moves (highest gain, each into a rank with room under the
balance cap) are applied as a batch; since moves of neighbouring cells interact, the batch is
kept only if the exact volume falls, else halved until it does.
"""

from __future__ import annotations

import numpy as np


def directed_pairs(source: np.ndarray, target: np.ndarray, n_cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique (source, target) cell pairs and their multiplicity; self-connections dropped."""
    keep = source != target
    key = source[keep].astype(np.int64) * n_cells + target[keep]
    key, mult = np.unique(key, return_counts=True)
    return key // n_cells, key % n_cells, mult.astype(np.int64)


def refine_volume(src: np.ndarray, trg: np.ndarray, mult: np.ndarray, ranks: np.ndarray, cost: np.ndarray,
                  n_ranks: int, max_imbalance: float = 1.03, max_passes: int = 30,
                  min_gain_fraction: float = 1e-4) -> np.ndarray:
    """Return a copy of ``ranks`` with lower or equal volume and max/mean cost <= max(max_imbalance, now).

    ``src, trg, mult`` are unique directed cell pairs (see :func:`directed_pairs`); ``cost`` per cell.
    Stops after ``max_passes`` or when a pass gains less than ``min_gain_fraction`` of the volume.
    """
    ranks = np.asarray(ranks, dtype=np.int64).copy()
    n = ranks.size
    if n_ranks < 2 or src.size == 0:
        return ranks
    cost = np.asarray(cost, dtype=np.float64)
    load = np.bincount(ranks, weights=cost, minlength=n_ranks)
    cap = max(max_imbalance * load.mean(), load.max())
    volume = _volume(src, trg, ranks, n, n_ranks)
    for _ in range(max_passes):
        counts = _counts(src, trg, mult, ranks, n, n_ranks)
        gain, dest = _best_moves(src, trg, mult, ranks, counts, n, n_ranks)
        movers = np.flatnonzero(gain > 0)
        if movers.size == 0:
            break
        movers = movers[np.argsort(-gain[movers], kind="stable")]
        movers = _fit_capacity(movers, dest, cost, load, cap, n_ranks)
        if movers.size == 0:
            break
        batch = movers.size
        while batch >= 1:
            trial = ranks.copy()
            chosen = movers[:batch]
            trial[chosen] = dest[chosen]
            new_volume = _volume(src, trg, trial, n, n_ranks)
            if new_volume < volume:
                break
            batch //= 2
        if batch < 1:
            break
        gained = volume - new_volume
        ranks, volume = trial, new_volume
        load = np.bincount(ranks, weights=cost, minlength=n_ranks)
        if gained < min_gain_fraction * max(volume, 1):
            break
    return ranks


def _counts(src, trg, mult, ranks, n, n_ranks) -> np.ndarray:
    """C[u, r]: synapses from cell u onto cells of rank r."""
    return np.bincount(src * n_ranks + ranks[trg], weights=mult, minlength=n * n_ranks).reshape(n, n_ranks)


def _volume(src, trg, ranks, n, n_ranks) -> int:
    cross = ranks[src] != ranks[trg]
    seen = np.zeros(n * n_ranks, dtype=bool)
    seen[src[cross] * n_ranks + ranks[trg[cross]]] = True
    return int(np.count_nonzero(seen))


def _best_moves(src, trg, mult, ranks, counts, n, n_ranks) -> tuple[np.ndarray, np.ndarray]:
    """Exact volume gain of each cell's best single move, and its destination rank."""
    present = counts > 0
    own = ranks  # a = rank of the moving cell
    rank_src = ranks[src]
    a_of_trg = ranks[trg]
    # Loss the move removes: u's synapses onto rank a are exactly those onto v (and a is not u's rank).
    lose = (counts[src, a_of_trg] == mult) & (a_of_trg != rank_src)
    removed = np.bincount(trg, weights=lose, minlength=n)
    delta = np.empty((n, n_ranks))
    own_present = present[np.arange(n), own]
    for b in range(n_ranks):
        added = (~present[src, b]) & (rank_src != b)  # u gets a new target rank b
        delta[:, b] = own_present.astype(np.float64) - present[:, b] + np.bincount(trg, weights=added, minlength=n)
    delta -= removed[:, None]
    delta[np.arange(n), own] = np.inf
    dest = np.argmin(delta, axis=1)
    return -delta[np.arange(n), dest], dest


def _fit_capacity(movers, dest, cost, load, cap, n_ranks) -> np.ndarray:
    """Keep movers (in gain order) while each destination's added cost stays within its room under ``cap``."""
    keep = np.zeros(movers.size, dtype=bool)
    for b in range(n_ranks):
        into_b = np.flatnonzero(dest[movers] == b)
        room = cap - load[b]
        keep[into_b] = np.cumsum(cost[movers[into_b]]) <= room
    return movers[keep]
