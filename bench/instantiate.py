"""Instantiation: stock bionet against the plugin's lean synapses, side by side, one rank.

For each PING size, the same network is run (each a fresh process through the runner) as:
  stock      bmtk's own edge building (one Python edge object, point process and NetCon per edge) and h.run
  per_edge   plugin: edges read as arrays, one point process per edge, NEURON psolve
  shared     plugin: one point process per (cell, synapse type), one NetCon per edge, NEURON psolve
  shared+CN  as shared, simulated on CoreNEURON
and the table gives instantiation time and memory per synapse, simulate time and end-to-end ratios.
``--profile`` also profiles stock bionet's instantiation in-process and prints the top lines.

    python bench/instantiate.py [--cells 1250 2500] [--tstop 500] [--profile]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_json  # noqa: E402

CASES = (
    ("stock", {"engine": "neuron", "neuron_loop": "bmtk", "synapses": "bmtk"}),
    ("per_edge", {"engine": "neuron", "neuron_loop": "psolve", "synapses": "per_edge"}),
    ("shared", {"engine": "neuron", "neuron_loop": "psolve", "synapses": "shared"}),
    ("shared+CN", {"engine": "coreneuron", "synapses": "shared"}),
)


def profile_stock(config: Path, top: int) -> str:
    """cProfile of stock bionet building cells and synapses (in a child process: NEURON state is global)."""
    import subprocess

    code = f"""
import cProfile, pstats, io, os
from bmtk_scaling.environment import configure_neuron_environment
configure_neuron_environment()
from neuron import h
h.nrnmpi_init()
from bmtk.simulator import bionet
import bmtk_scaling.bionet.cell_drive
from bmtk_scaling.sonata.configs import resolved_for_bmtk
os.chdir({str(config.parent)!r})
conf = bionet.Config.from_dict(resolved_for_bmtk({str(config)!r}), validate=True)
conf.build_env()
net = bionet.BioNetwork.from_config(conf)
prof = cProfile.Profile()
prof.enable()
net.build_nodes()
net.build_recurrent_edges()
prof.disable()
out = io.StringIO()
pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats({top})
print(out.getvalue())
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "function calls" in line)
    return "\n".join(lines[start:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, nargs="+", default=[1250, 2500], help="cells per assembly (2 assemblies)")
    parser.add_argument("--tstop", type=float, default=500.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="profile stock instantiation at the first size")
    parser.add_argument("--profile-top", type=int, default=15)
    parser.add_argument("--timeout", type=float, default=5400.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()

    from bmtk_scaling.config.derive import derive_config, write_config
    from bmtk_scaling.run.compare import compare_spikes
    from bmtk_scaling.run.launcher import run_config
    from bmtk_scaling.sonata.configs import load_config
    from bmtk_scaling.sonata.spikes import read_spikes
    from network_builders import ping_assembly

    rows, profile = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for cells in args.cells:
            net = ping_assembly(Path(tmp) / f"ping{cells}", n_assemblies=2, cells_per_assembly=cells, seed=args.seed,
                                tstop=args.tstop)
            if args.profile and profile is None:
                print(f"profiling stock instantiation of PING 2 x {cells} ...", flush=True)
                profile = profile_stock(net.simulation_config, args.profile_top)
            base = load_config(net.simulation_config).data
            spikes = {}
            for name, switches in CASES:
                cfg = write_config(derive_config(base, output_dir=f"$BASE_DIR/out_{name.replace('+', '_')}",
                                                 **switches), net.simulation_config, net.path / f"{name}.json")
                print(f"PING 2 x {cells} ({net.n_edges:,} synapses): {name} ...", flush=True)
                result = run_config(cfg, 1, timeout=args.timeout)
                spikes[name] = read_spikes(Path(result.spikes_file))
                r = result.per_rank[0]
                setup = r["build_s"] + r.get("initialize_s", 0.0)
                rows.append({
                    "cells": 2 * cells, "synapses": net.n_edges, "case": name,
                    "instantiate_s": r["build_s"], "us_per_synapse": r["build_s"] / net.n_edges * 1e6,
                    "peak_rss_mib": r["peak_rss_mib"],
                    "bytes_per_synapse": (r["peak_rss_mib"] - r["rss_before_build_mib"]) * 2**20 / net.n_edges,
                    "simulate_s": r["simulate_s"], "setup_plus_simulate_s": setup + r["simulate_s"],
                    "spikes": result.spike_count,
                    "vs_stock": compare_spikes(spikes["stock"], spikes[name]).describe(),
                })
            stock = rows[-len(CASES)]
            for row in rows[-len(CASES):]:
                row["instantiate_speedup"] = stock["instantiate_s"] / row["instantiate_s"]
                row["memory_ratio"] = stock["peak_rss_mib"] / row["peak_rss_mib"]
                row["end_to_end_speedup"] = stock["setup_plus_simulate_s"] / row["setup_plus_simulate_s"]

    head = (f"{'cells':>6}{'synapses':>11}  {'case':<10}{'inst s':>8}{'us/syn':>8}{'peak MiB':>10}{'B/syn':>7}"
            f"{'sim s':>8}{'e2e s':>8}{'inst x':>8}{'mem x':>7}{'e2e x':>7}  spikes vs stock")
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        print(f"{r['cells']:>6}{r['synapses']:>11,}  {r['case']:<10}{r['instantiate_s']:>8.1f}"
              f"{r['us_per_synapse']:>8.1f}{r['peak_rss_mib']:>10.0f}{r['bytes_per_synapse']:>7.0f}{r['simulate_s']:>8.1f}"
              f"{r['setup_plus_simulate_s']:>8.1f}{r['instantiate_speedup']:>8.1f}{r['memory_ratio']:>7.1f}"
              f"{r['end_to_end_speedup']:>7.1f}  {r['vs_stock']}")
    print("inst: building cells and synapses; e2e: instantiate + initialise + simulate; x: stock / this")
    if profile:
        print("\nstock bionet instantiation profile (tottime):\n" + profile)
    write_json(args.out / "instantiate.json", {"machine": machine(), "tstop_ms": args.tstop, "rows": rows,
                                               "stock_profile": profile})
    print(f"wrote {args.out / 'instantiate.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
