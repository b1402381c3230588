"""Lean synapse instantiation for bionet: edges read as arrays, synapses placed as bionet places them.

Stock bionet walks every edge as a Python object (an edge adaptor, a ``ConnectionStruct``, a
random section choice, one point process and one NetCon), about 140 us and 2 KB per synapse. Here
each rank reads the afferent edges of its own cells from the SONATA edge file as numpy arrays, in
bionet's order (its ``target_to_source`` index), and keeps only what NEURON needs: the NetCons (in a
hoc List, not as Python objects) and the synapse point processes.

Placement is bionet's, reproduced exactly. For an edge with ``nsyns``, bionet draws ``nsyns``
segments from the cell's ``RandomState(gid)`` with ``prng.choice(segments, nsyns, p=p)`` over the
segments ``Morphology.find_sections(target_sections, distance_range)`` returns; ``choice`` is
``searchsorted(cumsum(p) / cumsum(p)[-1], random_sample(nsyns), 'right')``, and consecutive
``random_sample`` calls continue one stream. So one ``random_sample`` per cell and edge population,
split among the edges in bionet's edge order and mapped per edge type, gives bionet's segments bit
for bit and leaves the cell's stream where bionet leaves it (spike inputs placed later continue it).
Preselected locations (``afferent_section_id`` / ``afferent_section_pos``) are used as they are.
Weight functions: bmtk's ``wmax`` and ``default_weight_fnc`` return ``syn_weight``, taken as an
array; any other function is called per edge with bionet's own edge and node objects.

Synapse modes (``"bmtk_scaling": {"synapses": ...}`` in the simulation config):

- ``shared`` (default): Exp2Syn and ExpSyn are linear in their input events, so the edges onto one
  segment with the same synapse model and parameters can drive one point process through their own
  NetCons (each with its edge's weight and delay): one point process per (segment, model, parameter
  file), one NetCon per edge. Only floating-point summation order changes.
- ``per_edge``: one point process per synapse, created in stock bionet's order at bionet's location:
  reproduces stock bmtk's spikes exactly.
- ``bmtk``: stock bionet's own edge building, for checking the other two.

What is not lean (gap junctions, edge-group dynamics parameters, mixed virtual/recurrent
populations) goes through bionet's own path for that population; edges onto cells without
sections (point neurons) go through bionet's path for those cells only.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from neuron import h

from bmtk_scaling._bmtk_private import (
    cell_node,
    edge_populations,
    edge_type_props,
    init_connections,
    is_bmtk_exp2syn_setter,
    is_morphological,
    is_point_process_cell,
    local_cells,
    only_edge_populations,
    only_target_cells,
    returns_syn_weight,
    segment_sections,
)
from bmtk_scaling.bionet.edge_arrays import AfferentEdges, read_afferent_edges
from bmtk_scaling.progress import report

# Synapse models whose conductance is a sum of independent responses to each event (linear state
# equations with constant coefficients, NET_RECEIVE adding the weight): one instance can take many NetCons.
_LINEAR_SYNAPSES = {"exp2syn", "expsyn"}

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
proc bmtk_scaling_exp2syn() { local i localobj syn, nc
    // $o1 SectionRefs, $o2 section index, $o3 x, $o4 e, $o5 tau1, $o6 tau2 (per synapse), $o7 sources (gids, or
    // indices into $o10 when $11 is 1), $o8 weights, $o9 delays, $o10 spike sources, $11, $o12 and $o13 Lists
    for i = 0, $o2.size() - 1 {
        $o1.o($o2.x[i]).sec syn = new Exp2Syn($o3.x[i])
        syn.e = $o4.x[i]
        syn.tau1 = $o5.x[i]
        syn.tau2 = $o6.x[i]
        $o12.append(syn)
        if ($11) {
            nc = new NetCon($o10.o($o7.x[i]), syn)
        } else {
            nc = bmtk_scaling_pc_.gid_connect($o7.x[i], syn)
        }
        nc.weight = $o8.x[i]
        nc.delay = $o9.x[i]
        $o13.append(nc)
    }
}
proc bmtk_scaling_connect_stim() { local i localobj nc
    // $o1 synapse, $o2 List of spike sources, $o3 their indices, $o4 weights, $o5 delays, $o6 List of NetCons
    for i = 0, $o3.size() - 1 {
        nc = new NetCon($o2.o($o3.x[i]), $o1)
        nc.weight = $o4.x[i]
        nc.delay = $o5.x[i]
        $o6.append(nc)
    }
}
"""


