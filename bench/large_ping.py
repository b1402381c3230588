"""Large PING-Assembly runs: can the plugin set up and simulate the paper's sizes on this machine?

Builds PING 2 x CELLS once, then runs it through the runner for each requested (engine, ranks) with
the plugin's defaults (lean, shared synapses) and reports instantiation time, peak memory per rank
and summed over ranks, and simulate time. Stock bionet is not run here: at these sizes it needs
about 140 us and 2 KB per synapse (see bench/instantiate.py), i.e. tens of minutes and tens of GB.

    python bench/large_ping.py --cells 5000 --runs neuron:1 coreneuron:1
    python bench/large_ping.py --cells 12500 --runs coreneuron:2 --tstop 500
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_json  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=5000, help="cells per assembly (2 assemblies)")
    parser.add_argument("--runs", nargs="+", default=["neuron:1", "coreneuron:1"], help="engine:ranks")
    parser.add_argument("--tstop", type=float, default=500.0)
    parser.add_argument("--file-mode", action="store_true", help="CoreNEURON reads the model from files")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=5400.0)
    parser.add_argument("--workdir", type=Path, help="keep the network here instead of a temporary folder")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()

    from bmtk_scaling.config.derive import derive_config, write_config
    from bmtk_scaling.run.launcher import run_config
    from bmtk_scaling.sonata.configs import load_config
    from network_builders import ping_assembly

    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        t0 = time.perf_counter()
        net = ping_assembly(Path(tmp) / f"ping{args.cells}", n_assemblies=2, cells_per_assembly=args.cells,
                            seed=args.seed, tstop=args.tstop)
        build_network_s = time.perf_counter() - t0
        print(f"built PING 2 x {args.cells}: {net.n_nodes:,} cells, {net.n_edges:,} synapses in "
              f"{build_network_s:.1f} s", flush=True)
        for spec in args.runs:
            engine, ranks = spec.split(":")
            name = f"{engine}_{ranks}"
            file_mode = True if args.file_mode and engine == "coreneuron" else None
            cfg = derive_config(load_config(net.simulation_config).data, engine=engine,
                                output_dir=f"$BASE_DIR/out_{name}", file_mode=file_mode)
            cfg_path = write_config(cfg, net.simulation_config, net.path / f"{name}.json")
            print(f"running {engine} on {ranks} rank(s), {args.tstop:g} ms ...", flush=True)
            result = run_config(cfg_path, int(ranks), timeout=args.timeout)
            s = result.summary
            rows.append({"cells": net.n_nodes, "synapses": net.n_edges, "engine": s["engine"], "ranks": int(ranks),
                         "instantiate_s": s["build_s"], "setup_s": s["setup_s"], "simulate_s": s["simulate_s"],
                         "total_s": s["total_s"], "peak_rss_max_gib": s["peak_rss_max_mib"] / 1024,
                         "peak_rss_sum_gib": s["peak_rss_sum_mib"] / 1024, "spikes": s["spikes"],
                         "file_mode": bool(args.file_mode and engine == "coreneuron")})

    head = (f"{'cells':>7}{'synapses':>12}  {'engine':<18}{'ranks':>6}{'inst s':>8}{'setup s':>9}{'sim s':>8}"
            f"{'total s':>9}{'GiB max':>9}{'GiB sum':>9}{'spikes':>10}")
    print(f"\nnetwork build (bmtk-scaling builder): {build_network_s:.1f} s\n" + head + "\n" + "-" * len(head))
    for r in rows:
        print(f"{r['cells']:>7,}{r['synapses']:>12,}  {r['engine']:<18}{r['ranks']:>6}{r['instantiate_s']:>8.1f}"
              f"{r['setup_s']:>9.1f}{r['simulate_s']:>8.1f}{r['total_s']:>9.1f}{r['peak_rss_max_gib']:>9.2f}"
              f"{r['peak_rss_sum_gib']:>9.2f}{r['spikes']:>10,}")
    write_json(args.out / f"large_ping_{args.cells}.json", {"machine": machine(), "tstop_ms": args.tstop,
                                                            "network_build_s": build_network_s, "rows": rows})
    print(f"wrote {args.out / f'large_ping_{args.cells}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
