"""A SONATA network as numpy arrays: cells, their attributes, every connection with synapses, delay, weight.

Partition strategies and metrics need the whole connectivity at once, so this reads it vectorised
(h5py datasets, node/edge types CSVs joined on their type ids) instead of edge by edge as bmtk does:
a 9 M-edge network reads in seconds.

Vertices are the cells bionet places on ranks: every node whose ``model_type`` is not ``virtual``,
numbered population by population (in config order) and row by row within a population. Virtual
(spike-input) nodes are replicated on every rank that needs them, so they are not vertices; their
synapses still cost work on the target's rank and count in its in-degree. Edges with ``nsyns`` 0
make no synapse in bionet and are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from bmtk_scaling.errors import BmtkScalingError
from bmtk_scaling.sonata.configs import NetworkFiles, network_files

NO_VERTEX = -1


@dataclass
class NodePopulation:
    """One node population: node ids and virtual flags in file row order."""

    name: str
    nodes_file: Path
    node_types_file: Path
    node_ids: np.ndarray  # int64, per row
    virtual: np.ndarray  # bool, per row
    first_vertex: int  # vertex index of the first non-virtual row

    @property
    def n_cells(self) -> int:
        return int(np.count_nonzero(~self.virtual))

    @property
    def cell_rows(self) -> np.ndarray:
        return np.flatnonzero(~self.virtual)

    def vertex_of_rows(self) -> np.ndarray:
        """Vertex index of every row; NO_VERTEX for virtual rows."""
        v = self.first_vertex + np.cumsum(~self.virtual) - 1
        v[self.virtual] = NO_VERTEX
        return v

    def rows_of(self, node_ids: np.ndarray) -> np.ndarray:
        """Row of each node id; raise BmtkScalingError for ids the population does not have."""
        node_ids = np.asarray(node_ids, dtype=np.int64)
        n = self.node_ids.size
        if np.array_equal(self.node_ids, np.arange(n)):  # the common case: node id == row
            bad = (node_ids < 0) | (node_ids >= n)
            rows = node_ids
        else:
            order = np.argsort(self.node_ids, kind="stable")
            pos = np.searchsorted(self.node_ids[order], node_ids)
            pos_c = np.minimum(pos, n - 1)
            bad = (pos >= n) | (self.node_ids[order][pos_c] != node_ids)
            rows = order[pos_c]
        if bad.any():
            raise BmtkScalingError(f"node population {self.name!r} has no node ids "
                                   f"{np.unique(node_ids[bad])[:10].tolist()}")
        return rows

    def attribute(self, name: str) -> np.ndarray:
        """Values of a node attribute per row, from the node groups or else from the node types CSV."""
        with h5py.File(self.nodes_file, "r") as h5:
            pop = h5["nodes"][self.name]
            return _gather(pop, name, _read_types(self.node_types_file), pop["node_type_id"][()],
                           "node_group_id", "node_group_index", f"node population {self.name!r}")


@dataclass
class NetworkGraph:
    """Cells (vertices) and connections between them; one entry per SONATA edge with nsyns > 0."""

    files: NetworkFiles
    populations: list[NodePopulation]
    source: np.ndarray  # int64 vertex of each edge's source; NO_VERTEX for a virtual source
    target: np.ndarray  # int64 vertex of each edge's target
    nsyns: np.ndarray  # int64 synapses per edge (bionet makes one synapse object each)
    delay: np.ndarray  # float64 ms; NaN where the network does not say
    weight: np.ndarray  # float64 syn_weight; NaN where the network does not say
    cell_cost: np.ndarray | None = None  # int64 per vertex: the cell's own compute cost (None: 1 each)

    @property
    def n_vertices(self) -> int:
        return sum(p.n_cells for p in self.populations)

    @property
    def n_synapses(self) -> int:
        return int(self.nsyns.sum())

    def cost(self) -> np.ndarray:
        """Estimated compute cost per cell: the cell's own (``cell_cost``, 1 by default) + its afferent synapses.

        ``cell_cost`` is set from NEURON's measure of each cell type's complexity for multi-compartment
        networks (:mod:`bmtk_scaling.bionet.complexity`); a synapse counts 1 either way (one point process).
        """
        own = self.cell_cost if self.cell_cost is not None else 1
        return own + np.bincount(self.target, weights=self.nsyns, minlength=self.n_vertices).astype(np.int64)

    def set_cell_costs(self, by_type: dict[str, dict[int, float]]) -> None:
        """Per-vertex ``cell_cost`` from costs per (population, node type id); unknown types cost 1."""
        costs = []
        for pop in self.populations:
            if not pop.n_cells:
                continue
            types = pop.attribute("node_type_id")[pop.cell_rows].astype(np.int64)
            table = by_type.get(pop.name, {})
            costs.append(np.array([max(1, int(round(table.get(int(t), 1)))) for t in types], dtype=np.int64))
        self.cell_cost = np.concatenate(costs) if costs else None

    def attribute(self, name: str) -> np.ndarray:
        """A node attribute per vertex."""
        return np.concatenate([p.attribute(name)[p.cell_rows] for p in self.populations if p.n_cells])

    def vertex_population(self) -> np.ndarray:
        """Index into ``populations`` of each vertex."""
        return np.repeat(np.arange(len(self.populations)), [p.n_cells for p in self.populations])

    def vertex_node_ids(self) -> np.ndarray:
        return np.concatenate([p.node_ids[p.cell_rows] for p in self.populations] or [np.zeros(0, np.int64)])

    def population_index(self) -> dict[str, NodePopulation]:
        return {p.name: p for p in self.populations}


def read_nodes(files: NetworkFiles) -> list[NodePopulation]:
    """Every node population of the network's node files (ids, virtual flags), in config order."""
    pops: list[NodePopulation] = []
    first = 0
    for nf in files.nodes:
        types = _read_types(nf.node_types_file)
        with h5py.File(nf.nodes_file, "r") as h5:
            for name, pop in h5.get("nodes", {}).items():
                type_ids = pop["node_type_id"][()]
                n = type_ids.size
                node_ids = pop["node_id"][()].astype(np.int64) if "node_id" in pop else np.arange(n, dtype=np.int64)
                model_type = _gather(pop, "model_type", types, type_ids, "node_group_id", "node_group_index",
                                     f"node population {name!r}", required=False)
                virtual = (np.zeros(n, bool) if model_type is None
                           else np.asarray(pd.Series(model_type).astype(str).to_numpy() == "virtual"))
                if any(p.name == name for p in pops):
                    raise BmtkScalingError(f"node population {name!r} appears twice in the circuit")
                if np.unique(node_ids).size != n:
                    raise BmtkScalingError(f"node population {name!r} in {nf.nodes_file} repeats node ids")
                pops.append(NodePopulation(name, nf.nodes_file, nf.node_types_file, node_ids, virtual, first))
                first += int(np.count_nonzero(~virtual))
    if not pops:
        raise BmtkScalingError("the network has no node populations")
    return pops


