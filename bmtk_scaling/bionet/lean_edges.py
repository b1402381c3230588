"""Lean synapse instantiation for bionet: edges read as arrays, optionally one synapse per cell and type.

Stock bionet walks every edge as a Python object (an edge adaptor, a ``ConnectionStruct``, a
random section choice, one point process and one NetCon), about 140 us and 2 KB per synapse. Here
each rank reads the afferent edges of its own cells from the SONATA edge file as numpy arrays and
connects them in one tight loop that keeps only what NEURON needs: the NetCons (held in a hoc List,
not as Python objects) and the synapse point processes.

Synapse modes (``"bmtk_scaling": {"synapses": ...}`` in the simulation config):

- ``shared`` (default): Exp2Syn and ExpSyn are linear in their input events, so all edges of one
  target cell with the same synapse model and parameters can drive one point process through their
  own NetCons (each with its edge's weight and delay) with the same conductance as one point process
  per edge. Cost and memory become one NetCon per edge plus a handful of point processes per cell.
  Only floating-point summation order changes (see the README for the measured effect on spikes).
- ``per_edge``: one point process per edge, created in stock bionet's order: reproduces stock bmtk's
  spikes exactly, at the memory cost of a point process per edge.
- ``bmtk``: stock bionet's own edge building, for checking the other two.

Supported: chemical synapses onto single-segment target sections (the benchmark cells); anything
else (gap junctions, weight functions, multi-segment placement, preselected sections) is refused with
a message pointing at ``"synapses": "bmtk"``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from neuron import h

from bmtk_scaling._bmtk_private import cell_synapses, local_cells, only_edge_populations, virtual_populations

_LINEAR_SYNAPSES = {"exp2syn", "expsyn", "Exp2Syn", "ExpSyn"}

pc = h.ParallelContext()

_HOC_CONNECT = """
objref bmtk_scaling_pc_
bmtk_scaling_pc_ = new ParallelContext()
proc bmtk_scaling_connect() { local i localobj nc
    // $o1 synapse, $o2 source gids, $o3 weights, $o4 delays, $o5 List keeping the NetCons alive
    for i = 0, $o2.size() - 1 {
        nc = bmtk_scaling_pc_.gid_connect($o2.x[i], $o1)
        nc.weight = $o3.x[i]
        nc.delay = $o4.x[i]
        $o5.append(nc)
    }
}
"""


@dataclass
class AfferentEdges:
    """One edge population's edges onto this rank's cells, in edge-file order (sorted by target)."""

    name: str
    source_population: str
    target_population: str
    source_ids: np.ndarray
    target_ids: np.ndarray
    type_ids: np.ndarray
    weights: np.ndarray
    delays: np.ndarray
    nsyns: np.ndarray
    types: pd.DataFrame  # indexed by edge_type_id: model_template, dynamics_params (file name)
    unsupported: tuple[str, ...] = ()  # what lean instantiation does not handle here (then bionet builds them)


def read_afferent_edges(edges_file: Path, edge_types_file: Path, local_targets: dict[str, np.ndarray]
                        ) -> list[AfferentEdges]:
    """Edges of ``edges_file`` whose target is local (``local_targets``: population -> node ids)."""
    types = pd.read_csv(edge_types_file, sep=" ").set_index("edge_type_id")
    out = []
    with h5py.File(edges_file, "r") as h5:
        for name, pop in h5["edges"].items():
            trg_pop = _attr(pop["target_node_id"], "node_population")
            src_pop = _attr(pop["source_node_id"], "node_population")
            if trg_pop not in local_targets:
                continue
            cols = _local_columns(pop, local_targets[trg_pop])
            type_ids, group_ids, group_index = cols["edge_type_id"], cols["edge_group_id"], cols["edge_group_index"]
            weights = _column(pop, types, "syn_weight", type_ids, group_ids, group_index)
            delays = _column(pop, types, "delay", type_ids, group_ids, group_index)
            nsyns = _column(pop, types, "nsyns", type_ids, group_ids, group_index, default=1).astype(np.int64)
            out.append(AfferentEdges(name, src_pop, trg_pop, cols["source_node_id"], cols["target_node_id"],
                                     type_ids, weights, delays, nsyns, types,
                                     _unsupported(pop, types, np.unique(type_ids))))
    return out


_READ_BLOCK = 4_000_000  # rows per read: bounds the transient memory of scanning a large edge file
_COLUMNS = ("source_node_id", "target_node_id", "edge_type_id", "edge_group_id", "edge_group_index")


def _local_columns(pop, local_ids: np.ndarray) -> dict[str, np.ndarray]:
    """The edge-table columns of the rows whose target is in ``local_ids``, read block by block in file order."""
    member = np.zeros(int(local_ids.max(initial=0)) + 1, dtype=bool)
    member[local_ids] = True
    parts: dict[str, list[np.ndarray]] = {c: [] for c in _COLUMNS}
    n_rows = pop["target_node_id"].shape[0]
    for start in range(0, n_rows, _READ_BLOCK):
        stop = min(start + _READ_BLOCK, n_rows)
        targets = pop["target_node_id"][start:stop].astype(np.int64)
        keep = np.zeros(targets.size, dtype=bool)
        inside = targets < member.size
        keep[inside] = member[targets[inside]]
        if not keep.any():
            continue
        for col in _COLUMNS:
            values = targets if col == "target_node_id" else pop[col][start:stop]
            parts[col].append(values[keep].astype(np.int64))
    return {c: np.concatenate(v) if v else np.empty(0, dtype=np.int64) for c, v in parts.items()}


def _attr(ds, key: str) -> str:
    value = ds.attrs[key]
    return value.decode() if isinstance(value, bytes) else str(value)


def _column(pop, types: pd.DataFrame, name: str, type_ids, group_ids, group_index, default=None) -> np.ndarray:
    """Per-edge value: the edge group's column where it has one, else the edge type's value."""
    values = np.full(type_ids.size, np.nan)
    if name in types.columns:
        values = types[name].reindex(type_ids).to_numpy(dtype=float)
    for gid in np.unique(group_ids):
        grp = pop.get(str(gid))
        if grp is not None and name in grp:
            sel = group_ids == gid
            values[sel] = grp[name][()][group_index[sel]]
    if np.isnan(values).any():
        if default is None:
            raise ValueError(f"edges without a {name!r} (neither in the edge group nor in the edge types)")
        values[np.isnan(values)] = default
    return values


def _unsupported(pop, types: pd.DataFrame, used_types: np.ndarray) -> tuple[str, ...]:
    """What of an edge population's features lean instantiation does not handle (empty: it handles it)."""
    sub = types.loc[[t for t in used_types if t in types.index]]
    problems = []
    if "weight_function" in sub.columns and sub["weight_function"].notna().any():
        problems.append("weight functions")
    if "is_gap_junction" in sub.columns and sub["is_gap_junction"].fillna(False).astype(bool).any():
        problems.append("gap junctions")
    for grp in (g for g in pop.values() if isinstance(g, h5py.Group) and g.name.split("/")[-1].isdigit()):
        if "afferent_section_id" in grp or "afferent_section_pos" in grp:
            problems.append("preselected synapse locations")
            break
    if "model_template" in sub.columns and sub["model_template"].isna().any():
        problems.append("connections straight onto point neurons (no synapse model)")
    return tuple(problems)


