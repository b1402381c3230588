"""Test-only: exercise every helper of bmtk_scaling._bmtk_private against real bionet objects.

    python bmtk_contract_probe.py CONFIG OUT.json

CONFIG is a network with a virtual input population and a soma report. Writes what each helper
returned; tests/test_bmtk_contract.py asserts on it, one test per helper.
"""

import json
import os
import sys
from pathlib import Path

from bmtk_scaling.environment import configure_neuron_environment

configure_neuron_environment()
config, out = Path(sys.argv[1]).absolute(), Path(sys.argv[2]).absolute()
os.chdir(config.parent)
from neuron import h  # noqa: E402

h.nrnmpi_init()
from bmtk.simulator import bionet  # noqa: E402
from bmtk.simulator.bionet import modules  # noqa: E402

import bmtk_scaling.bionet.cell_drive  # noqa: E402, F401
from bmtk_scaling import _bmtk_private as bp  # noqa: E402
from bmtk_scaling.sonata.configs import resolved_for_bmtk  # noqa: E402

conf = bionet.Config.from_dict(resolved_for_bmtk(config), validate=True)
conf.build_env()
seen: dict = {}

# nodes_at_rows: the nodes bmtk yields for chosen rows
net = bionet.BioNetwork.from_config(conf)
pop = next(p for p in net.node_populations if p.name == "pairs")
seen["nodes_at_rows"] = [int(n.node_id) for n in bp.nodes_at_rows(pop, [1, 4, 5])]

# rows_built_here + local_cells: bionet's build_nodes (called by BioSimulator.from_config, which also builds the
# edges and the modules) builds exactly the given rows
built = []
with bp.rows_built_here(net, {"pairs": [0, 2, 3]}), bp.counting_cell_builds(net, lambda: built.append(1)):
    sim = bionet.BioSimulator.from_config(conf, network=net)
seen["cells_counted"] = len(built)
seen["build_cell_restored"] = "_build_cell" not in vars(net)
seen["populations_restored"] = all(type(p).__name__ != "_PlacedNodes" for p in net.node_populations)
seen["local_cells"] = {name: sorted(int(i) for i in cells) for name, cells in bp.local_cells(net).items()}
seen["local_gids"] = sorted(int(g) for g in net.get_local_cells())
seen["virtual_populations"] = sorted(bp.virtual_populations(net))

# cell_synapses: bionet's own edges give each cell one synapse per afferent edge (inputs included)
seen["cell_synapses"] = {int(nid): len(bp.cell_synapses(cell)) for nid, cell in bp.local_cells(net)["pairs"].items()}

# simulation_modules / set_simulation_modules / report_plan / record_spike
mods = bp.simulation_modules(sim)
seen["module_types"] = sorted(type(m).__name__ for m in mods)
report = next(m for m in mods if isinstance(m, modules.SomaReport))
plan = bp.initialize_report(report, sim)
seen["report_plan"] = {**{k: getattr(plan, k) for k in ("start_step", "end_step", "dt_step", "file_name")},
                       "variables": list(plan.variables), "elements": {g: len(e) for g, e in plan.elements.items()},
                       "recorder_has_cells": hasattr(plan.recorder, "record_cell_block")}
with bp.only_edge_populations(net, {"pairs_to_pairs"}):
    seen["edge_populations_within"] = sorted(ep.name for ep in net._edge_populations)
seen["edge_populations_after"] = sorted(ep.name for ep in net._edge_populations)
# edge helpers: what lean instantiation reads of bionet's cells and edge populations
some_cell = next(iter(bp.local_cells(net)["pairs"].values()))
before = some_cell.prng
bp.init_connections(net)  # bionet already made the streams: a second call keeps them
seen["init_connections_keeps_stream"] = some_cell.prng is before
seen["edge_populations"] = [ep.name for ep in bp.edge_populations(net)]
ep = next(e for e in bp.edge_populations(net) if e.name == "pairs_to_pairs")
props = bp.edge_type_props(ep, int(ep._edge_pop.type_ids[0]))
seen["edge_type_props"] = {"dynamics_params_loaded": isinstance(props["dynamics_params"], dict),
                           "has_template": "model_template" in props, "cached": props is bp.edge_type_props(
                               ep, int(ep._edge_pop.type_ids[0]))}