def draw_segments(prng: np.random.RandomState, draw_types: np.ndarray,
                  segments: dict[int, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The segments bionet's ``prng.choice(ix_t, nsyns, p=p_t)`` calls pick, one call per edge in this order,
    made with one ``random_sample``: ``draw_types`` holds the edge type of each draw (an edge's ``nsyns``
    draws together), ``segments`` maps a type to its segments and the cdf ``cumsum(p) / cumsum(p)[-1]``."""
    u = prng.random_sample(draw_types.size)
    picked = np.empty(u.size, dtype=np.int64)
    for t, (ix, cdf) in segments.items():
        sel = draw_types == t
        picked[sel] = ix[np.searchsorted(cdf, u[sel], side="right")]
    return picked


def is_linear_synapse(model_template: str) -> bool:
    """Whether one instance of the synapse model may sum the events of many edges (see ``shared``)."""
    return str(model_template).lower() in _LINEAR_SYNAPSES


class LeanEdgeBuilder:
    """Creates the synapses and NetCons of the afferent edges of this rank's cells."""

    def __init__(self, network, synaptic_models_dir: Path, mode: str, register_netcons: bool = False) -> None:
        if mode not in ("shared", "per_edge"):
            raise ValueError(f"lean synapse mode must be 'shared' or 'per_edge', got {mode!r}")
        from bmtk.simulator.bionet import nrn

        self.net = network
        self.mode = mode
        self.models_dir = Path(synaptic_models_dir)
        self._synapse_model = nrn.py_modules.synapse_model
        self._params: dict[str, dict] = {}
        self.netcons = h.List()  # keeps every NetCon alive without a Python wrapper each
        self.synapses = h.List()
        self.n_netcons = 0
        self.n_registered = 0  # NetCons also put on the cells' own lists (what bionet's synapse reports read)
        self.register_netcons = register_netcons
        if not hasattr(h, "bmtk_scaling_exp2syn"):
            h(_HOC_CONNECT)

    def target_problems(self, edges: AfferentEdges, onto_morphologies: bool = True) -> list[str]:
        """Why ``edges`` cannot take lean synapses in this mode (empty: they can).

        An edge-types table without ``model_template`` is fine onto point cells (which need no synapse model);
        onto cells with sections the synapse model is then elsewhere (per edge), and bionet builds them."""
        if "model_template" not in edges.types.columns:
            return ["no model_template column in the edge types table"] if onto_morphologies else []
        if self.mode == "shared" and edges.target_ids.size:
            template = edges.types["model_template"].reindex(np.unique(edges.type_ids))
            bad = sorted({t for t in template.dropna().astype(str) if not is_linear_synapse(t)})
            if bad:
                return [f"synapse models {bad} are not linear in their input events, so they cannot be shared: "
                        "set \"synapses\": \"per_edge\""]
        return []

    def connect(self, edges: AfferentEdges, cells: dict, bionet_pop, sources=None) -> None:
        """Create the synapses and NetCons of ``edges`` (onto morphological ``cells``: node id -> bionet cell).

        ``sources``: for spike-input edges, a function node id -> bionet's virtual cell (its ``hobj`` the spike
        source); else the sources are cells reached by gid.
        """
        if edges.target_ids.size == 0:
            return
        src_offset = None if sources is not None else self.net.gid_pool.get_gid(name=edges.source_population,
                                                                                   node_id=0)
        props = {int(t): edge_type_props(bionet_pop, t) for t in np.unique(edges.type_ids).tolist()}
        stims = h.List() if sources is not None else None
        stim_index: dict[int, int] = {}
        for tid, begin, end in edges.cell_blocks():
            cell = cells[tid]
            weights = edges.weights[begin:end]
            if sources is not None:  # bionet makes each spike source when its first edge is built
                for sid in pd.unique(edges.source_ids[begin:end]).tolist():
                    if sid not in stim_index:
                        stim_index[sid] = len(stim_index)
                        stims.append(sources(sid).hobj)
            if edges.python_weight[begin:end].any():
                weights = self._python_weights(edges, bionet_pop, tid, cell, begin, end, sources)
            syn = self._locations(edges, cell, props, begin, end)
            if syn is None:
                continue
            edge_of, sec_idx, xs = syn
            rows = begin + edge_of
            if sources is None:
                src = (edges.source_ids[rows] + src_offset).astype(float)
            else:
                src = np.array([stim_index[s] for s in edges.source_ids[rows].tolist()], dtype=float)
            self._make(cell, edges.type_ids[rows], props, sec_idx, xs, src, weights[edge_of], edges.delays[rows], stims)

    def connect_point_cells(self, edges: AfferentEdges, cells: dict, bionet_pop, sources=None) -> None:
        """NetCons of ``edges`` onto bionet ``PointProcessCell``s (IntFire1 and the like), as bionet makes them: one
        per edge onto the cell itself, its weight times ``sign * nsyns`` of the synapse parameters where the
        edge has ``nsyns``, in bionet's edge order."""
        if edges.target_ids.size == 0:
            return
        props = {int(t): edge_type_props(bionet_pop, t) for t in np.unique(edges.type_ids).tolist()}
        src_offset = None if sources is not None else self.net.gid_pool.get_gid(name=edges.source_population,
                                                                                   node_id=0)
        for tid, begin, end in edges.cell_blocks():
            cell = cells[tid]
            weights = edges.weights[begin:end]
            if edges.python_weight[begin:end].any():
                weights = self._python_weights(edges, bionet_pop, tid, cell, begin, end, sources)
            weights = weights.copy()
            for k in np.flatnonzero(edges.placed[begin:end]).tolist():
                weights[k] = weights[k] * (self._dynamics(props[int(edges.type_ids[begin + k])])["sign"]
                                           * int(edges.nsyns[begin + k]))
            netcons = cell.netcons if self.register_netcons else None
            for k in range(end - begin):
                sid = int(edges.source_ids[begin + k])
                nc = h.NetCon(sources(sid).hobj, cell.hobj) if sources is not None else \
                    pc.gid_connect(sid + src_offset, cell.hobj)
                nc.weight[0] = weights[k]
                nc.delay = edges.delays[begin + k]
                self.netcons.append(nc)
                if netcons is not None:
                    netcons.append(nc)
            self.n_netcons += end - begin
            self.n_registered += (end - begin) if netcons is not None else 0

    def _python_weights(self, edges, bionet_pop, tid, cell, begin, end, sources) -> np.ndarray:
        """Weights from the edges' weight function, called as bionet calls it (its own edge and node objects)."""
        weights = edges.weights[begin:end].copy()
        bionet_edges = list(bionet_pop.get_target(tid))
        if len(bionet_edges) != end - begin:
            raise RuntimeError(f"edge population {edges.name}: {len(bionet_edges)} edges onto node {tid} in bionet's "
                               f"view, {end - begin} read here")
        trg = cell_node(cell)
        for k in np.flatnonzero(edges.python_weight[begin:end]).tolist():
            e = bionet_edges[k]
            src = sources(e.source_node_id) if sources is not None else \
                self.net.get_node_id(edges.source_population, e.source_node_id)
            weights[k] = e.syn_weight(src_node=src, trg_node=trg)
        return weights

    def _locations(self, edges, cell, props, begin, end):
        """(edge of each synapse relative to ``begin``, section index in ``cell.get_sections()``, x) for the
        synapses bionet makes onto ``cell``, in bionet's order."""
        placed = edges.placed[begin:end]
        if (~placed & (edges.sec_ids[begin:end] < 0)).any():
            raise ValueError(f"edge population {edges.name}: edges onto cell {cell.gid} have neither nsyns nor "
                             "afferent_section_id, so bionet cannot place their synapses on its sections")
        nsyns = np.where(placed, edges.nsyns[begin:end], 1)
        types = edges.type_ids[begin:end]
        drawn = placed.copy()
        segments = {}
        for t in pd.unique(types[placed]).tolist():
            p = props[int(t)]
            ix, prob = cell.morphology.find_sections(section_names=p["target_sections"],
                                                     distance_range=p["distance_range"], cache=True)
            if len(ix) == 0:  # bionet warns and makes no synapse (and draws nothing) for such an edge
                drawn &= types != t
                continue
            cdf = np.asarray(prob, dtype=float).cumsum()
            cdf /= cdf[-1]
            segments[int(t)] = (np.asarray(ix), cdf)
        nsyns = np.where(placed & ~drawn, 0, nsyns)
        edge_of = np.repeat(np.arange(end - begin), nsyns)
        if edge_of.size == 0:
            return None
        draw = drawn[edge_of]
        seg = np.zeros(edge_of.size, dtype=np.int64)
        if draw.any():
            seg[draw] = draw_segments(cell.prng, types[edge_of[draw]], segments)
        sec_idx = edges.sec_ids[begin + edge_of].copy()
        if draw.any():
            index = {sec: i for i, sec in enumerate(cell.get_sections())}
            seg_to_sec = np.fromiter((index[sec] for sec in segment_sections(cell)), dtype=np.int64)
            sec_idx[draw] = seg_to_sec[seg[draw]]
        xs = np.where(draw, cell.morphology.seg_props.x[seg] if draw.any() else 0.0, edges.sec_pos[begin + edge_of])
        return edge_of, sec_idx, xs

    def _dynamics(self, prop: dict) -> dict:
        params = prop["dynamics_params"]
        if isinstance(params, str):  # bionet loads it when the population is initialised; be safe otherwise
            if params not in self._params:
                self._params[params] = json.loads((self.models_dir / params).read_text())
            params = self._params[params]
        return params

    def _all_bmtk_exp2syn(self, type_ids, props) -> bool:
        """Whether every synapse here is made by bmtk's own ``Exp2Syn`` setter (then a hoc loop makes them alike)."""
        for t in np.unique(type_ids).tolist():
            p = props[t]
            if not is_bmtk_exp2syn_setter(self._synapse_model(p["model_template"])):
                return False
            if not all(k in self._dynamics(p) for k in ("erev", "tau1", "tau2")):
                return False
        return True

    def _make_exp2syn_in_hoc(self, all_secs, type_ids, props, sec_idx, xs, src, weights, delays, stims) -> None:
        """per_edge synapses made as bmtk's ``Exp2Syn`` setter makes them (``Exp2Syn(x)`` on the section, then
        ``e``, ``tau1``, ``tau2``), in a hoc loop rather than one Python call per synapse."""
        refs = h.List()
        for sec in all_secs:
            refs.append(h.SectionRef(sec=sec))
        par = {t: self._dynamics(props[t]) for t in np.unique(type_ids).tolist()}
        per_syn = {k: np.array([par[t][k] for t in type_ids.tolist()], dtype=float) for k in ("erev", "tau1", "tau2")}
        h.bmtk_scaling_exp2syn(refs, h.Vector(sec_idx.astype(float)), h.Vector(xs), h.Vector(per_syn["erev"]),
                               h.Vector(per_syn["tau1"]), h.Vector(per_syn["tau2"]), h.Vector(src),
                               h.Vector(weights), h.Vector(delays), stims if stims is not None else h.List(),
                               1 if stims is not None else 0, self.synapses, self.netcons)
        self.n_netcons += len(type_ids)

    def _make(self, cell, type_ids, props, sec_idx, xs, src, weights, delays, stims) -> None:
        netcons = cell.netcons if self.register_netcons else None
        all_secs = cell.get_sections()
        if self.mode == "per_edge" and netcons is None and self._all_bmtk_exp2syn(type_ids, props):
            self._make_exp2syn_in_hoc(all_secs, type_ids, props, sec_idx, xs, src, weights, delays, stims)
            return
        secs = [all_secs[i] for i in sec_idx.tolist()]
        if self.mode == "per_edge":
            for k, t in enumerate(type_ids.tolist()):
                p = props[t]
                syn = self._synapse_model(p["model_template"])(self._dynamics(p), xs[k], secs[k])
                self.synapses.append(syn)
                nc = h.NetCon(stims.o(int(src[k])), syn) if stims is not None else pc.gid_connect(src[k], syn)
                nc.weight[0] = weights[k]
                nc.delay = delays[k]
                self.netcons.append(nc)
                if netcons is not None:
                    netcons.append(nc)
            self.n_netcons += len(type_ids)
            self.n_registered += len(type_ids) if netcons is not None else 0
            return
        # shared: one point process per (segment, model, parameter file), in first-appearance order
        keys: dict[tuple, list[int]] = {}
        for k, (sec, x, t) in enumerate(zip(secs, xs.tolist(), type_ids.tolist(), strict=True)):
            p = props[t]
            seg = sec(x)
            key = (sec.name(), seg.x if 0.0 < x < 1.0 else x, p["model_template"], id(self._dynamics(p)))
            keys.setdefault(key, []).append(k)
        for (_, _, template, _), ks in keys.items():
            k0 = ks[0]
            syn = self._synapse_model(template)(self._dynamics(props[type_ids[k0]]), xs[k0], secs[k0])
            self.synapses.append(syn)
            ks = np.asarray(ks)
            if stims is not None:
                h.bmtk_scaling_connect_stim(syn, stims, h.Vector(src[ks]), h.Vector(weights[ks]),
                                            h.Vector(delays[ks]), self.netcons)
            else:
                h.bmtk_scaling_connect(syn, h.Vector(src[ks]), h.Vector(weights[ks]), h.Vector(delays[ks]),
                                       self.netcons)
        self.n_netcons += len(type_ids)


def _weight_function_is_array(name: str | None) -> bool:
    """Whether bionet's weight function ``name`` returns the edge's ``syn_weight`` unchanged (bmtk's own
    ``wmax`` and ``default_weight_fnc``, unless the user registered another function under that name)."""
    from bmtk.simulator.bionet import nrn

    registry = nrn.py_modules
    name = "default_weight_fnc" if name is None else name
    if not registry.has_synaptic_weight(name):
        return False  # bionet names the problem when it calls it
    return returns_syn_weight(registry.synaptic_weight(name))


class LeanEdgesMixin:
    """Mix into a ``BioNetwork`` subclass: recurrent and spike-input edges built by :class:`LeanEdgeBuilder`.

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
        network._synapse_report = any(str(r.get("module", "")) in ("netcon_report", "syn_report")
                                      for r in (conf.get("reports") or {}).values() if isinstance(r, dict))
        if network._synapse_report and network.synapse_mode == "shared":
            network.synapse_mode = "per_edge"
            network.notes.append("synapses: per_edge, not shared (a synapse report records each edge's own synapse)")
        return network

    def connection_counts(self) -> tuple[int, int]:
        """(NetCons, synapse point processes) this rank created for recurrent and input edges."""
        from bmtk_scaling._bmtk_private import cell_synapses

        cells = self.get_local_cells().values()
        netcons = sum(len(c.netcons) for c in cells)
        synapses = sum(len(cell_synapses(c)) for c in cells)
        if self.lean_builder is not None:
            netcons += self.lean_builder.n_netcons - self.lean_builder.n_registered
            synapses += int(self.lean_builder.synapses.count())
        return netcons, synapses

    def _lean_setup(self):
        if self.lean_builder is None:
            init_connections(self)
            self.lean_builder = LeanEdgeBuilder(self, self._synaptic_models_dir, self.synapse_mode,
                                                register_netcons=self._synapse_report)
            self._edge_file_of = {}
            for edges_file, types_file in self._lean_edge_files:
                with h5py.File(edges_file, "r") as h5:
                    for name in h5["edges"]:
                        self._edge_file_of.setdefault(name, (edges_file, types_file))
        return self.lean_builder

    def _read_population(self, name: str) -> AfferentEdges | None:
        """One edge population's edges onto this rank's cells, read when it is built (its arrays freed after)."""
        if name not in self._edge_file_of:
            return None
        edges_file, types_file = self._edge_file_of[name]
        local = {pop: np.array(list(cells), dtype=np.int64) for pop, cells in local_cells(self).items()}
        found = read_afferent_edges(edges_file, types_file, local, _weight_function_is_array, only=name)
        return found[0] if found else None

    def _build_population(self, edge_pop, bionet_build, sources=None) -> None:
        """Build one edge population lean where every rank can, else through ``bionet_build`` (on all ranks alike)."""
        builder = self._lean_setup()
        edges = self._read_population(edge_pop.name)
        cells = local_cells(self).get(edge_pop.target_nodes, {})
        if edges is None:
            reasons = ["not found in the configured edge files"]
        else:
            onto_morphologies = any(is_morphological(c) for c in cells.values())
            reasons = [*edges.unsupported, *builder.target_problems(edges, onto_morphologies)]
            if edge_pop.mixed_connections:
                reasons.append("virtual and recurrent sources in one population")
        if pc.allreduce(1.0 if reasons else 0.0, 2) > 0:
            self.notes.append(f"edge population {edge_pop.name}: built by bionet, not lean "
                              f"({', '.join(sorted(set(reasons)) or ['another rank'])})")
            with only_edge_populations(self, {edge_pop.name}):
                bionet_build()
            return
        lean_ids = {nid for nid, c in cells.items() if is_morphological(c)}
        point_ids = {nid for nid, c in cells.items() if is_point_process_cell(c)}
        other = set(cells) - lean_ids - point_ids
        builder.connect(edges if len(lean_ids) == len(cells) else edges.select_targets(lean_ids), cells, edge_pop,
                        sources)
        if point_ids:
            builder.connect_point_cells(edges.select_targets(point_ids), cells, edge_pop, sources)
        del edges  # this population's arrays: freed before the next one is read
        if pc.allreduce(1.0 if other else 0.0, 2) > 0:  # edges onto point neurons: bionet's, for those cells only
            with only_edge_populations(self, {edge_pop.name}), only_target_cells(self, edge_pop.target_nodes, other):
                bionet_build()

    def build_recurrent_edges(self, **kwargs):
        if self.synapse_mode == "bmtk":
            return super().build_recurrent_edges(**kwargs)
        recurrent = [p for p in edge_populations(self) if not p.virtual_connections]
        for i, edge_pop in enumerate(recurrent):  # bionet's population order: each cell's stream is drawn alike
            self._build_population(edge_pop, lambda: super(LeanEdgesMixin, self).build_recurrent_edges(**kwargs))
            report("build edges", i + 1, len(recurrent), "edge populations", edge_pop.name, int(pc.id()))
        self.io.barrier()

    def add_spike_trains(self, spike_trains, node_set, spikes_generator=None, sim=None):
        if self.synapse_mode == "bmtk":
            return super().add_spike_trains(spike_trains, node_set, spikes_generator, sim)
        for src_pop in [p.name for p in self.node_populations if p.name in node_set.population_names()]:
            for edge_pop in self.find_edges(source_nodes=src_pop):
                if not edge_pop.virtual_connections:
                    continue

                def bionet_build():  # bionet's loop finds only this population (only_edge_populations)
                    super(LeanEdgesMixin, self).add_spike_trains(spike_trains, node_set, spikes_generator, sim)

                def sources(nid, src_pop=src_pop):
                    return self.get_virtual_cells(src_pop, nid, spike_trains, spikes_generator, sim)

                self._build_population(edge_pop, bionet_build, sources)
        self.io.barrier()

