"""Partition strategies: time and quality on PING 2 x 5000 (~9 M edges) and N-K-Cliques 50 x 100.

For each network (built into a temporary folder) and each rank count, every strategy runs on the
same graph: seconds, synapses cut, communication volume, imbalance (max/mean cost) and the smallest
cross-rank delay. A second table shows why the volume strategy is a portfolio: the directed volume
each METIS mode reaches alone, and after the refinement pass. Each network runs in its own process.

    python bench/partition.py [--ping-cells 5000] [--clique-n 50 --clique-k 100] [--ranks 2 4] [--out bench/results]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, measure, write_json  # noqa: E402


def run_network(kind: str, params: dict, ranks: list[int], seed: int) -> dict:
    import pymetis

    import network_builders
    from bmtk_scaling.cli.partition import compare_strategies
    from bmtk_scaling.partition.metrics import evaluate
    from bmtk_scaling.partition.strategies import metis_mode, metis_volume
    from bmtk_scaling.sonata.configs import network_files
    from bmtk_scaling.sonata.fingerprint import network_fingerprint
    from bmtk_scaling.sonata.graph import read_graph

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        built = network_builders.BUILDERS[kind].build(Path(tmp) / "net", **params)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        graph = read_graph(built.simulation_config)
        read_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        network_fingerprint(network_files(built.simulation_config))
        fingerprint_s = time.perf_counter() - t0
        rows, modes = [], []
        for n_ranks in ranks:
            for row in compare_strategies(graph, n_ranks, seed):
                rows.append({"ranks": n_ranks, **row})
            mode_row = {"ranks": n_ranks}
            for label, obj, rec in (("kway_vol", pymetis.ObjType.VOL, False), ("kway_cut", pymetis.ObjType.CUT, False),
                                    ("recursive_cut", pymetis.ObjType.CUT, True)):
                t0 = time.perf_counter()
                part = metis_mode(graph, n_ranks, seed, "synapses", obj, recursive=rec)
                mode_row[label] = evaluate(graph, part, n_ranks).communication_volume
                mode_row[f"{label}_s"] = time.perf_counter() - t0
            unrefined = metis_volume(graph, n_ranks, seed=seed, refine=False)
            mode_row["best_unrefined"] = evaluate(graph, unrefined, n_ranks).communication_volume
            mode_row["refined"] = next(r["communication_volume"] for r in rows
                                       if r["ranks"] == n_ranks and r["strategy"] == "metis_volume")
            modes.append(mode_row)
        return {"network": f"{kind} {params}", "cells": graph.n_vertices, "synapses": graph.n_synapses,
                "build_s": build_s, "read_s": read_s, "fingerprint_s": fingerprint_s,
                "rows": rows, "volume_modes": modes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ping-cells", type=int, default=5000, help="cells per PING assembly (2 assemblies)")
    parser.add_argument("--clique-n", type=int, default=50)
    parser.add_argument("--clique-k", type=int, default=100)
    parser.add_argument("--ranks", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()

    from bmtk_scaling.mechanisms import compile_mechanisms, project_components_dir

    compile_mechanisms(project_components_dir() / "mechanisms" / "modfiles")  # no case pays for compiling

    cases = [("ping", {"n_assemblies": 2, "cells_per_assembly": args.ping_cells, "seed": 1}, "PING 2 x"
              f" {args.ping_cells}"),
             ("cliques", {"n_cliques": args.clique_n, "clique_size": args.clique_k}, f"N-K-Cliques {args.clique_n} x"
              f" {args.clique_k}")]
    results = []
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, Python {info['python']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    for kind, params, label in cases:
        print(f"\nrunning {label} ...", flush=True)
        res = measure(run_network, kind=kind, params=params, ranks=args.ranks, seed=args.seed)
        res["label"] = label
        results.append(res)
        print(f"{label}: {res['cells']:,} cells, {res['synapses']:,} synapses; read {res['read_s']:.1f} s, "
              f"fingerprint {res['fingerprint_s']:.1f} s, peak {res['peak_rss_mib'] / 1024:.2f} GiB")
        print(f"{'R':>2}  {'strategy':<14}{'seconds':>9}{'synapses cut':>14}{'cut %':>8}{'volume':>10}"
              f"{'imbalance':>11}{'min delay':>11}")
        for r in res["rows"]:
            delay = "-" if r["min_cross_rank_delay"] is None else f"{r['min_cross_rank_delay']:g} ms"
            print(f"{r['ranks']:>2}  {r['strategy']:<14}{r['seconds']:>9.2f}{r['synapses_cut']:>14,}"
                  f"{100 * r['cut_fraction']:>7.2f}%{r['communication_volume']:>10,}{r['imbalance']:>11.3f}{delay:>11}")

    print("\nvolume strategy, directed communication volume by METIS mode (seconds):")
    print(f"{'network':<22}{'R':>3}{'k-way vol':>18}{'k-way cut':>18}{'recursive cut':>18}{'best':>8}{'refined':>9}")
    for res in results:
        for m in res["volume_modes"]:
            cells = "".join(f"{m[k]:>9,} ({m[k + '_s']:4.1f}s)" for k in ("kway_vol", "kway_cut", "recursive_cut"))
            print(f"{res['label']:<22}{m['ranks']:>3}{cells}{m['best_unrefined']:>8,}{m['refined']:>9,}")

    ping = results[0]["rows"]

    def pick(strategy, n_ranks):
        return next(r for r in ping if r["strategy"] == strategy and r["ranks"] == n_ranks)

    checks = {}
    if 2 in args.ranks:
        met, rnd = pick("metis", 2), pick("random", 2)
        checks["metis_cuts_far_fewer_than_random_ping_r2"] = met["synapses_cut"] * 100 < rnd["synapses_cut"]
        print(f"\nPING R=2: METIS cuts {met['synapses_cut']:,} synapses, random {rnd['synapses_cut']:,} "
              f"({rnd['synapses_cut'] / max(met['synapses_cut'], 1):,.0f}x): "
              f"{'as expected' if checks['metis_cuts_far_fewer_than_random_ping_r2'] else 'NOT as expected'}")
    slowest = max(r["seconds"] for r in ping if r["strategy"] == "metis")
    checks["metis_under_30_s_on_ping"] = slowest < 30
    print(f"METIS on {results[0]['synapses']:,} synapses: {slowest:.1f} s at most (goal < 30 s): "
          f"{'met' if checks['metis_under_30_s_on_ping'] else 'NOT met'}")
    write_json(args.out / "partition.json", {"machine": info, "results": results, "checks": checks})
    print(f"wrote {args.out / 'partition.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