seen["is_morphological"] = bool(bp.is_morphological(some_cell))
seen["segment_sections"] = [int(len(bp.segment_sections(some_cell))), int(sum(sec.nseg for sec in some_cell.hobj.all))]
seen["cell_node"] = bool(int(bp.cell_node(some_cell).node_id) == int(some_cell.node_id))
with bp.only_target_cells(net, "pairs", {2}):
    seen["only_target_cells_within"] = sorted(int(n) for n in bp.local_cells(net)["pairs"])
seen["only_target_cells_after"] = sorted(int(n) for n in bp.local_cells(net)["pairs"])
# lean_cell_loading: bmtk's cell loaders reach NEURON through their module's `h`, fix_axon_peri calls define_shape,
# and the cached reader gives the cell bmtk's Biophys1 template gives
import inspect  # noqa: E402

from bmtk.simulator.bionet.default_setters import cell_models  # noqa: E402

swc = str(Path(__file__).parent / "fixtures" / "multicompartment" / "morphologies" / "pyramidal_small.swc")


def _shape(hobj):
    return [(sec.name().split(".", 1)[1], sec.L, sec.n3d(), sec.parentseg().x if sec.parentseg() else None)
            for sec in hobj.all]


stock_cell = h.Biophys1(swc)
with bp.lean_cell_loading():
    proxied = cell_models.h is not h and cell_models.h.Vector is h.Vector
    cached = [cell_models.h.Biophys1(swc) for _ in range(2)]  # the second from the same reader
    cell_models.h.define_shape()  # recorded, made once on leaving
seen["lean_cell_loading"] = {"proxied": bool(proxied), "restored": cell_models.h is h,
                             "bmtk_calls_it": "h.define_shape()" in inspect.getsource(cell_models.fix_axon_peri),
                             "same_cells": all(_shape(c) == _shape(stock_cell) for c in cached),
                             "template": cached[0].hname().split("[")[0]}
seen["is_point_process_cell"] = bool(bp.is_point_process_cell(some_cell))

# forget_morphologies: a cell loaded through Morphology.load is kept alive by bionet's cache until it is emptied
import gc  # noqa: E402

from bmtk.simulator.bionet.morphology import Morphology  # noqa: E402

morph_cell = h.Biophys1(swc)
Morphology.load(hobj=morph_cell, morphology_file=swc)
n_sections = sum(1 for _ in h.allsec())
del morph_cell
kept = sum(1 for _ in h.allsec()) == n_sections
forgotten = bp.forget_morphologies()
gc.collect()  # the cached Morphology and its lazy segment properties refer to each other
seen["forget_morphologies"] = {"kept_before": kept, "forgotten": forgotten,
                               "freed": sum(1 for _ in h.allsec()) < n_sections}

# round_robin_rows: the rows stock build_nodes takes on a rank (node_pop[rank::size])
seen["round_robin_rows"] = bp.round_robin_rows(net, 1, 2)

# use_simulator: bmtk's advance.hoc calls back the simulator hoc's pysim names
bp.use_simulator(sim)
seen["use_simulator"] = h.pysim is sim

# returns_syn_weight / is_bmtk_exp2syn_setter: what bmtk's own weight functions and Exp2Syn setter do
from bmtk.simulator.bionet import nrn  # noqa: E402
from bmtk.simulator.bionet.default_setters import synapse_models  # noqa: E402

edge = {"syn_weight": 0.25}
seen["returns_syn_weight"] = {name: bool(bp.returns_syn_weight(nrn.py_modules.synaptic_weight(name))) and
                              nrn.py_modules.synaptic_weight(name)(edge, None, None) == 0.25
                              for name in ("wmax", "default_weight_fnc", "gaussianLL")}
setter = nrn.py_modules.synapse_model("exp2syn")
probe_sec = h.Section(name="probe_sec")
made = setter({"erev": -70.0, "tau1": 0.7, "tau2": 4.0}, 0.3, probe_sec)
seen["exp2syn_setter"] = {"is_bmtk": bool(bp.is_bmtk_exp2syn_setter(setter)), "kind": made.hname().split("[")[0],
                          "values": [made.e, made.tau1, made.tau2], "sets": sorted(
                              line.strip().split(" = ")[0] for line in inspect.getsource(synapse_models.Exp2Syn)
                              .splitlines() if line.strip().startswith("syn.") and " = " in line)}
# the ECP helpers: what bmtk's EcpMod keeps after its own initialize, and the rows its block writer is handed
import h5py  # noqa: E402
import numpy as np  # noqa: E402
from bmtk.simulator.bionet.biocell import BioCell  # noqa: E402

