"""Node -> rank strategies: each maps a SONATA network and a rank count to the rank of every cell.

A strategy is ``fn(graph, n_ranks, *, seed, **options) -> ranks`` where ``ranks[v]`` is the rank of
vertex ``v`` of the :class:`~bmtk_scaling.sonata_graph.NetworkGraph` (its non-virtual nodes, population
by population, in row order). ``partition()`` picks one by name; ``STRATEGIES`` lists them.

- ``round_robin``   bmtk's own placement (row i of each population goes to rank i % R): the baseline.
- ``random``        a seeded shuffle dealt in equal shares: what placement "by accident" costs.
- ``by_assembly``   contiguous blocks in ``assembly`` order, balanced by compute cost; block edges
                    fall on assembly boundaries whenever that keeps each rank within ``tolerance``.
- ``metis``         METIS k-way, minimum edge cut of the undirected connectivity graph; edge weight =
                    synapses between the two cells (or summed |syn_weight|), vertex weight = compute
                    cost (1 + afferent synapses), so ranks balance work, not cell counts.
- ``metis_volume``  minimum communication volume: the best (by directed volume) of three METIS runs on
                    the same weighted graph (k-way with METIS's volume objective ``objtype=vol``,
                    k-way cut, recursive-bisection cut), then a greedy refinement of the directed
                    volume itself (``volume_refine``). Never worse in volume than ``metis``. Why a
                    portfolio: no single METIS mode wins everywhere (README, "Partitioning").
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
import pymetis
import scipy.sparse as sp

from bmtk_scaling.errors import BmtkScalingError, PartitionError
from bmtk_scaling.partition import EDGE_WEIGHTS, METIS_STRATEGIES, STRATEGY_NAMES
from bmtk_scaling.partition.metrics import communication_volume
from bmtk_scaling.partition.refine import directed_pairs, refine_volume
from bmtk_scaling.sonata.graph import NO_VERTEX, NetworkGraph

METIS_UFACTOR = 30  # METIS's default k-way tolerance: the heaviest rank may carry 3 % over the mean cost
_ABS_WEIGHT_SCALE = 1_000_000  # summed |weight| -> integers: the heaviest pair gets this, the lightest >= 1


def round_robin(graph: NetworkGraph, n_ranks: int, *, seed: int = 0) -> np.ndarray:
    """bmtk's placement: within each population, row i on rank i % R (virtual rows skipped by bionet)."""
    return np.concatenate([(p.cell_rows % n_ranks) for p in graph.populations] or [np.zeros(0, np.int64)])


def random(graph: NetworkGraph, n_ranks: int, *, seed: int = 0) -> np.ndarray:
    """A seeded random permutation of the cells dealt in equal shares (sizes differ by at most one)."""
    n = graph.n_vertices
    ranks = np.empty(n, np.int64)
    ranks[np.random.default_rng(seed).permutation(n)] = np.arange(n) % n_ranks
    return ranks


def by_assembly(graph: NetworkGraph, n_ranks: int, *, seed: int = 0, attribute: str = "assembly",
                tolerance: float = 0.05) -> np.ndarray:
    """Cells sorted by ``attribute`` cut into R contiguous blocks of equal compute cost.

    Each block edge is moved to the nearest assembly boundary when that changes the block's cost by
    at most ``tolerance`` of the mean rank cost (so 2 assemblies on 2 ranks stay whole, 50 cliques on
    4 ranks go 12/13/12/13); otherwise the assembly is split where the costs balance.
    """
    if not 0.0 <= tolerance < 1.0:
        raise PartitionError(f"tolerance must be in [0, 1), got {tolerance}")
    try:
        key = graph.attribute(attribute)
    except BmtkScalingError as err:
        raise PartitionError(f"by_assembly needs the node attribute {attribute!r}, which this network lacks ({err}): "
                             "choose metis or metis_volume, which read the connectivity instead") from None
    order = _assembly_order(key, graph.attribute("node_type_id"))
    cum = np.cumsum(graph.cost()[order])
    total = float(cum[-1]) if cum.size else 0.0
    bounds_at = np.flatnonzero(key[order][1:] != key[order][:-1]) + 1  # first index of each new assembly
    cum_at_bounds = cum[bounds_at - 1] if bounds_at.size else np.zeros(0)
    cuts = [0]
    for k in range(1, n_ranks):
        ideal = total * k / n_ranks
        i = int(np.searchsorted(cum, ideal, side="left"))  # cum[i-1] < ideal <= cum[i]
        before = cum[i - 1] if i > 0 else 0.0
        cut = i + 1 if i < cum.size and cum[i] - ideal < ideal - before else i  # the closer of the two
        if bounds_at.size:
            j = int(np.argmin(np.abs(cum_at_bounds - ideal)))
            if abs(cum_at_bounds[j] - ideal) <= tolerance * total / n_ranks:
                cut = int(bounds_at[j])
        cuts.append(max(cut, cuts[-1]))
    ranks = np.empty(cum.size, np.int64)
    ranks[order] = np.searchsorted(np.asarray(cuts), np.arange(cum.size), side="right") - 1
    return ranks