def read_graph(source: str | Path | NetworkFiles) -> NetworkGraph:
    """Read the whole network named by a simulation/circuit config (or by resolved ``NetworkFiles``)."""
    files = source if isinstance(source, NetworkFiles) else network_files(source)
    pops = read_nodes(files)
    by_name = {p.name: p for p in pops}
    vertex_of = {p.name: p.vertex_of_rows() for p in pops}
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("source", "target", "nsyns", "delay", "weight")}
    for ef in files.edges:
        types = _read_types(ef.edge_types_file)
        with h5py.File(ef.edges_file, "r") as h5:
            for name, pop in h5.get("edges", {}).items():
                where = f"edge population {name!r} in {ef.edges_file}"
                src_pop, trg_pop = (_population_attr(pop, ds, by_name, where) for ds in ("source_node_id",
                                                                                          "target_node_id"))
                type_ids = pop["edge_type_id"][()]
                src = vertex_of[src_pop][by_name[src_pop].rows_of(pop["source_node_id"][()])]
                trg = vertex_of[trg_pop][by_name[trg_pop].rows_of(pop["target_node_id"][()])]

                def column(col: str, default: float | None, _pop=pop, _types=types, _ids=type_ids, _w=where):
                    got = _gather(_pop, col, _types, _ids, "edge_group_id", "edge_group_index", _w, required=False)
                    return np.full(_ids.size, default) if got is None else got

                nsyns = column("nsyns", 1).astype(np.int64)
                if (nsyns < 0).any():
                    raise BmtkScalingError(f"{where}: negative nsyns")
                if (trg[nsyns > 0] == NO_VERTEX).any():
                    raise BmtkScalingError(f"{where}: edges target virtual nodes, which cannot receive synapses")
                keep = nsyns > 0
                parts["source"].append(src[keep])
                parts["target"].append(trg[keep])
                parts["nsyns"].append(nsyns[keep])
                parts["delay"].append(column("delay", np.nan).astype(np.float64)[keep])
                parts["weight"].append(column("syn_weight", np.nan).astype(np.float64)[keep])
    empty = {"source": np.int64, "target": np.int64, "nsyns": np.int64, "delay": np.float64, "weight": np.float64}
    arrays = {k: np.concatenate(v).astype(empty[k], copy=False) if v else np.zeros(0, empty[k])
              for k, v in parts.items()}
    return NetworkGraph(files=files, populations=pops, **arrays)


