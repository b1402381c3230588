"""What a node -> rank map will cost, known before anything runs.

- synapses cut: synapses whose source and target cells are on different ranks (each needs the
  source's spikes delivered from another rank);
- communication volume: distinct (source cell, target rank) pairs with the source on another rank,
  i.e. the InputPresyn objects NEURON creates and the spike deliveries a targeted exchange makes;
- per-rank cells and cost (1 + afferent synapses per cell), imbalance = max / mean cost: the
  slowest rank sets the pace of every step;
- the smallest delay over cross-rank edges: NEURON exchanges spikes every min-delay interval, so a
  larger value means fewer exchanges (an intra-rank delay does not bound it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from bmtk_scaling.errors import PartitionError
from bmtk_scaling.sonata.graph import NO_VERTEX, NetworkGraph


@dataclass(frozen=True)
class PartitionMetrics:
    n_ranks: int
    n_cells: int
    n_synapses: int
    synapses_cut: int
    communication_volume: int
    cells_per_rank: list[int]
    cost_per_rank: list[int]
    imbalance: float  # max / mean cost per rank
    min_cross_rank_delay: float | None  # ms; None when no edge crosses ranks

    @property
    def cut_fraction(self) -> float:
        return self.synapses_cut / self.n_synapses if self.n_synapses else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "cut_fraction": self.cut_fraction}


def evaluate(graph: NetworkGraph, ranks: np.ndarray, n_ranks: int) -> PartitionMetrics:
    """Metrics of a map given as the rank of every vertex of ``graph``."""
    ranks = np.asarray(ranks, dtype=np.int64)
    if ranks.shape != (graph.n_vertices,):
        raise PartitionError(f"need a rank for each of the {graph.n_vertices} cells, got {ranks.shape}")
    internal = graph.source != NO_VERTEX  # virtual sources are replicated where needed: never exchanged
    src, trg = graph.source[internal], graph.target[internal]
    src_rank, trg_rank = ranks[src], ranks[trg]
    cross = src_rank != trg_rank
    cost = np.bincount(ranks, weights=graph.cost(), minlength=n_ranks)
    cells = np.bincount(ranks, minlength=n_ranks)
    delays = graph.delay[internal][cross]
    min_delay = float(np.nanmin(delays)) if delays.size and not np.isnan(delays).all() else None
    return PartitionMetrics(
        n_ranks=int(n_ranks),
        n_cells=int(graph.n_vertices),
        n_synapses=graph.n_synapses,
        synapses_cut=int(graph.nsyns[internal][cross].sum()),
        communication_volume=communication_volume(src[cross], trg_rank[cross], graph.n_vertices, n_ranks),
        cells_per_rank=cells.astype(int).tolist(),
        cost_per_rank=cost.astype(np.int64).tolist(),
        imbalance=float(cost.max() / cost.mean()) if cost.mean() > 0 else math.nan,
        min_cross_rank_delay=min_delay,
    )


def communication_volume(cross_sources: np.ndarray, cross_target_ranks: np.ndarray, n_cells: int,
                         n_ranks: int) -> int:
    """Distinct (source cell, target rank) pairs among cross-rank edges (an n_cells x R bitmap, O(edges))."""
    seen = np.zeros(n_cells * n_ranks, dtype=bool)
    seen[cross_sources * n_ranks + cross_target_ranks] = True
    return int(np.count_nonzero(seen))
