"""Instantiation: stock bionet against the plugin's lean synapses, side by side, one rank.

For each network, the same network is run (each a fresh process through the runner) as:
  stock      bmtk's own edge building (one Python edge object, point process and NetCon per edge) and h.run
  per_edge   plugin: edges read as arrays, one point process per synapse, NEURON psolve
  shared     plugin: one point process per (segment, synapse model, parameters), one NetCon per edge, psolve
  shared+CN  as shared, simulated on CoreNEURON (PING only: the fixture and bio_450cells use NEURON here)
and the table gives instantiation time and memory per synapse, simulate time and end-to-end ratios.
Networks: PING (``--cells``, cells per assembly), the multi-compartment fixture scaled to
``--fixture-cells`` cells (``0``: none), and bmtk's ``bio_450cells`` where ``../shared/realnets/bmtk``
holds it (``--no-corpus``: skip). ``--profile`` profiles each plugin mode's instantiation of the
fixture and bio_450cells in-process (cProfile) and prints the top lines.

On a shared machine the load changes between cases: ``--repeat N`` runs all cases of a network N
times in rounds and shows each phase's least time, and the simulate phase is also given in CPU seconds.

    python bench/instantiate.py [--cells 1250 2500] [--fixture-cells 800] [--tstop 500] [--profile] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from _common import CORPUS, copy_corpus, machine, write_json  # noqa: E402

STOCK = ("stock", {"engine": "neuron", "neuron_loop": "bmtk", "synapses": "bmtk", "cell_build": "bmtk"})
LEAN = (
    ("per_edge", {"engine": "neuron", "neuron_loop": "psolve", "synapses": "per_edge"}),
    ("shared", {"engine": "neuron", "neuron_loop": "psolve", "synapses": "shared"}),
)
CN = ("shared+CN", {"engine": "coreneuron", "synapses": "shared"})


def profile_build(config: Path, top: int) -> str:
    """cProfile of building cells and synapses as a run does (in a child process: NEURON state is global)."""
    import subprocess

    code = f"""
import cProfile, pstats, io, os
from pathlib import Path
from bmtk_scaling.environment import configure_neuron_environment
configure_neuron_environment()
from neuron import h
h.nrnmpi_init()
from bmtk.simulator import bionet
import bmtk_scaling.bionet.cell_drive
from bmtk_scaling.bionet.network import ScalingBioNetwork
from bmtk_scaling.bionet.simulator import ScalingBioSimulator
from bmtk_scaling.run.preflight import plan_run
from bmtk_scaling.sonata.configs import resolved_for_bmtk
config = Path({str(config)!r})
os.chdir(config.parent)
plan = plan_run(config, 1, check_output=False)
conf = bionet.Config.from_dict(resolved_for_bmtk(config, config.parent / "profile_out", plan.mechanisms_dir),
                               validate=True)
conf.build_env()
prof = cProfile.Profile()
prof.enable()
net = ScalingBioNetwork.from_config(conf)
sim = ScalingBioSimulator.from_config(conf, network=net)
prof.disable()
out = io.StringIO()
pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats({top})
print(out.getvalue())
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "function calls" in line)
    return "\n".join(lines[start:])


_FLOOR = """
import json, sys, time
from neuron import h
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
h("create bench_floor_s[100]")
h("forall nseg = 5")
pc = h.ParallelContext()
pc.set_gid2node(0, 0)
pc.cell(0, h.NetCon(h.bench_floor_s[0](0.5)._ref_v, None, sec=h.bench_floor_s[0]))
keep, n, out = h.List(), 200000, {}
target = h.Exp2Syn(0.5, sec=h.bench_floor_s[0])
for kind in ("Exp2Syn", "NetCon"):
    r0, t0 = rss(), time.perf_counter()
    for i in range(n):
        if kind == "Exp2Syn":
            keep.append(h.Exp2Syn(0.5, sec=h.bench_floor_s[i % 100]))
        else:
            keep.append(pc.gid_connect(0, target))
    out[kind] = {"bytes": (rss() - r0) / n, "us": (time.perf_counter() - t0) / n * 1e6}
print(json.dumps(out))
"""


