"""Which MPI rank builds which cell: strategies, their refinement, what a map costs, and the map file.

The names below are the vocabulary the CLI and sweep specs check against without importing the
strategies themselves (METIS, scipy).
"""

STRATEGY_NAMES = ("round_robin", "random", "by_assembly", "by_role", "metis", "metis_volume")
METIS_STRATEGIES = ("metis", "metis_volume")  # the strategies that take an edge weight
EDGE_WEIGHTS = ("synapses", "abs_weight")