def by_role(graph: NetworkGraph, n_ranks: int, *, seed: int = 0) -> np.ndarray:
    """Each ``role`` (N-Pairs: receiver, sender) on its own share of the ranks, its cells dealt round robin
    there: on 2 ranks every receiver on rank 0 and every sender on rank 1, so every synapse crosses (Fig. 1
    C's senders on one site and receivers on the other). Balance is not the aim."""
    try:
        role = graph.attribute("role")
    except BmtkScalingError:
        raise PartitionError("by_role needs the node attribute 'role' (N-Pairs has it: sender / receiver), which "
                             "this network lacks: choose another strategy") from None
    names, group = np.unique(role, return_inverse=True)
    if n_ranks < len(names):
        raise PartitionError(f"by_role puts each of the {len(names)} roles on its own ranks: use at least "
                             f"{len(names)} ranks, got {n_ranks}")
    ranks = np.empty(group.size, np.int64)
    for g in range(len(names)):
        first, last = g * n_ranks // len(names), (g + 1) * n_ranks // len(names)
        members = np.flatnonzero(group == g)
        ranks[members] = first + np.arange(members.size) % (last - first)
    return ranks


def _assembly_order(assembly: np.ndarray, node_type: np.ndarray) -> np.ndarray:
    """Cells by assembly; inside one, each node type spread evenly along the block (by its fractional
    position among the assembly's cells of that type), so an assembly split between ranks gives each
    its share of every cell type instead of, say, all E cells to one rank and all I cells to the other.
    """
    groups = np.unique(np.stack([np.unique(assembly, return_inverse=True)[1],
                                 np.unique(node_type, return_inverse=True)[1]]), axis=1, return_inverse=True)[1]
    groups = groups.ravel()
    by_group = np.argsort(groups, kind="stable")
    sizes = np.bincount(groups)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    position = np.empty(groups.size, np.float64)
    position[by_group] = np.arange(groups.size) - np.repeat(starts, sizes)
    fraction = (position + 0.5) / sizes[groups]
    return np.lexsort((np.arange(groups.size), fraction, assembly))


def metis(graph: NetworkGraph, n_ranks: int, *, seed: int = 0, edge_weight: str = "synapses") -> np.ndarray:
    """METIS k-way partition minimising the weighted edge cut under a compute-cost balance constraint."""
    return metis_mode(graph, n_ranks, seed, edge_weight, pymetis.ObjType.CUT)


def metis_volume(graph: NetworkGraph, n_ranks: int, *, seed: int = 0, edge_weight: str = "synapses",
                 refine: bool = True) -> np.ndarray:
    """Partition with the least communication volume among METIS's modes, then refined for volume.

    METIS's own volume objective counts undirected neighbours and, like its k-way cut, often ends
    in a worse directed volume than recursive bisection (measured in the README); so all three run
    and the map with the smallest directed volume is kept and refined under the same balance cap.
    """
    if n_ranks == 1:
        return np.zeros(graph.n_vertices, np.int64)
    candidates = [
        metis_mode(graph, n_ranks, seed, edge_weight, pymetis.ObjType.VOL),
        metis_mode(graph, n_ranks, seed, edge_weight, pymetis.ObjType.CUT),
        metis_mode(graph, n_ranks, seed, edge_weight, pymetis.ObjType.CUT, recursive=True),
    ]
    src, trg, mult = directed_pairs(*_internal_edges(graph), graph.n_vertices)
    cost = graph.cost()
    # Balance cap: METIS's 3 %, or what its k-way cut reached where it could not meet that (few, heavy cells).
    cap = max(1 + METIS_UFACTOR / 1000, _imbalance(candidates[1], cost, n_ranks))
    feasible = [r for r in candidates if _imbalance(r, cost, n_ranks) <= cap]
    best = min(feasible, key=lambda r: _pair_volume(src, trg, r, graph.n_vertices, n_ranks))
    if not refine:
        return best
    return refine_volume(src, trg, mult, best, cost, n_ranks, max_imbalance=cap)


STRATEGIES: dict[str, Callable[..., np.ndarray]] = {
    "round_robin": round_robin,
    "random": random,
    "by_assembly": by_assembly,
    "by_role": by_role,
    "metis": metis,
    "metis_volume": metis_volume,
}
assert tuple(STRATEGIES) == STRATEGY_NAMES, "bmtk_scaling.partition.STRATEGY_NAMES must list every strategy"
__all__ = ["EDGE_WEIGHTS", "METIS_STRATEGIES", "STRATEGIES", "partition", "undirected_adjacency"]


