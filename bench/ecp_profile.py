"""Where an ECP report's time goes under psolve: bio_450cells built once, psolve timed with each part switched on.

One rank, one process, ``--steps`` steps of the shipped ``config.simulation_ecp.json`` (86 channels) on NEURON or
CoreNEURON: psolve without ``use_fast_imem``; with it; with every segment's ``i_membrane_`` recorded by
``Vector.record`` (sized once); with the currents copied by the plugin's ``EcpImem`` mechanism; then
the fold's parts on the recorded currents: joining them into one array per cell, the products with the
transfer matrices (one per cell, as with contribution files, and one for all cells), and the fixed cost of one
psolve call (on CoreNEURON, the model's transfer). Last, the write: the copied currents folded
``--write-steps`` / ``--steps`` times by the plugin's own fold, as in a run of ``--write-steps`` steps (products,
the rows handed to bmtk's block buffers, ``ecp.h5``'s per-rank file and the 300 contribution files written), and
the module's finalize. Needs ``../shared/realnets/bmtk``.

    python bench/ecp_profile.py [--engine neuron|coreneuron] [--steps 500] [--write-steps 10000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import CORPUS, copy_corpus, machine, write_json  # noqa: E402


class _Built:
    """bmtk's ECP module, already initialised: a second gatherer attaches to its cells without redoing it."""

    def __init__(self, module) -> None:
        self._module = module

    def initialize(self, sim) -> None:
        pass

    def __getattr__(self, name):
        return getattr(self._module, name)

    def __setattr__(self, name, value):  # the block writer's state is the module's
        if name == "_module":
            object.__setattr__(self, name, value)
        else:
            setattr(self._module, name, value)


def _profile(sim, steps: int, write_steps: int, out: dict) -> None:
    import numpy as np
    from neuron import h
    from threadpoolctl import threadpool_limits

    from bmtk_scaling._bmtk_private import ecp_transfer_matrix, simulation_modules
    from bmtk_scaling.bionet.ecp import RecordedEcp, mechanism_loaded

    pc = h.ParallelContext()
    mods = simulation_modules(sim)
    for m in mods:
        m.initialize(sim)
    ecp = next(m for m in mods if isinstance(m, RecordedEcp))  # Vector.record (main() keeps the mechanism out)
    sim._configure_exchange()
    sim._configure_engine()
    pc.set_maxstep(sim._max_step())
    out.update(segments=ecp.local_segments, cells=len(ecp._segments), steps=steps)

    def run(label: str, n: int = steps) -> None:
        h.finitialize(sim.v_init)
        t0 = time.perf_counter()
        pc.psolve(n * sim.dt)
        out[label] = time.perf_counter() - t0
        print(f"{label:<40}{out[label]:9.3f} s", flush=True)

    run("warm-up (20 steps)", 20)
    ecp.start(steps)
    run("fast_imem + Vector.record")
    t0 = time.perf_counter()
    joined = {}
    for gid, vectors in ecp._vectors.items():
        v = h.Vector()
        v.append(*vectors)
        joined[gid] = v.as_numpy().reshape(len(vectors), -1)[:, -steps:].copy()
    out["join the recorded currents per cell"] = time.perf_counter() - t0
    with threadpool_limits(limits=1, user_api="blas"):
        t0 = time.perf_counter()
        for gid, currents in joined.items():
            ecp_transfer_matrix(ecp.module, gid) @ currents
        out["products, one per cell"] = time.perf_counter() - t0
        whole = np.hstack([ecp_transfer_matrix(ecp.module, gid) for gid in joined])
        stacked = np.vstack(list(joined.values()))
        t0 = time.perf_counter()
        whole @ stacked
        out["one product for all cells"] = time.perf_counter() - t0
    for key in ("join the recorded currents per cell", "products, one per cell", "one product for all cells"):
        print(f"{key:<40}{out[key]:9.3f} s", flush=True)
    for vectors in ecp._vectors.values():
        for vec in vectors:
            vec.play_remove()
    run("fast_imem")
    ecp.module._fih1 = None  # bmtk's handler that sets its i_membrane_ pointers (they need fast_imem)
    h.CVode().use_fast_imem(0)
    run("plain (no fast_imem)")
    run("one psolve call of 1 step", 1)
    h.CVode().use_fast_imem(1)
    if mechanism_loaded():
        copier = RecordedEcp(_Built(ecp.module), copy=True)
        copier.initialize(sim)
        copier._rows = getattr(ecp, "_rows", None)  # the module has one writer of its blocks: the first gatherer's
        h.finitialize(sim.v_init)  # the mechanism is in the model: node indices are final after this
        copier.start(steps)
        # twice: the first run also maps the buffer's pages (once per run: later chunks reuse them)
        for label in ("fast_imem + EcpImem copy, first chunk", "fast_imem + EcpImem copy"):
            h.finitialize(sim.v_init)
            copier.before_chunk()
            t0 = time.perf_counter()
            pc.psolve(steps * sim.dt)
            out[label] = time.perf_counter() - t0
            print(f"{label:<40}{out[label]:9.3f} s", flush=True)
            assert not np.isnan(copier._buffer[:, 0]).any(), "the copy missed rows"
        copier._copy_into(buffer=0, nodes=0)
        _write(sim, copier, steps, write_steps, out)


def _write(sim, copier, steps: int, write_steps: int, out: dict) -> None:
    """The fold of ``write_steps`` steps (the same copied currents ``write_steps // steps`` times) and the finalize."""
    folds = max(1, write_steps // steps)
    t0 = time.perf_counter()
    for _ in range(folds):
        copier.fold(sim, steps)
    out["write_steps"] = folds * steps
    out["fold (products and writes)"] = time.perf_counter() - t0
    out["of fold: rows and writes"] = copier.write_s
    for part, seconds in getattr(copier._rows, "seconds", {}).items():  # the plugin's own block writer
        out[f"  of which {part}"] = seconds
    t0 = time.perf_counter()
    copier.finalize(sim)
    out["finalize (ecp.h5, files closed)"] = time.perf_counter() - t0
    print(f"write phase: {folds * steps} steps", flush=True)
    for key in ("fold (products and writes)", "of fold: rows and writes", *(k for k in out if k.startswith("  of")),
                "finalize (ecp.h5, files closed)"):
        print(f"{key:<40}{out[key]:9.3f} s", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=["neuron", "coreneuron"], default="neuron")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--write-steps", type=int, default=10000, help="steps of the write phase (NEURON)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if not CORPUS.is_dir():
        print(f"bmtk's examples are not here ({CORPUS}): nothing to measure")
        return 2
    from bmtk_scaling.bionet import simulator
    from bmtk_scaling.run import rank_main

    out: dict = {"engine": args.engine}
    simulator.ScalingBioSimulator.run = lambda sim: _profile(sim, args.steps, args.write_steps, out)
    simulator.mechanism_loaded = lambda: False  # the model as built has no EcpImem: _profile adds it last
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        copy_corpus(tmp, "bio_450cells", "bio_components")
        config = tmp / "bio_450cells" / "config.simulation_ecp.json"
        data = json.loads(config.read_text())
        data["target_simulator"] = "CORENEURON" if args.engine == "coreneuron" else "NEURON"
        config.write_text(json.dumps(data, indent=2))
        rank_main.main([str(config)])
    write_json(args.out / f"ecp_profile_{args.engine}.json", {"machine": machine(), **out})
    print(f"wrote {args.out / f'ecp_profile_{args.engine}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
