"""Every partition strategy on the same network, side by side: seconds taken and what each map costs."""

from __future__ import annotations

import time

from bmtk_scaling.partition import METIS_STRATEGIES, STRATEGY_NAMES
from bmtk_scaling.partition.metrics import evaluate
from bmtk_scaling.partition.strategies import partition
from bmtk_scaling.sonata.graph import NetworkGraph


def compare_strategies(graph: NetworkGraph, n_ranks: int, seed: int = 0, edge_weight: str = "synapses",
                       strategies: tuple[str, ...] = STRATEGY_NAMES) -> list[dict]:
    """Every strategy on the same graph: seconds taken and metrics, one dict per strategy."""
    rows = []
    for name in strategies:
        options = {"edge_weight": edge_weight} if name in METIS_STRATEGIES else {}
        t0 = time.perf_counter()
        ranks = partition(graph, n_ranks, name, seed=seed, **options)
        seconds = time.perf_counter() - t0
        rows.append({"strategy": name, "seconds": seconds, **evaluate(graph, ranks, n_ranks).as_dict()})
    return rows