def object_floor() -> dict:
    """NEURON's own cost of one Exp2Syn and one NetCon held in a hoc List (a fresh process, 200k of each)."""
    import subprocess

    proc = subprocess.run([sys.executable, "-c", _FLOOR], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fixture(dest: Path, cells: int, tstop: float) -> Path:
    from tests.fixtures.multicompartment import build_fixture

    n_exc = cells * 4 // 5
    net = build_fixture(dest / "fixture", n_exc=n_exc, n_inh=cells - n_exc, n_inputs=max(6, cells // 4),
                        tstop=tstop, reports=())
    return net / "config.simulation.json"


def _bio_450cells(dest: Path, tstop: float) -> Path:
    copy_corpus(dest, "bio_450cells", "bio_components")
    config = dest / "bio_450cells" / "config.simulation.json"
    data = json.loads(config.read_text())
    data["run"]["tstop"] = tstop
    data.pop("reports", None)
    config.write_text(json.dumps(data, indent=2))
    return config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, nargs="*", default=[1250, 2500], help="PING: cells per assembly")
    parser.add_argument("--fixture-cells", type=int, default=0, help="cells of the scaled multi-compartment fixture")
    parser.add_argument("--no-corpus", action="store_true", help="leave out bio_450cells")
    parser.add_argument("--tstop", type=float, default=500.0)
    parser.add_argument("--corpus-tstop", type=float, default=1000.0, help="bio_450cells (its inputs ramp up)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="profile instantiation of the real networks")
    parser.add_argument("--profile-top", type=int, default=15)
    parser.add_argument("--floor", action="store_true", help="also measure NEURON's per-object floor")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of all cases of a network; each phase's least time over the rounds is shown")
    parser.add_argument("--timeout", type=float, default=5400.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()

    from bmtk_scaling.config.derive import derive_config, write_config
    from bmtk_scaling.run.compare import compare_spikes
    from bmtk_scaling.run.launcher import run_config
    from bmtk_scaling.sonata.configs import load_config
    from bmtk_scaling.sonata.spikes import read_spikes
    from network_builders import ping_assembly

    rows, profiles = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        networks = []
        for cells in args.cells:
            net = ping_assembly(tmp / f"ping{cells}", n_assemblies=2, cells_per_assembly=cells, seed=args.seed,
                                tstop=args.tstop)
            networks.append((f"PING 2x{cells}", net.simulation_config, (STOCK, *LEAN, CN)))
        if args.fixture_cells:
            print(f"building the fixture with {args.fixture_cells} cells ...", flush=True)
            networks.append((f"fixture {args.fixture_cells}", _fixture(tmp, args.fixture_cells, args.tstop),
                             (STOCK, *LEAN)))
        if not args.no_corpus:
            if CORPUS.is_dir():
                networks.append(("bio_450cells", _bio_450cells(tmp, args.corpus_tstop), (STOCK, *LEAN)))
            else:
                print(f"bmtk's examples are not here ({CORPUS}): no bio_450cells")
        for label, config, cases in networks:
            base = load_config(config).data
            spikes, first, runs = {}, len(rows), {}
            for rnd in range(args.repeat):  # rounds of every case: each case sees the machine's load alike
                for name, switches in cases:
                    cfg = write_config(derive_config(base, output_dir=f"$BASE_DIR/out_{name.replace('+', '_')}",
                                                     **switches), config, config.parent / f"{name}.json",
                                       overwrite=True)
                    print(f"{label}: {name} (round {rnd + 1} of {args.repeat}) ...", flush=True)
                    result = run_config(cfg, 1, timeout=args.timeout)
                    found = read_spikes(Path(result.spikes_file))
                    spikes.setdefault(name, found)
                    r = {**result.per_rank[0], "load_average": os.getloadavg()[0], "spike_count": result.spike_count,
                         "notes": result.notes,
                         "same_as_first": compare_spikes(spikes[name], found).describe()}
                    runs.setdefault(name, []).append(r)
            for name, _ in cases:
                # the least time of each phase over the rounds: the case's cost with the least interference
                best = {k: min(run[k] for run in runs[name])
                        for k in ("build_s", "initialize_s", "simulate_s", "simulate_cpu_s", "peak_rss_mib")
                        if k in runs[name][0]}
                r = {**runs[name][0], **best}
                setup = r["build_s"] + r.get("initialize_s", 0.0)
                synapses = rows[first]["synapses"] if rows[first:] else r["netcons"]
                rows.append({
                    "network": label, "cells": r["cells"], "synapses": synapses, "case": name,
                    "instantiate_s": r["build_s"], "us_per_synapse": r["build_s"] / synapses * 1e6,
                    "peak_rss_mib": r["peak_rss_mib"],
                    "bytes_per_synapse": (r["peak_rss_mib"] - r["rss_before_build_mib"]) * 2**20 / synapses,
                    "simulate_s": r["simulate_s"], "simulate_cpu_s": r.get("simulate_cpu_s", float("nan")),
                    "simulate_s_rounds": [run["simulate_s"] for run in runs[name]],
                    "simulate_cpu_s_rounds": [run.get("simulate_cpu_s") for run in runs[name]],
                    "load_average": max(run["load_average"] for run in runs[name]),
                    "setup_plus_simulate_s": setup + r["simulate_s"],
                    "spikes": r["spike_count"], "synapse_objects": r["synapse_objects"],
                    "notes": [n for n in r["notes"] if "built by bionet" in n or "synapses:" in n],
                    "vs_stock": compare_spikes(spikes["stock"], spikes[name]).describe(),
                    "rounds_vs_first": sorted({run["same_as_first"] for run in runs[name]}),
                })
            stock = rows[first]
            for row in rows[first:]:
                row["instantiate_speedup"] = stock["instantiate_s"] / row["instantiate_s"]
                row["memory_ratio"] = stock["peak_rss_mib"] / row["peak_rss_mib"]
                row["end_to_end_speedup"] = stock["setup_plus_simulate_s"] / row["setup_plus_simulate_s"]
                row["simulate_speedup"] = stock["simulate_s"] / row["simulate_s"]
                row["simulate_cpu_speedup"] = stock["simulate_cpu_s"] / row["simulate_cpu_s"]
            if args.profile and not label.startswith("PING"):
                for name, _ in LEAN:
                    print(f"profiling {label} {name} instantiation ...", flush=True)
                    profiles[f"{label} {name}"] = profile_build(config.parent / f"{name}.json", args.profile_top)

    head = (f"{'network':<14}{'cells':>6}{'synapses':>11}  {'case':<10}{'inst s':>8}{'us/syn':>8}{'peak MiB':>10}"
            f"{'B/syn':>7}{'sim s':>8}{'cpu s':>8}{'e2e s':>8}{'inst x':>8}{'mem x':>7}{'sim x':>7}{'cpu x':>7}"
            f"{'e2e x':>7}{'load':>6}  spikes vs stock")
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        print(f"{r['network']:<14}{r['cells']:>6}{r['synapses']:>11,}  {r['case']:<10}{r['instantiate_s']:>8.1f}"
              f"{r['us_per_synapse']:>8.1f}{r['peak_rss_mib']:>10.0f}{r['bytes_per_synapse']:>7.0f}"
              f"{r['simulate_s']:>8.1f}{r['simulate_cpu_s']:>8.1f}{r['setup_plus_simulate_s']:>8.1f}"
              f"{r['instantiate_speedup']:>8.1f}{r['memory_ratio']:>7.1f}{r['simulate_speedup']:>7.2f}"
              f"{r['simulate_cpu_speedup']:>7.2f}{r['end_to_end_speedup']:>7.1f}{r['load_average']:>6.1f}"
              f"  {r['vs_stock']} ({r['spikes']} spikes)"
              + ("" if all(v.startswith("identical") for v in r["rounds_vs_first"]) else
                 f"; rounds differ: {r['rounds_vs_first']}"))
    print("inst: building cells and synapses; sim: simulate (wall), cpu: its CPU seconds (what the model costs, apart "
          "from waiting for a core on a shared machine); e2e: instantiate + initialise + simulate; x: stock / this; "
          "load: highest 1-minute load average after the case; with --repeat, each time is the least of the rounds")
    floor = object_floor() if args.floor else None
    if floor:
        print("NEURON's floor per object (held in a hoc List): " + ", ".join(
            f"{k} {v['bytes']:.0f} B, {v['us']:.1f} us" for k, v in floor.items()))
    for name, text in profiles.items():
        print(f"\n{name} instantiation profile (tottime):\n" + text)
    write_json(args.out / "instantiate.json", {"machine": machine(), "tstop_ms": args.tstop, "rows": rows,
                                               "profiles": profiles,
                                               "object_floor": floor})
    print(f"wrote {args.out / 'instantiate.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
