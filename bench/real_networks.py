"""Real networks: stock bmtk against the plugin (NEURON psolve, CoreNEURON), on 1 and 2 ranks, side by side.

Networks: the project's multi-compartment fixture (tests/fixtures/multicompartment), scaled up with
``--fixture-cells`` until a stock run takes about a minute, and bmtk's own examples bio_14cells and
bio_450cells where ``../shared/realnets/bmtk`` is present (copied to a temporary folder; the originals
are only read). Every (network, ranks) pair is one ``compare`` run: the three variants in turn, each a
fresh ``mpiexec``, spikes compared exactly with stock's. A variant refused before it runs (CoreNEURON
on a network whose mechanisms it cannot load) is listed with the reason. CoreNEURON's simulate is also
split into its own time loop (``loop s``, rank 0's "Solver Time") and the rest (``xfer s``: handing the
model over from NEURON, CoreNEURON's set-up, and handing it back). The load average is recorded before
and after each (network, ranks) pair: on a shared machine it says how far the seconds can be trusted.

    python bench/real_networks.py [--ranks 1 2] [--tstop 500] [--fixture-cells 300] [--skip-corpus]
                                  [--networks fixture bio_14cells bio_450cells]
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
sys.path.insert(0, str(HERE.parent / "tests" / "fixtures"))
from _common import CORPUS, copy_corpus, machine, write_json  # noqa: E402


def _corpus(dest: Path, tstop: float) -> dict[str, Path]:
    """Writable copies of bmtk's examples with ``tstop`` set; name -> simulation config."""
    configs = {}
    copy_corpus(dest, "bio_14cells", "bio_450cells", "bio_components")
    for name in ("bio_14cells", "bio_450cells"):
        config = dest / name / "config.simulation.json"
        data = json.loads(config.read_text())
        data["run"]["tstop"] = tstop
        config.write_text(json.dumps(data, indent=2))
        configs[name] = config
    return configs


def _fixture(dest: Path, cells: int, tstop: float) -> Path:
    from multicompartment import build_fixture

    n_exc = cells * 4 // 5
    net = build_fixture(dest / "fixture", n_exc=n_exc, n_inh=cells - n_exc, n_inputs=max(6, cells // 4),
                        tstop=tstop, reports=("soma",))
    return net / "config.simulation.json"


def _count_edges(config: Path) -> int:
    import h5py

    from bmtk_scaling.sonata.configs import network_files

    total = 0
    for ef in network_files(config).edges:
        with h5py.File(ef.edges_file) as h5:
            total += sum(pop["source_node_id"].shape[0] for pop in h5["edges"].values())
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--tstop", type=float, default=500.0, help="ms, for every network")
    parser.add_argument("--fixture-cells", type=int, default=300, help="cells of the scaled fixture (4:1 exc:inh)")
    parser.add_argument("--skip-corpus", action="store_true", help="only the fixture")
    parser.add_argument("--networks", nargs="+", help="only these (fixture, bio_14cells, bio_450cells)")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    from bmtk_scaling.run.compare import compare_engines

    rows, skipped = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        networks = {f"fixture {args.fixture_cells} cells": _fixture(tmp, args.fixture_cells, args.tstop)}
        if not args.skip_corpus:
            if CORPUS.is_dir():
                networks.update(_corpus(tmp, args.tstop))
            else:
                print(f"bmtk's examples are not here ({CORPUS}): the fixture only")
        if args.networks:
            networks = {k: v for k, v in networks.items() if k.split()[0] in args.networks}
        for name, config in networks.items():
            synapses = _count_edges(config)
            for ranks in args.ranks:
                print(f"{name} ({synapses:,} edges) on {ranks} rank(s):", flush=True)
                load_before = os.getloadavg()[0]
                report = compare_engines(config, ranks, out_dir=tmp / "compare" / f"{config.parent.name}_{ranks}",
                                         timeout=args.timeout, progress=lambda m: print("  " + m, flush=True))
                for v in report["variants"]:
                    s = v["summary"]
                    rows.append({"network": name, "edges": synapses, "ranks": ranks, "variant": v["label"],
                                 "build_s": s["build_s"], "setup_s": s["setup_s"], "simulate_s": s["simulate_s"],
                                 "total_s": s["total_s"], "peak_rss_max_mib": s["peak_rss_max_mib"],
                                 "spikes": s["spikes"], "total_speedup": v["speedup_total"],
                                 "simulate_speedup": v["speedup_simulate"], "memory_ratio": v["memory_ratio"],
                                 "imbalance": s.get("imbalance"), "notes": v.get("notes", []),
                                 "coreneuron_solver_s": s.get("coreneuron_solver_s"),
                                 "coreneuron_transfer_s": s.get("coreneuron_transfer_s"),
                                 "load_before": load_before, "load_after": os.getloadavg()[0],
                                 "identical_to_stock": v["spikes_vs_stock"]["identical"],
                                 "vs_stock": v["spikes_vs_stock"]})
                skipped += [{"network": name, "ranks": ranks, **s} for s in report["skipped"]]

    head = (f"{'network':<22}{'R':>2}  {'variant':<18}{'build s':>8}{'setup s':>8}{'sim s':>8}{'loop s':>7}"
            f"{'xfer s':>7}{'total s':>8}{'MiB':>6}{'spikes':>7}{'total x':>8}{'sim x':>7}{'mem x':>6}{'load':>10}"
            "  vs stock")
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        sim_x = f"{r['simulate_speedup']:.2f}" if r["simulate_speedup"] else "n/a"
        loop, xfer = (f"{r[k]:>7.2f}" if r[k] is not None else f"{'':>7}"
                      for k in ("coreneuron_solver_s", "coreneuron_transfer_s"))
        load = f"{r['load_before']:.1f}-{r['load_after']:.1f}"
        print(f"{r['network']:<22}{r['ranks']:>2}  {r['variant']:<18}{r['build_s']:>8.2f}{r['setup_s']:>8.2f}"
              f"{r['simulate_s']:>8.2f}{loop}{xfer}{r['total_s']:>8.2f}{r['peak_rss_max_mib']:>6.0f}{r['spikes']:>7}"
              f"{r['total_speedup']:>8.2f}{sim_x:>7}{r['memory_ratio']:>6.2f}{load:>10}  "
              f"{'identical' if r['identical_to_stock'] else 'DIFFER'}")
    for s in skipped:
        print(f"{s['network']:<22}{s['ranks']:>2}  {s['label']:<18}cannot run: {s['reason']}")
    print("slowest rank per phase; loop, xfer: CoreNEURON's time loop and the rest of its simulate (rank 0); "
          "total x, sim x: stock's time / this one's; mem x: this peak RSS / stock's; load: load average before-after")
    out = args.out / "real_networks.json"
    write_json(out, {"machine": machine(), "tstop_ms": args.tstop, "rows": rows, "skipped": skipped})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
