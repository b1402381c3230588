"""Child process of tests/test_bio_components.py: every mechanism of a build in a small network, on one engine.

argv: build folder, neuron|core, JSON list of density mechanisms, JSON list of synapse point processes,
output .npz. One cell per mechanism: a soma with the mechanism, hh and an IClamp (density), or a passive
soma whose synapse is driven by a VecStim and whose spikes drive the next cell (point processes).
"""

import json
import os
import sys

BUILD, ENGINE = sys.argv[1], sys.argv[2]
os.environ["CORENEURONLIB"] = BUILD + "/x86_64/libcorenrnmech.so"
import numpy as np  # noqa: E402
from neuron import coreneuron, h, load_mechanisms  # noqa: E402

load_mechanisms(BUILD)
h.load_file("stdrun.hoc")
suffixes, points = json.loads(sys.argv[3]), json.loads(sys.argv[4])
pc = h.ParallelContext()
h.celsius = 20.0
keep, somas = [], []
for gid, name in enumerate(suffixes + points):
    soma = h.Section(name=f"cell{gid}")
    soma.L = soma.diam = 20.0
    soma.insert("hh")
    if name in suffixes:
        soma.insert(name)
        clamp = h.IClamp(soma(0.5))
        clamp.delay, clamp.dur, clamp.amp = 5.0, 60.0, 0.15 + 0.01 * gid
        keep.append(clamp)
    else:
        syn = getattr(h, name)(soma(0.5))
        times = h.Vector(np.arange(5.0, 80.0, 3.7))
        stim = h.VecStim()
        stim.play(times)
        nc = h.NetCon(stim, syn)
        nc.weight[0], nc.delay = 0.2, 1.0
        keep += [syn, times, stim, nc]
    pc.set_gid2node(gid, 0)
    pc.cell(gid, h.NetCon(soma(0.5)._ref_v, None, sec=soma))
    somas.append(soma)
recs = [h.Vector().record(s(0.5)._ref_v) for s in somas]
tv, idv = h.Vector(), h.Vector()
pc.spike_record(-1, tv, idv)
h.cvode.cache_efficient(1)
pc.set_maxstep(10)
coreneuron.enable = ENGINE == "core"
coreneuron.verbose = 0
h.dt = 0.025
h.finitialize(-65.0)
pc.psolve(80.0)
np.savez(sys.argv[5], v=np.array([np.array(r) for r in recs]), t=np.array(tv), gid=np.array(idv))