class LeanEdgeBuilder:
    """Creates the synapses and NetCons of the afferent edges of this rank's cells."""

    def __init__(self, network, synaptic_models_dir: Path, mode: str) -> None:
        if mode not in ("shared", "per_edge"):
            raise ValueError(f"lean synapse mode must be 'shared' or 'per_edge', got {mode!r}")
        from bmtk.simulator.bionet import nrn

        self.net = network
        self.mode = mode
        self.models_dir = Path(synaptic_models_dir)
        self._synapse_model = nrn.py_modules.synapse_model
        self._params: dict[str, dict] = {}
        self.netcons = h.List()  # keeps every NetCon alive without a Python wrapper each
        self.synapses: list = []
        self.n_netcons = 0
        if not hasattr(h, "bmtk_scaling_connect"):
            h(_HOC_CONNECT)

    def _dynamics(self, file_name: str) -> dict:
        if file_name not in self._params:
            self._params[file_name] = json.loads((self.models_dir / file_name).read_text())
        return self._params[file_name]

    def target_problems(self, edges: AfferentEdges, cells: dict) -> list[str]:
        """Why this rank's target cells of ``edges`` cannot take lean synapses (empty: they can)."""
        problems = []
        for tid in np.unique(edges.target_ids).tolist():
            hobj = getattr(cells[int(tid)], "hobj", None)
            if hobj is None or not hasattr(hobj, "soma"):
                problems.append("targets without a soma section (point neurons)")
                break
            if sum(sec.nseg for sec in hobj.all) != 1:
                problems.append("multi-compartment targets")
                break
        if self.mode == "shared" and edges.target_ids.size:
            template = edges.types["model_template"].reindex(np.unique(edges.type_ids))
            bad = sorted(set(template.dropna().astype(str)) - _LINEAR_SYNAPSES)
            if bad:
                problems.append(f"synapse models {bad} not known to be linear (shared synapses)")
        return problems

    def connect(self, edges: AfferentEdges, cells: dict) -> None:
        """Create the synapses and NetCons of ``edges``; ``cells`` maps target node id -> bionet cell."""
        if edges.target_ids.size == 0:
            return
        src_offset = self.net.gid_pool.get_gid(name=edges.source_population, node_id=0)
        src_gids = (edges.source_ids.astype(np.int64) + src_offset).astype(float)
        # Everything per edge stays numeric: synapse model and parameter file are looked up per edge type.
        types = edges.types.sort_index()
        type_pos = np.searchsorted(types.index.to_numpy(), edges.type_ids)
        template = types["model_template"].to_numpy()
        dynamics = types["dynamics_params"].to_numpy()
        type_key, _ = pd.factorize(pd.Series(template).astype(str) + "|" + pd.Series(dynamics).astype(str))
        if (edges.nsyns != 1).any():  # stock bionet makes nsyns synapses per edge: expand to one row each
            rep = edges.nsyns
            src_gids, type_pos = np.repeat(src_gids, rep), np.repeat(type_pos, rep)
            weights, delays, targets = (np.repeat(edges.weights, rep), np.repeat(edges.delays, rep),
                                        np.repeat(edges.target_ids, rep))
        else:
            weights, delays, targets = edges.weights, edges.delays, edges.target_ids
        key_ids = type_key[type_pos]
        starts = np.flatnonzero(np.r_[True, targets[1:] != targets[:-1]])
        ends = np.r_[starts[1:], targets.size]
        for begin, end in zip(starts, ends, strict=True):
            cell = cells[int(targets[begin])]
            section = _single_segment_soma(cell)
            if self.mode == "shared":
                cell_keys = key_ids[begin:end]
                for kid in pd.unique(cell_keys):  # first-appearance order: deterministic
                    rows = begin + np.flatnonzero(cell_keys == kid)
                    t = type_pos[rows[0]]
                    syn = self._synapse_model(template[t])(self._dynamics(dynamics[t]), 0.5, section)
                    self.synapses.append(syn)
                    h.bmtk_scaling_connect(syn, h.Vector(src_gids[rows]), h.Vector(weights[rows]),
                                           h.Vector(delays[rows]), self.netcons)
            else:
                for k in range(begin, end):
                    t = type_pos[k]
                    syn = self._synapse_model(template[t])(self._dynamics(dynamics[t]), 0.5, section)
                    self.synapses.append(syn)
                    nc = pc.gid_connect(src_gids[k], syn)
                    nc.weight[0] = weights[k]
                    nc.delay = delays[k]
                    self.netcons.append(nc)
            self.n_netcons += int(end - begin)