def _read_types(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep=" ", na_values="NONE")


def _population_attr(pop: h5py.Group, dataset: str, by_name: dict, where: str) -> str:
    name = pop[dataset].attrs.get("node_population")
    if isinstance(name, bytes):
        name = name.decode()
    if name not in by_name:
        raise BmtkScalingError(f"{where}: {dataset} refers to node population {name!r}, which the circuit "
                               "does not name")
    return str(name)


def _gather(pop: h5py.Group, name: str, types: pd.DataFrame, type_ids: np.ndarray, group_id_ds: str,
            group_index_ds: str, where: str, required: bool = True) -> np.ndarray | None:
    """One column per row: from the row's group dataset if it has one, else from the types CSV.

    SONATA lets a column live in either place (per-group datasets override the type's value).
    """
    n = type_ids.size
    if n == 0:  # a population without rows (an edge file with no edges) has no values to gather
        return np.zeros(0)
    group_ids = pop[group_id_ds][()] if group_id_ds in pop else np.zeros(n, np.int64)
    group_index = pop[group_index_ds][()] if group_index_ds in pop else np.arange(n)
    unique_groups = np.unique(group_ids)
    type_values = None
    pieces = []
    for gid in unique_groups:
        rows = slice(None) if unique_groups.size == 1 else np.flatnonzero(group_ids == gid)
        grp = pop.get(str(gid))
        if grp is not None and isinstance(grp.get(name), h5py.Dataset):
            ds = grp[name]
            data = ds.asstr()[()] if h5py.check_string_dtype(ds.dtype) else ds[()]
            values = np.asarray(data)[group_index[rows]]
        else:
            if type_values is None:
                type_values = _type_column(types, name, type_ids, where)
            if type_values is None:
                if required:
                    raise BmtkScalingError(f"{where} has no attribute {name!r} (neither in its groups nor its "
                                           "types CSV)")
                return None
            values = type_values[rows]
        pieces.append((rows, values))
    if len(pieces) == 1:
        return pieces[0][1]
    numeric = all(v.dtype.kind in "biuf" for _, v in pieces)
    out = np.empty(n, dtype=np.result_type(*[v.dtype for _, v in pieces]) if numeric else object)
    for rows, values in pieces:
        out[rows] = values
    return out


def _type_column(types: pd.DataFrame, name: str, type_ids: np.ndarray, where: str) -> np.ndarray | None:
    id_col = next((c for c in ("node_type_id", "edge_type_id") if c in types.columns), None)
    if id_col is None or name not in types.columns:
        return None
    ids = types[id_col].to_numpy(dtype=np.int64)
    order = np.argsort(ids)
    pos = np.searchsorted(ids[order], type_ids)
    pos_c = np.minimum(pos, ids.size - 1)
    bad = ids[order][pos_c] != type_ids
    if bad.any():
        raise BmtkScalingError(f"{where}: type ids {np.unique(type_ids[bad])[:10].tolist()} are not in the types CSV")
    values = types[name].to_numpy()
    if values.dtype.kind not in "biuf":
        values = values.astype(object)
    return values[order][pos_c]