def partition(graph: NetworkGraph, n_ranks: int, strategy: str, *, seed: int = 0, **options) -> np.ndarray:
    """The rank of every vertex of ``graph`` under ``strategy`` (a name in ``STRATEGIES``)."""
    if strategy not in STRATEGIES:
        raise PartitionError(f"unknown partition strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    if isinstance(n_ranks, bool) or not isinstance(n_ranks, (int, np.integer)) or n_ranks < 1:
        raise PartitionError(f"the rank count must be a positive integer, got {n_ranks!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise PartitionError(f"seed must be a non-negative integer, got {seed!r}")
    if graph.n_vertices == 0:
        raise PartitionError("the network has no cells to partition")
    fn = STRATEGIES[strategy]
    accepted = set(inspect.signature(fn).parameters) - {"graph", "n_ranks", "seed"}
    if set(options) - accepted:
        raise PartitionError(f"strategy {strategy!r} takes no option {sorted(set(options) - accepted)}; "
                         f"its options: {sorted(accepted) or 'none'}")
    if n_ranks > graph.n_vertices:
        raise PartitionError(f"{graph.n_vertices} cells cannot fill {n_ranks} ranks (every rank needs at least "
                             f"one cell): use at most {graph.n_vertices} ranks")
    ranks = np.asarray(fn(graph, int(n_ranks), seed=int(seed), **options), dtype=np.int64)
    assert ranks.shape == (graph.n_vertices,) and (ranks >= 0).all() and (ranks < n_ranks).all()
    empty = np.flatnonzero(np.bincount(ranks, minlength=n_ranks) == 0)
    if empty.size:
        raise PartitionError(f"strategy {strategy!r} leaves {empty.size} of {n_ranks} ranks without a cell "
                             f"(ranks {empty[:10].tolist()}): use fewer ranks or another strategy")
    return ranks


def undirected_adjacency(graph: NetworkGraph, edge_weight: str = "synapses") -> sp.csr_matrix:
    """Symmetric cell x cell matrix: synapses (or summed |syn_weight|) between two cells, both directions.

    Self-connections and edges from virtual sources are left out: neither crosses ranks.
    """
    if edge_weight not in EDGE_WEIGHTS:
        raise PartitionError(f"edge_weight must be one of {EDGE_WEIGHTS}, got {edge_weight!r}")
    keep = (graph.source != NO_VERTEX) & (graph.source != graph.target)
    if edge_weight == "synapses":
        data = graph.nsyns[keep].astype(np.float64)
    else:
        w = graph.weight[keep]
        if np.isnan(w).any():
            raise PartitionError("edge_weight='abs_weight' needs a syn_weight on every edge; the network lacks some")
        data = np.abs(w) * graph.nsyns[keep]
    n = graph.n_vertices
    a = sp.csr_matrix((data, (graph.source[keep], graph.target[keep])), shape=(n, n))
    a = (a + a.T).tocsr()
    a.sum_duplicates()
    a.sort_indices()
    return a


def _internal_edges(graph: NetworkGraph) -> tuple[np.ndarray, np.ndarray]:
    keep = graph.source != NO_VERTEX
    return graph.source[keep], graph.target[keep]


def _imbalance(ranks: np.ndarray, cost: np.ndarray, n_ranks: int) -> float:
    load = np.bincount(ranks, weights=cost, minlength=n_ranks)
    return float(load.max() / load.mean())


def _pair_volume(src: np.ndarray, trg: np.ndarray, ranks: np.ndarray, n: int, n_ranks: int) -> int:
    cross = ranks[src] != ranks[trg]
    return communication_volume(src[cross], ranks[trg[cross]], n, n_ranks)


def metis_mode(graph: NetworkGraph, n_ranks: int, seed: int, edge_weight: str, objective,
               recursive: bool = False) -> np.ndarray:
    """One METIS run on the weighted cell graph: ``objective`` a ``pymetis.ObjType``, k-way or recursive."""
    n = graph.n_vertices
    if n_ranks == 1:
        return np.zeros(n, np.int64)
    if n_ranks > n:
        raise PartitionError(f"METIS cannot split {n} cells over {n_ranks} ranks (more ranks than cells)")
    a = undirected_adjacency(graph, edge_weight)
    weights = a.data
    if edge_weight == "abs_weight":
        top = weights.max() if weights.size else 1.0
        weights = weights * (_ABS_WEIGHT_SCALE / top) if top > 0 else np.ones_like(weights)
    eweights = np.maximum(np.rint(weights), 1).astype(np.int64)  # METIS wants integers > 0
    options = pymetis.Options(seed=int(seed), ufactor=METIS_UFACTOR, objtype=int(objective))
    result = pymetis.part_graph(
        n_ranks,
        pymetis.CSRAdjacency(a.indptr.astype(np.int64), a.indices.astype(np.int64)),
        vweights=graph.cost(),
        eweights=eweights,
        recursive=recursive,  # pymetis would pick recursive bisection by itself for R <= 8: always say which
        options=options,
    )
    return np.asarray(result.vertex_part, dtype=np.int64)
