"""Child process of tests/test_point_cells.py: 40 IntFire1 cells (the built-in or the plugin's stand-in) on one engine.

argv: builtin|stand_in, neuron|core, build folder, output json. Writes the sorted (time, gid) spikes.
Cells 0-3 get inputs exactly at, just before and just after the end of their refractory period; the
others random inputs and recurrent connections; cell 2 is refractory at tstop.
"""

import json
import os
import sys

BUILD = sys.argv[3]
os.environ["CORENEURONLIB"] = BUILD + "/x86_64/libcorenrnmech.so"
import numpy as np  # noqa: E402
from neuron import coreneuron, h, load_mechanisms  # noqa: E402

load_mechanisms(BUILD)
h.load_file("stdrun.hoc")
kind, engine = sys.argv[1], sys.argv[2]
pc = h.ParallelContext()
rng = np.random.RandomState(1)
cells, keep = [], []
N = 40
for i in range(N):
    c = h.IntFire1() if kind == "builtin" else h.BmtkScalingIntFire1()
    c.tau = [24.0, 7.0][i % 2]
    c.refrac = 0.003 * 1000.0 if i >= 2 else 5.0  # bmtk's refrac (seconds) * 1000
    cells.append(c)
    pc.set_gid2node(i, 0)
    pc.cell(i, h.NetCon(c, None))


def drive(cell, times, delay, w):
    vec = h.Vector(times)
    stim = h.VecStim()
    stim.play(vec)
    nc = h.NetCon(stim, cell)
    nc.delay = delay
    nc.weight[0] = w
    keep.extend([vec, stim, nc])


# spike at 11, refractory until 16: an input at exactly 16 sent after the spike (cell 0); just before/after 36
drive(cells[0], [10.0, 15.0], 1.0, 2.0)
drive(cells[0], [30.0, 34.999999], 1.0, 2.0)
drive(cells[1], [10.0, 30.0, 35.000001], 1.0, 2.0)
# refrac 3 (spike at 51, end at 54), the input at 54 sent after the spike
drive(cells[2], [50.0, 53.0], 1.0, 2.0)
drive(cells[3], [50.0, 53.5], 1.0, 2.0)
for i in range(2, N):
    drive(cells[i], np.sort(rng.uniform(0, 200, 60)), 1.0, float(rng.uniform(0.2, 0.6)))
for i in range(N):  # recurrent, delays shorter and longer than the refractory period
    for j in rng.choice(N, 6, replace=False):
        nc = pc.gid_connect(int(j), cells[i])
        nc.delay = float(rng.choice([1.0, 2.0, 3.0, 1.5]))
        nc.weight[0] = float(rng.uniform(-0.3, 0.5))
        keep.append(nc)
drive(cells[2], [198.5], 0.5, 5.0)  # refractory (a self-event pending, for the built-in) at tstop
tv, idv = h.Vector(), h.Vector()
pc.spike_record(-1, tv, idv)
h.cvode.cache_efficient(1)
pc.set_maxstep(10)
coreneuron.enable = engine == "core"
coreneuron.verbose = 0
h.dt = 0.025
h.finitialize(-65)
pc.psolve(200)
spikes = sorted(zip(np.array(tv).tolist(), np.array(idv).tolist(), strict=True))
with open(sys.argv[4], "w") as out:
    json.dump(spikes, out)
