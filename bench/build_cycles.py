"""Building in cycles: PING on CoreNEURON's file mode, one build cycle against the number the memory plan picks.

Builds PING ASSEMBLIES x CELLS once (the paper's density: p = 0.5 between E and I within an
assembly, so synapses grow with the square of an assembly's size), then runs it through the runner on
CoreNEURON file mode for each number of build cycles asked for, side by side in one invocation:
build (every cycle), set-up (writing and freeing), simulate (CoreNEURON, loading the files included)
and total times; the build's and CoreNEURON's peak memory per rank measured apart; the plan's expected
peak; and whether the spikes equal the first run's. ``plan`` stands for the smallest N the memory plan
expects to fit ``--memory-gib`` (default: the memory available now); an N whose expected peak does not
fit this machine is refused before it starts and reported so.

    python bench/build_cycles.py --cells 5000 --memory-gib 1.5                # 10,000 cells, 9 M synapses
    python bench/build_cycles.py --cells 12500 --cycles 1 plan --memory-gib 8  # 25,000 cells, 56 M synapses
    python bench/build_cycles.py --assemblies 4 --cells 12500 --cycles 1 plan  # 50,000 cells, 112 M synapses

``--network DIR`` keeps the built network in DIR and reuses it in later invocations of the same size.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_json  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assemblies", type=int, default=2)
    parser.add_argument("--cells", type=int, default=5000, help="cells per assembly")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--cycles", nargs="+", default=["1", "plan"], help="build cycles to run: numbers or 'plan'")
    parser.add_argument("--memory-gib", type=float, help="memory the plan must fit (default: available now)")
    parser.add_argument("--tstop", type=float, default=500.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=7200.0)
    parser.add_argument("--workdir", type=Path, help="build the network in a temporary folder here")
    parser.add_argument("--network", type=Path,
                        help="build the network into this folder and keep it; a folder already holding the same "
                             "network (same size and seed) is used as it is, so several invocations share one build")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()

    from bmtk_scaling.config.derive import derive_config, write_config
    from bmtk_scaling.errors import BmtkScalingError
    from bmtk_scaling.run.launcher import run_config
    from bmtk_scaling.run.preflight import plan_run
    from bmtk_scaling.sonata.configs import load_config
    from bmtk_scaling.sonata.spikes import read_spikes
    from network_builders._build import available_memory

    budget = args.memory_gib * 2**30 if args.memory_gib else available_memory()
    rows, reference = [], None
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        t0 = time.perf_counter()
        net = _network(args, args.network or Path(tmp) / f"ping{args.cells}")
        build_network_s = time.perf_counter() - t0
        print(f"built PING {args.assemblies} x {args.cells}: {net.n_nodes:,} cells, {net.n_edges:,} synapses in "
              f"{build_network_s:.1f} s", flush=True)
        base = load_config(net.simulation_config).data
        probe = write_config(derive_config(base, engine="coreneuron", file_mode=True), net.simulation_config,
                             net.path / "plan.json", overwrite=True)
        plan = plan_run(probe, args.ranks, check_output=False, check_memory=False).memory
        planned = plan.smallest_cycles(budget)
        print(f"memory plan ({args.ranks} ranks, {budget / 2**30:.1f} GiB to fit): {plan.table()}; "
              f"smallest N that fits: {planned}", flush=True)
        for spec in args.cycles:
            cycles = planned if spec == "plan" else int(spec)
            if cycles is None:
                print("no number of build cycles fits: skipped", flush=True)
                continue
            name = f"cycles{cycles}"
            cfg = derive_config(base, engine="coreneuron", file_mode=True, build_cycles=cycles,
                                output_dir=f"$BASE_DIR/out_{name}")
            cfg_path = write_config(cfg, net.simulation_config, net.path / f"{name}.json", overwrite=True)
            row = {"cells": net.n_nodes, "synapses": net.n_edges, "ranks": args.ranks, "cycles": cycles,
                   "chosen_by": "plan" if spec == "plan" else "asked",
                   "expected_peak_rank_gib": plan.peak_per_rank_mib(cycles) / 1024,
                   "expected_peak_sum_gib": plan.peak_gib(cycles)}
            print(f"running {cycles} build cycle(s) on {args.ranks} rank(s), {args.tstop:g} ms ...", flush=True)
            try:
                result = run_config(cfg_path, args.ranks, timeout=args.timeout)
            except BmtkScalingError as err:
                print(f"  refused: {err}", flush=True)
                rows.append({**row, "refused": str(err)})
                continue
            s = result.summary
            spikes = read_spikes(Path(result.spikes_file))[["node_id", "timestamp"]].to_numpy()
            spikes = spikes[np.lexsort((spikes[:, 0], spikes[:, 1]))]
            reference = spikes if reference is None else reference
            row.update(build_s=s["build_s"], setup_s=s["setup_s"], simulate_s=s["simulate_s"], total_s=s["total_s"],
                       build_peak_rank_gib=s["build_peak_rss_max_mib"] / 1024,
                       coreneuron_peak_rank_gib=s["coreneuron_peak_rss_max_mib"] / 1024,
                       peak_rank_gib=s["peak_rss_max_mib"] / 1024, peak_sum_gib=s["peak_rss_sum_mib"] / 1024,
                       spikes=s["spikes"], same_spikes=bool(np.array_equal(spikes, reference)))
            rows.append(row)

    measured = [r for r in rows if "refused" not in r]
    head = (f"{'cells':>7}{'synapses':>12}{'ranks':>6}{'N':>4}  {'by':<6}{'build s':>9}{'setup s':>9}{'sim s':>8}"
            f"{'total s':>9}{'build GiB':>10}{'core GiB':>9}{'peak GiB':>9}{'sum GiB':>8}{'plan GiB':>9}"
            f"{'peak x':>7}  spikes")
    print(f"\nnetwork build (bmtk-scaling builder): {build_network_s:.1f} s; GiB per rank (max over ranks) unless "
          "'sum'\n" + head + "\n" + "-" * len(head))
    for r in rows:
        lead = f"{r['cells']:>7,}{r['synapses']:>12,}{r['ranks']:>6}{r['cycles']:>4}  {r['chosen_by']:<6}"
        if "refused" in r:
            print(lead + f"  refused before the run: expected {r['expected_peak_sum_gib']:.1f} GiB in all")
            continue
        ratio = measured[0]["peak_rank_gib"] / r["peak_rank_gib"]
        same = (f"{r['spikes']:,} (the reference)" if r is measured[0] else
                "identical" if r["same_spikes"] else "DIFFERENT")
        print(lead + f"{r['build_s']:>9.1f}{r['setup_s']:>9.1f}{r['simulate_s']:>8.1f}{r['total_s']:>9.1f}"
              f"{r['build_peak_rank_gib']:>10.2f}{r['coreneuron_peak_rank_gib']:>9.2f}{r['peak_rank_gib']:>9.2f}"
              f"{r['peak_sum_gib']:>8.2f}{r['expected_peak_rank_gib']:>9.2f}{ratio:>7.2f}  {same}")
    print("peak x: the first run's peak per rank over this one's; plan GiB: the memory plan's expected peak per rank; "
          "spikes: the first run's count, then whether each later run's spikes equal it")
    out = args.out / f"build_cycles_{args.assemblies * args.cells}.json"
    write_json(out, {"machine": machine(), "tstop_ms": args.tstop, "ranks": args.ranks,
                     "memory_budget_gib": budget / 2**30 if budget else None, "planned_cycles": planned,
                     "network_build_s": build_network_s, "rows": rows})
    print(f"wrote {out}")
    return 0 if all(r.get("same_spikes", True) for r in rows) else 1


def _network(args: argparse.Namespace, path: Path):
    """PING at the asked size in ``path``: built there, or the one an earlier invocation left there."""
    import json

    from network_builders import ping_assembly

    params = {"assemblies": args.assemblies, "cells": args.cells, "seed": args.seed, "tstop": args.tstop}
    stamp = path / "bench_parameters.json"
    if stamp.exists() and json.loads(stamp.read_text()) == params:
        import h5py

        from network_builders.spec import BuiltNetwork
        with h5py.File(path / "network" / "ping_nodes.h5") as nodes, \
                h5py.File(path / "network" / "ping_ping_edges.h5") as edges:
            n_nodes = nodes["nodes/ping/node_id"].shape[0]
            n_edges = edges["edges/ping_to_ping/source_node_id"].shape[0]
        print(f"using the network already built in {path}", flush=True)
        return BuiltNetwork(path=path, population="ping", kind="ping", n_nodes=n_nodes, n_edges=n_edges)
    net = ping_assembly(path, n_assemblies=args.assemblies, cells_per_assembly=args.cells, seed=args.seed,
                        tstop=args.tstop, force=True, overwrite=stamp.exists())
    stamp.write_text(json.dumps(params))
    return net


if __name__ == "__main__":
    sys.exit(main())