def _single_segment_soma(cell):
    soma = cell.hobj.soma[0]
    if sum(sec.nseg for sec in cell.hobj.all) != 1:
        raise NotImplementedError(
            f"cell gid {cell.gid} has more than one segment: lean instantiation places every synapse at the soma "
            "of single-compartment cells; set \"bmtk_scaling\": {\"synapses\": \"bmtk\"} for morphological cells")
    return soma


class LeanEdgesMixin:
    """Mix into a ``BioNetwork`` subclass: recurrent edges built by :class:`LeanEdgeBuilder`.

    The mode comes from the config (``bmtk_scaling.synapses``); ``bmtk`` keeps bionet's own path.
    """

    synapse_mode = "bmtk"

    @classmethod
    def from_config(cls, conf, **properties):
        from bmtk_scaling.config.settings import read_settings

        network = super().from_config(conf, **properties)
        network.synapse_mode = read_settings(conf).synapses
        network._lean_edge_files = [(Path(e["edges_file"]), Path(e["edge_types_file"]))
                                    for e in conf.get("networks", {}).get("edges", [])]
        network._synaptic_models_dir = Path(conf["components"]["synaptic_models_dir"])
        network.lean_builder = None
        network.notes = []
        return network

    def connection_counts(self) -> tuple[int, int]:
        """(NetCons, synapse point processes) this rank created for recurrent and input edges."""
        cells = self.get_local_cells().values()
        netcons = sum(len(c.netcons) for c in cells)
        synapses = sum(len(cell_synapses(c)) for c in cells)
        if self.lean_builder is not None:
            netcons += self.lean_builder.n_netcons
            synapses += len(self.lean_builder.synapses)
        return netcons, synapses

    def build_recurrent_edges(self, **kwargs):
        if self.synapse_mode == "bmtk":
            return super().build_recurrent_edges(**kwargs)
        builder = LeanEdgeBuilder(self, self._synaptic_models_dir, self.synapse_mode)
        by_population = local_cells(self)
        local = {pop: np.array(sorted(cells), dtype=np.int64) for pop, cells in by_population.items()}
        virtual = virtual_populations(self)
        lean, fallback = [], {}
        for edges_file, types_file in self._lean_edge_files:
            for edges in read_afferent_edges(edges_file, types_file, local):
                if edges.source_population in virtual:
                    continue  # spike-input edges: built by bionet's add_spike_trains, as before
                reasons = [*edges.unsupported, *builder.target_problems(edges, by_population[edges.target_population])]
                # Every rank decides alike (a population is built one way on every rank), in file order.
                if pc.allreduce(1.0 if reasons else 0.0, 2) > 0:
                    fallback[edges.name] = sorted(set(reasons)) or ["another rank's cells"]
                else:
                    lean.append(edges)
        for edges in lean:
            builder.connect(edges, by_population[edges.target_population])
        self.lean_builder = builder
        if fallback:
            for name, reasons in fallback.items():
                self.notes.append(f"edge population {name}: built by bionet, not lean ({', '.join(reasons)})")
            with only_edge_populations(self, set(fallback)):
                super().build_recurrent_edges(**kwargs)
        self.io.barrier()
