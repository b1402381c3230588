"""A bmtk ``NetworkBuilder`` adaptor that takes edges as precomputed numpy arrays.

bmtk's ``DenseNetwork`` keeps one sources × targets count table per edge type and calls a Python rule
for every candidate pair; both grow as the square of the network. Our builders draw their
connectivity with numpy, so this adaptor stores exactly the drawn (source, target) arrays and hands
them to bmtk's own edge collator and writer: the files are what bmtk would write, the cost is linear
in the number of edges. Ordinary connection rules still go through bmtk's dense path.

Use it through bmtk's public switch: ``NetworkBuilder(name, adaptor_cls=SparseNetwork)`` and
``net.add_edges(source=..., target=..., connection_rule=EdgeList(src, trg), **edge_type_props)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from bmtk.builder.network_adaptors.dm_network import DenseNetwork
from bmtk.builder.network_adaptors.edge_props_table import EdgeTypesTableMemory


@dataclass(frozen=True)
class EdgeList:
    """Explicit edges of one edge type: ``sources[k] -> targets[k]`` (node ids), one synapse each."""

    sources: np.ndarray
    targets: np.ndarray

    def __post_init__(self) -> None:
        src = np.asarray(self.sources, dtype=np.uint64)
        trg = np.asarray(self.targets, dtype=np.uint64)
        if src.shape != trg.shape or src.ndim != 1:
            raise ValueError(f"EdgeList needs two 1-D arrays of equal length, got {src.shape} and {trg.shape}")
        object.__setattr__(self, "sources", src)
        object.__setattr__(self, "targets", trg)

    def __len__(self) -> int:
        return int(self.sources.size)


class _SparseEdgeTypesTable(EdgeTypesTableMemory):
    """The edge-type table bmtk's collator reads, backed by two id arrays instead of a dense count table."""

    def __init__(self, connection_map, network_name: str, edges: EdgeList) -> None:  # noqa: D107
        # Deliberately not calling the parent constructor: it allocates the dense S x T table.
        self._connection_map = connection_map
        self._network_name = network_name
        self.source_network = connection_map.source_nodes.network_name
        self.target_network = connection_map.target_nodes.network_name
        self.edge_type_id = connection_map.edge_type_properties["edge_type_id"]
        self.edge_group_id = -1  # assigned by bmtk when the edges are saved
        self._prop_vals = {}
        self._source_nodes_map = None
        self._target_nodes_map = None
        self._nsyns_updated = False
        self._ids = np.column_stack([edges.sources, edges.targets])

    @property
    def n_syns(self) -> int:
        return int(self._ids.shape[0])

    @property
    def n_edges(self) -> int:
        return int(self._ids.shape[0])

    @property
    def edge_type_node_ids(self) -> np.ndarray:
        return self._ids

    def get_property_metatadata(self):  # bmtk's spelling
        return [{"name": "nsyns", "dtype": np.dtype(np.uint32)}]

    def get_property_value(self, prop_name: str) -> np.ndarray:
        if prop_name != "nsyns":
            raise KeyError(prop_name)
        return np.ones(self.n_edges, dtype=np.uint32)

    def set_nsyns(self, source_id, target_id, nsyns):
        raise TypeError("edges of an EdgeList are fixed when it is created")

    def free_data(self) -> None:
        self._ids = np.empty((0, 2), dtype=np.uint64)


class SparseNetwork(DenseNetwork):
    """``DenseNetwork`` that accepts :class:`EdgeList` connection rules without a dense table."""

    def _add_edges(self, connection_map, i):
        edges = connection_map.connector
        if not isinstance(edges, EdgeList):
            return super()._add_edges(connection_map, i)

        for label, ids, pool in (("source", edges.sources, connection_map.source_nodes),
                                 ("target", edges.targets, connection_map.target_nodes)):
            if ids.size and not _all_in(ids, np.fromiter((n.node_id for n in pool), dtype=np.int64)):
                raise ValueError(
                    f"edge type {connection_map.edge_type_id}: some {label} node ids are not in the "
                    f"{label} selection of add_edges()"
                )

        table = _SparseEdgeTypesTable(connection_map, self.name, edges)
        target_net = connection_map.target_nodes
        self._target_networks[target_net.network_name] = target_net.network
        self._nedges += table.n_syns
        self.edges_table().append(table)


def _all_in(ids: np.ndarray, allowed: np.ndarray) -> bool:
    """``np.isin(ids, allowed).all()`` in linear time, for non-negative ids."""
    top = int(max(ids.max(), allowed.max(initial=0))) + 1
    member = np.zeros(top, dtype=bool)
    member[allowed] = True
    return bool(member[ids.astype(np.int64)].all())
