"""Test-only: every synapse's location, source, weight and delay as built by the config's synapse mode.

    python lean_locations_probe.py CONFIG OUT.npz

Builds the network as a run does (cells, recurrent and spike-input edges) without simulating, and
writes one row per NetCon, grouped by target cell (gid order) and in creation order within a cell:
target gid, section name, the synapse's x (NEURON's own ``get_loc``), source gid, weight, delay.
``order_*``: every Exp2Syn and every NetCon of the model in NEURON's creation order (its hoc object
index): the synapse's section and x; the NetCon's source (gid, or the spike source's hoc name), target
synapse, weight and delay.
"""

import sys
from pathlib import Path

import numpy as np

from bmtk_scaling.environment import configure_neuron_environment

configure_neuron_environment()
config, out = Path(sys.argv[1]).absolute(), Path(sys.argv[2]).absolute()
from neuron import h  # noqa: E402

h.nrnmpi_init()
from bmtk.simulator import bionet  # noqa: E402

import bmtk_scaling.bionet.cell_drive  # noqa: E402, F401
from bmtk_scaling.bionet.network import ScalingBioNetwork  # noqa: E402
from bmtk_scaling.bionet.simulator import ScalingBioSimulator  # noqa: E402
from bmtk_scaling.run.preflight import plan_run  # noqa: E402
from bmtk_scaling.sonata.configs import resolved_for_bmtk  # noqa: E402

plan = plan_run(config, 1, check_output=False)
conf = bionet.Config.from_dict(resolved_for_bmtk(config, out.parent / "probe_output", plan.mechanisms_dir),
                               validate=True)
conf.build_env()
net = ScalingBioNetwork.from_config(conf)
ScalingBioSimulator.from_config(conf, network=net)

cells = net.get_local_cells()
owner = {sec.name(): gid for gid, cell in cells.items() if hasattr(cell, "hobj") for sec in cell.hobj.all}
rows: dict[int, list] = {gid: [] for gid in cells}


def record(gid, nc):
    syn = nc.syn()
    x = syn.get_loc()
    sec = h.cas()
    h.pop_section()
    rows[gid].append((gid, sec.name(), x, nc.srcgid(), nc.weight[0], nc.delay))


for gid, cell in cells.items():
    for nc in cell.netcons:
        record(gid, nc)
if net.lean_builder is not None and not net.lean_builder.register_netcons:
    for nc in net.lean_builder.netcons:
        syn = nc.syn()
        syn.get_loc()
        name = h.cas().name()
        h.pop_section()
        record(owner[name], nc)


def location(syn):
    x = syn.get_loc()
    name = h.cas().name()
    h.pop_section()
    return name, x


synapses = sorted(h.List("Exp2Syn"), key=lambda o: int(o.hname().split("[")[1][:-1]))
syn_index = {s.hname(): k for k, s in enumerate(synapses)}
syn_rows = [location(s) for s in synapses]
netcons = sorted(h.List("NetCon"), key=lambda o: int(o.hname().split("[")[1][:-1]))
nc_rows = [(str(nc.srcgid()) if nc.srcgid() >= 0 else nc.pre().hname(),
            syn_index.get(nc.syn().hname(), -1) if nc.syn() is not None else -1, nc.weight[0], nc.delay)
           for nc in netcons]
flat = [r for gid in sorted(rows) for r in rows[gid]]
np.savez(out, gid=np.array([r[0] for r in flat]), section=np.array([r[1] for r in flat]),
         x=np.array([r[2] for r in flat]), source=np.array([r[3] for r in flat]),
         weight=np.array([r[4] for r in flat]), delay=np.array([r[5] for r in flat]),
         order_syn_section=np.array([r[0] for r in syn_rows]), order_syn_x=np.array([r[1] for r in syn_rows]),
         order_nc_source=np.array([r[0] for r in nc_rows]), order_nc_target=np.array([r[1] for r in nc_rows]),
         order_nc_weight=np.array([r[2] for r in nc_rows]), order_nc_delay=np.array([r[3] for r in nc_rows]))
