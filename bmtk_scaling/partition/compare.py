"""Every partition strategy on the same network, side by side: seconds taken and what each map costs."""

from __future__ import annotations

import time

from bmtk_scaling.errors import BmtkScalingError
from bmtk_scaling.partition import METIS_STRATEGIES, STRATEGY_NAMES
from bmtk_scaling.partition.metrics import evaluate
from bmtk_scaling.partition.strategies import partition
from bmtk_scaling.sonata.graph import NetworkGraph


def compare_strategies(graph: NetworkGraph, n_ranks: int, seed: int = 0, edge_weight: str = "synapses",
                       strategies: tuple[str, ...] = STRATEGY_NAMES) -> list[dict]:
    """Every strategy on the same graph: seconds taken and metrics, one dict per strategy.

    A strategy this network cannot serve (``by_assembly`` without an ``assembly`` attribute) is listed
    with ``skipped``: the reason, instead of stopping the comparison.
    """
    rows = []
    for name in strategies:
        options = {"edge_weight": edge_weight} if name in METIS_STRATEGIES else {}
        t0 = time.perf_counter()
        try:
            ranks = partition(graph, n_ranks, name, seed=seed, **options)
        except BmtkScalingError as err:
            rows.append({"strategy": name, "skipped": str(err)})
            continue
        seconds = time.perf_counter() - t0
        rows.append({"strategy": name, "seconds": seconds, **evaluate(graph, ranks, n_ranks).as_dict()})
    return rows
