"""What progress reporting costs: psolve in pieces (one progress update each) against one psolve call.

Builds a PING network (2 x 250 cells by default), then on 2 MPI ranks, in one process per rank and on
the same built model, alternates one ``pc.psolve(tstop)`` with the plugin's chunked psolve at the given
progress intervals, several times each, on NEURON and on CoreNEURON (in memory: each piece is one
psolve call, so CoreNEURON takes the model over once per piece). Reports the simulate time of each
mode (median over repeats, the order of the modes rotated), its cost over one call, the number of
pieces, and whether the spikes are identical. Prints a table and writes bench/results/progress.json.

    python bench/progress.py [--tstop 3000] [--repeats 3] [--intervals 10 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def rank_part(config: Path, engine: str, intervals: list[float], repeats: int, out: Path) -> None:
    """Inside each rank: build once, then time every mode ``repeats`` times, interleaved."""
    from bmtk_scaling.environment import configure_neuron_environment, finalize_mpi

    configure_neuron_environment()
    os.chdir(config.parent)  # as the plugin's run script does: bmtk finds the compiled mechanisms from here
    from neuron import h

    h.nrnmpi_init()
    pc = h.ParallelContext()
    from bmtk.simulator import bionet

    import bmtk_scaling.bionet.cell_drive  # noqa: F401  (registers the attach_drive cell processor)
    from bmtk_scaling.bionet.network import ScalingBioNetwork
    from bmtk_scaling.bionet.simulator import ScalingBioSimulator
    from bmtk_scaling.run.preflight import plan_run
    from bmtk_scaling.sonata.configs import resolved_for_bmtk

    plan = plan_run(config, int(pc.nhost()), check_output=False) if int(pc.id()) == 0 else None
    mech = pc.py_broadcast(str(plan.mechanisms_dir) if plan and plan.mechanisms_dir else None, 0)
    resolved = resolved_for_bmtk(config, out.parent / f"out_{engine}", Path(mech) if mech else None)
    conf = bionet.Config.from_dict(resolved)
    conf.build_env()
    net = ScalingBioNetwork.from_config(conf)
    sim = ScalingBioSimulator.from_config(conf, network=net)
    sim._configure_exchange()
    sim._configure_engine()  # CoreNEURON enabled by the config's engine
    tvec, gvec = h.Vector(), h.Vector()
    pc.spike_record(-1, tvec, gvec)
    modes = [0.0, *intervals]
    times: dict[float, list[float]] = {m: [] for m in modes}
    pieces: dict[float, int] = {}
    spikes: dict[float, tuple] = {}
    for repeat in range(repeats):
        for mode in modes[repeat % len(modes):] + modes[:repeat % len(modes)]:  # each mode first in turn
            tvec.resize(0)
            gvec.resize(0)
            pc.set_maxstep(sim._max_step())
            h.finitialize(sim.v_init)
            pc.barrier()
            t0 = time.perf_counter()
            pieces[mode] = sim._psolve(sim.tstop, mode)
            pc.barrier()
            times[mode].append(time.perf_counter() - t0)
            mine = sorted(zip(gvec.to_python(), tvec.to_python(), strict=True))
            spikes[mode] = tuple(sorted(sum(pc.py_allgather(mine), [])))
    if int(pc.id()) == 0:
        out.write_text(json.dumps({"times": {str(k): v for k, v in times.items()},
                                   "pieces": {str(k): v for k, v in pieces.items()},
                                   "identical": {str(k): spikes[k] == spikes[0.0] for k in modes},
                                   "spikes": len(spikes[0.0])}))
    finalize_mpi()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tstop", type=float, default=3000.0)
    parser.add_argument("--cells-per-assembly", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--intervals", type=float, nargs="+", default=[10.0, 1.0])
    parser.add_argument("--rank-part", nargs=4, metavar=("CONFIG", "ENGINE", "REPEATS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rank_part:
        config, engine, repeats, out = args.rank_part
        return rank_part(Path(config), engine, args.intervals, int(repeats), Path(out))

    from _common import machine, write_json

    from bmtk_scaling.environment import configure_neuron_environment, mpiexec_path
    from network_builders import ping_assembly

    work = Path(tempfile.mkdtemp(prefix="bench_progress_"))
    net = ping_assembly(work / "net", n_assemblies=2, cells_per_assembly=args.cells_per_assembly, seed=1,
                        tstop=args.tstop)
    from bmtk_scaling.api import configure_simulation
    from bmtk_scaling.run.preflight import plan_run

    configs = {engine: configure_simulation(net.simulation_config, work / "net" / f"{engine}.json", engine=engine)
               for engine in ("neuron", "coreneuron")}
    for config in configs.values():
        plan_run(config, 2, check_output=False)  # mechanisms compiled here, before any rank starts
    load_before = os.getloadavg()
    rows = []
    for engine in ("neuron", "coreneuron"):
        out = work / f"{engine}.json"
        cmd = [str(mpiexec_path()), "-n", "2", sys.executable, __file__, "--intervals", *map(str, args.intervals),
               "--rank-part", str(configs[engine]), engine, str(args.repeats), str(out)]
        proc = subprocess.run(cmd, env=configure_neuron_environment(dict(os.environ)), capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])
        data = json.loads(out.read_text())
        one = statistics.median(data["times"]["0.0"])
        for mode, values in data["times"].items():
            median = statistics.median(values)
            rows.append({"engine": engine, "interval_s": float(mode), "pieces": data["pieces"][mode],
                         "simulate_s_median": median, "simulate_s_all": values,
                         "cost_vs_one_call_pct": 100.0 * (median - one) / one,
                         "spikes": data["spikes"], "spikes_identical": data["identical"][mode]})
    header = f"{'engine':<11}{'interval s':>11}{'pieces':>8}{'simulate s':>12}{'cost %':>9}{'spikes':>8}  identical"
    print(header)
    print("-" * len(header))
    for r in rows:
        interval = "one call" if r["interval_s"] == 0 else f"{r['interval_s']:g}"
        print(f"{r['engine']:<11}{interval:>11}{r['pieces']:>8}{r['simulate_s_median']:>12.2f}"
              f"{r['cost_vs_one_call_pct']:>9.1f}{r['spikes']:>8}  {r['spikes_identical']}")
    print(f"median of {args.repeats} interleaved repeats on 2 ranks; load average before {load_before[0]:.1f}, "
          f"after {os.getloadavg()[0]:.1f}")
    write_json(HERE / "results" / "progress.json",
               {"machine": machine(), "tstop_ms": args.tstop, "cells": 2 * args.cells_per_assembly,
                "repeats": args.repeats, "load_average_before": load_before, "load_average_after": os.getloadavg(),
                "rows": rows})


if __name__ == "__main__":
    main()
