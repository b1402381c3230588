"""Build speed: the project's vectorised PING builder against bmtk's per-pair connection_rule.

Both build the same PING-Assembly network (same sizes, probabilities and weights) with bmtk's
NetworkBuilder and save it; each case runs in its own process, side by side in one invocation.
Then the project's builder alone builds the target size (default 2 x 5000 cells, ~9 M edges).

    python bench/build_speed.py [--compare-cells 1250] [--target-cells 5000] [--out bench/results]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, measure, write_json  # noqa: E402


def project_builder(cells: int, n_assemblies: int, seed: int) -> dict:
    from network_builders import ping_assembly

    with tempfile.TemporaryDirectory() as tmp:
        net = ping_assembly(Path(tmp) / "net", n_assemblies=n_assemblies, cells_per_assembly=cells, seed=seed)
        t = net.timings
        return {"edges": net.n_edges, "connect_s": t["draw"] + t["bmtk_build"], "save_s": t["bmtk_save"] + t["finish"]}


def bmtk_per_pair(cells: int, n_assemblies: int, seed: int, per_assembly: bool = True) -> dict:
    """The same network the way bmtk's documentation writes it: a rule called once per candidate pair.

    ``per_assembly=True`` makes it as cheap as such a rule gets: one add_edges per assembly and class
    (only pairs inside an assembly are visited) and a rule that touches nothing but node ids.
    ``per_assembly=False`` is the common way to write it: one add_edges per class over the whole
    network, the rule reading each node's assembly.
    """
    import time

    from bmtk.builder import NetworkBuilder

    from network_builders import ping_assembly_spec

    spec = ping_assembly_spec(n_assemblies=n_assemblies, cells_per_assembly=cells, seed=seed)
    rnd = random.Random(seed)
    weights = {e.name: e.syn_weight for e in spec.edges}
    t0 = time.perf_counter()
    net = NetworkBuilder("ping")
    for group in spec.groups:
        net.add_nodes(N=group.n, model_type="biophysical", model_template=f"hoc:{group.template}",
                      model_processing="attach_drive", **group.columns)

    def bernoulli(source, target, p):
        return 1 if source.node_id != target.node_id and rnd.random() < p else 0

    def bernoulli_same_assembly(source, target, p):
        if source["assembly"] != target["assembly"]:
            return 0
        return 1 if source.node_id != target.node_id and rnd.random() < p else 0

    selections = [{"assembly": a} for a in range(n_assemblies)] if per_assembly else [{}]
    for sel in selections:
        for src, trg in (("E", "I"), ("I", "E"), ("I", "I")):
            net.add_edges(source={"role": src, **sel}, target={"role": trg, **sel},
                          connection_rule=bernoulli if per_assembly else bernoulli_same_assembly,
                          connection_params={"p": 0.5},
                          model_template="exp2syn", dynamics_params="exc.json" if src == "E" else "inh.json",
                          syn_weight=weights[f"{src}_to_{trg}"], delay=0.5)
    net.build()
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        net.save(output_dir=tmp, compression=None)
    return {"edges": int(net.nedges), "connect_s": t1 - t0, "save_s": time.perf_counter() - t1}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=5000, help="cells per assembly")
    parser.add_argument("--assemblies", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()

    # Warm the mechanism cache so no case pays for compiling.
    from bmtk_scaling.mechanisms import compile_mechanisms, project_components_dir

    compile_mechanisms(project_components_dir() / "mechanisms" / "modfiles")

    rows = []
    kw = {"cells": args.cells, "n_assemblies": args.assemblies, "seed": args.seed}
    cases = (("per-pair, whole net", bmtk_per_pair, {"per_assembly": False}),
             ("per-pair, per assembly", bmtk_per_pair, {}),
             ("bmtk-scaling", project_builder, {}))
    for name, fn, extra in cases:
        print(f"running {name} on PING {args.assemblies} x {args.cells} ...", flush=True)
        rows.append({"case": name, **measure(fn, **kw, **extra)})
    for r in rows:
        r["connect_edges_per_s"] = r["edges"] / r["connect_s"]
        r["total_edges_per_s"] = r["edges"] / r["seconds"]
    ours = rows[-1]
    for r in rows:
        r["connect_speedup"] = ours["connect_edges_per_s"] / r["connect_edges_per_s"]
        r["total_speedup"] = ours["total_edges_per_s"] / r["total_edges_per_s"]

    print(f"\nPING {args.assemblies} x {args.cells}: 'connect' = drawing edges + NetworkBuilder.build, "
          "'total' = connect + save (+ components and configs for bmtk-scaling)")
    print(f"{'case':<24}{'edges':>11}{'connect s':>11}{'save s':>8}{'total s':>9}{'connect edges/s':>17}"
          f"{'total edges/s':>15}{'peak GiB':>10}{'ours/this connect':>19}{'ours/this total':>17}")
    for r in rows:
        print(f"{r['case']:<24}{r['edges']:>11,}{r['connect_s']:>11.1f}{r['save_s']:>8.1f}{r['seconds']:>9.1f}"
              f"{r['connect_edges_per_s']:>17,.0f}{r['total_edges_per_s']:>15,.0f}{r['peak_rss_mib'] / 1024:>10.2f}"
              f"{r['connect_speedup']:>18.1f}x{r['total_speedup']:>16.1f}x")
    print("\ngoal: >= 50x the per-pair rule's edges/s")
    ok = ours["seconds"] < 60 and ours["peak_rss_mib"] < 6 * 1024
    print(f"bmtk-scaling PING {args.assemblies} x {args.cells} built and saved in {ours['seconds']:.1f} s, "
          f"{ours['peak_rss_mib'] / 1024:.2f} GiB peak (goal < 60 s and < 6 GiB): {'met' if ok else 'NOT met'}")
    write_json(args.out / "build_speed.json", {"machine": machine(), "rows": rows, "target_met": ok})
    print(f"wrote {args.out / 'build_speed.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
