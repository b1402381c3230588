"""Engines side by side: stock BMTK-NEURON (h.run), NEURON psolve and CoreNEURON on PING-Assembly.

For each network size and rank count, the same network runs on the three engines through
``bmtk-scaling compare`` (each run a real mpiexec launch). Prints one table with time and memory
ratios against stock BMTK-NEURON and writes bench/results/engines.json.

    python bench/engines.py [--cells 1250 5000] [--ranks 1 2] [--tstop 500]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_json  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, nargs="+", default=[1250], help="cells per assembly (2 assemblies)")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--tstop", type=float, default=500.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=5400.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()

    from bmtk_scaling.run.compare import compare_engines
    from network_builders import ping_assembly

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for cells in args.cells:
            net = ping_assembly(Path(tmp) / f"ping{cells}", n_assemblies=2, cells_per_assembly=cells,
                                seed=args.seed, tstop=args.tstop)
            for ranks in args.ranks:
                print(f"PING 2 x {cells} ({net.n_edges:,} synapses), {ranks} rank(s):", flush=True)
                report = compare_engines(net.simulation_config, ranks, out_dir=Path(tmp) / f"cmp{cells}_{ranks}",
                                         timeout=args.timeout, progress=lambda m: print("  " + m, flush=True))
                for v in report["variants"]:
                    rows.append({"cells": 2 * cells, "synapses": net.n_edges, "ranks": ranks, "variant": v["label"],
                                 **v["summary"], "speedup_simulate": v["speedup_simulate"],
                                 "speedup_total": v["speedup_total"], "memory_ratio": v["memory_ratio"],
                                 "identical": v["spikes_vs_stock"]["identical"]})

    head = (f"{'cells':>6}{'synapses':>11}{'ranks':>6}  {'engine':<19}{'build s':>9}{'simulate s':>11}{'total s':>9}"
            f"{'RSS max MiB':>12}{'sim x':>7}{'total x':>8}{'mem x':>7}  spikes")
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        print(f"{r['cells']:>6}{r['synapses']:>11,}{r['ranks']:>6}  {r['variant']:<19}{r['build_s']:>9.1f}"
              f"{r['simulate_s']:>11.2f}{r['total_s']:>9.1f}{r['peak_rss_max_mib']:>12.0f}{r['speedup_simulate']:>7.2f}"
              f"{r['speedup_total']:>8.2f}{r['memory_ratio']:>7.2f}  {'identical' if r['identical'] else 'DIFFER'}")
    print("x columns: stock BMTK-NEURON / this (time) and this / stock (memory), same size and ranks, one run")
    write_json(args.out / "engines.json", {"machine": machine(), "tstop_ms": args.tstop, "rows": rows})
    print(f"wrote {args.out / 'engines.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