cells = list(bp.local_cells(net)["pairs"].values())
with bp.ecp_without_extracellular():
    for cell in cells:
        cell.setup_ecp()
inserted = any(sec.has_membrane("extracellular") for cell in cells for sec in cell.hobj.all)
electrodes = Path(conf.output_dir) / "electrodes.csv"  # 40 channels: 800 steps x 40 make chunks of 200 steps
electrodes.write_text("channel x_pos y_pos z_pos\n" + "".join(f"{c} 10.0 {5 * c - 100} 5.0\n" for c in range(40)))
few = Path(conf.output_dir) / "few_electrodes.csv"  # 3 channels: chunks of 400 steps
few.write_text("channel x_pos y_pos z_pos\n0 10.0 0 5.0\n1 10.0 -30 5.0\n2 10.0 30 5.0\n")


def write_twice(name, positions, contributions, block):
    """bmtk's EcpMod with ``block``-step blocks, fed through EcpRows in two calls; what it wrote."""
    ecp = modules.EcpMod(tmp_dir=str(conf.output_dir), file_name=f"{name}.h5", electrode_positions=str(positions),
                         cells="pairs", contributions_dir=f"contributions_{name}" if contributions else None)
    block_was, sim._nsteps_block = sim._nsteps_block, block  # blocks smaller than a call: rows cross block ends
    ecp.initialize(sim)
    sim._nsteps_block = block_was
    had = len(ecp._saved_gids)
    rows_writer = bp.EcpRows(ecp)
    gids = bp.ecp_cell_gids(ecp)
    channels = bp.ecp_transfer_matrix(ecp, gids[0]).shape[0]
    n = int(sim.n_steps)
    rows = {g: np.arange(n * channels, dtype=float).reshape(n, channels) * (i + 1) - 7.5 for i, g in enumerate(gids)}
    half = n // 2 + 1  # two calls, the first ending inside a block, each spanning several
    rows_writer.add(sim, [(g, r[:half]) for g, r in rows.items()], 0, half)
    rows_writer.add(sim, [(g, r[half:]) for g, r in rows.items()], half, n - half)
    caches = sorted({ds.id.get_access_plist().get_chunk_cache()[1] for ds in rows_writer._datasets.values()})
    rows_writer.close()
    ecp.finalize(sim)
    with h5py.File(Path(conf.output_dir) / f"{name}.h5") as h5:
        written = h5["ecp/data"][()]
    files = {}
    for g in gids if contributions else []:
        with h5py.File(Path(conf.output_dir) / f"contributions_{name}" / f"{g}.h5") as h5:
            data = h5["ecp/data"]
            files[g] = {"equal": bool(np.array_equal(data[()], rows[g])), "chunks": list(data.chunks),
                        "maxshape": list(data.maxshape), "dtype": str(data.dtype), "shape": list(data.shape)}
    return {"gids": sorted(int(g) for g in gids), "channels": channels, "steps": n, "block": int(ecp._block_size),
            "buffers_before": had, "buffers_after": len(ecp._saved_gids), "cache_bytes": caches,
            "sum_written": bool(np.array_equal(written, sum(rows.values()))), "files": list(files.values()),
            "shapes_fit": all(list(bp.ecp_transfer_matrix(ecp, g).shape) == [channels, int(sum(
                sec.nseg for sec in net.get_cell_gid(g).hobj.all))] for g in gids)}


seen["ecp"] = {"extracellular_inserted": bool(inserted), "restored": "_BioCell__set_extracell_mechanism" in
               vars(BioCell) and not vars(BioCell)["_BioCell__set_extracell_mechanism"].__name__ == "<lambda>",
               "local_gids": sorted(int(g) for g in net.get_local_cells()),
               "aligned": write_twice("ecp", electrodes, True, 256), "unaligned": write_twice("ecp_few", few, True, 64),
               "no_contributions": write_twice("ecp_sum", few, False, 64)}
bp.set_simulation_modules(sim, [m for m in mods if isinstance(m, modules.SpikesMod)])
seen["modules_after_set"] = [type(m).__name__ for m in bp.simulation_modules(sim)]
spikes_mod = bp.simulation_modules(sim)[0]
spikes_mod.initialize(sim)
bp.record_spike(spikes_mod, 3, 12.5, "pairs")
spikes_mod.finalize(sim)
seen["spikes_file"] = str(Path(conf.output_dir) / conf["output"]["spikes_file"])
out.write_text(json.dumps(seen))
