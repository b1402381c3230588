"""The ECP (extracellular potential) report: stock bmtk against the plugin, and what the ECP itself costs.

bmtk's bio_450cells with its shipped ``config.simulation_ecp.json`` (a linear electrode of 86 channels,
per-cell contributions; ``tstop`` set to ``--tstop``), and the same config without the ECP report, each
through ``compare`` (stock BMTK-NEURON, NEURON psolve, CoreNEURON; a variant refused before it runs is
listed with the reason) on every rank count. Per variant: set-up (load + build + setup) and simulate
apart, the ECP's share of simulate (with ECP against without, same engine, same ranks), the time the
plugin spends folding currents into the electrode matrix, spikes against stock's and the largest ECP
difference from stock's (relative to each channel's largest value). Needs ``../shared/realnets/bmtk``
(copied to a temporary folder; the originals are only read).

    python bench/reports.py [--ranks 1 2] [--tstop 1000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import CORPUS, copy_corpus, machine, write_json  # noqa: E402


def _configs(dest: Path, tstop: float) -> dict[str, Path]:
    copy_corpus(dest, "bio_450cells", "bio_components")
    config = dest / "bio_450cells" / "config.simulation_ecp.json"
    data = json.loads(config.read_text())
    data["run"]["tstop"] = tstop
    config.write_text(json.dumps(data, indent=2))
    plain = dict(data, reports={k: v for k, v in data["reports"].items() if v.get("module") != "extracellular"})
    plain["output"] = dict(data["output"], output_dir="$BASE_DIR/output_no_ecp")
    without = config.with_name("config.simulation_no_ecp.json")
    without.write_text(json.dumps(plain, indent=2))
    return {"with ECP": config, "without ECP": without}


def _ecp_difference(stock: Path, other: Path) -> float | None:
    import h5py
    import numpy as np

    if not (stock / "ecp.h5").is_file() or not (other / "ecp.h5").is_file():
        return None
    with h5py.File(stock / "ecp.h5") as a, h5py.File(other / "ecp.h5") as b:
        x, y = a["ecp/data"][()], b["ecp/data"][()]
    scale = np.abs(x).max(axis=0)
    scale[scale == 0] = 1.0
    return float((np.abs(x - y) / scale).max())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--tstop", type=float, default=1000.0, help="ms")
    parser.add_argument("--timeout", type=float, default=7200.0)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if not CORPUS.is_dir():
        print(f"bmtk's examples are not here ({CORPUS}): nothing to measure")
        return 2

    from bmtk_scaling.run.compare import compare_engines

    rows, skipped = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        configs = _configs(tmp, args.tstop)
        for ranks in args.ranks:
            runs = {}
            for case, config in configs.items():
                print(f"bio_450cells {case}, {ranks} rank(s):", flush=True)
                out = tmp / "compare" / f"{case.replace(' ', '_')}_{ranks}"
                report = compare_engines(config, ranks, out_dir=out, timeout=args.timeout,
                                         progress=lambda m: print("  " + m, flush=True))
                runs[case] = {v["variant"]: v for v in report["variants"]}
                skipped += [{"case": case, "ranks": ranks, **s} for s in report["skipped"]]
            for key, v in runs["with ECP"].items():
                s, plain = v["summary"], runs["without ECP"].get(key)
                stock_dir = Path(runs["with ECP"]["bmtk_neuron"]["spikes_file"]).parent
                fold = max((r.get("ecp_fold_s") or 0.0) for r in v["per_rank"])
                rows.append({
                    "ranks": ranks, "variant": v["label"],
                    "setup_s": s["load_s"] + s["build_s"] + s["setup_s"], "simulate_s": s["simulate_s"],
                    "total_s": s["total_s"],
                    "simulate_without_ecp_s": plain["summary"]["simulate_s"] if plain else None,
                    "ecp_share": (s["simulate_s"] / plain["summary"]["simulate_s"] - 1.0) if plain else None,
                    "ecp_fold_s": fold, "write_output_s": max(r.get("write_output_s") or 0.0 for r in v["per_rank"]),
                    "peak_rss_max_mib": s["peak_rss_max_mib"], "spikes": s["spikes"],
                    "total_speedup": v["speedup_total"], "simulate_speedup": v["speedup_simulate"],
                    "spikes_identical": v["spikes_vs_stock"]["identical"],
                    "spikes_identical_without_ecp": plain["spikes_vs_stock"]["identical"] if plain else None,
                    "ecp_max_rel_diff": _ecp_difference(stock_dir, Path(v["spikes_file"]).parent),
                })

    head = (f"{'R':>2}  {'variant':<18}{'setup s':>8}{'sim s':>8}{'sim s no ECP':>13}{'ECP +%':>8}{'fold s':>8}"
            f"{'total s':>8}{'MiB':>6}{'spikes':>7}{'total x':>8}{'sim x':>7}  {'ECP vs stock':>12}  spikes")
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        share = f"{100 * r['ecp_share']:.1f}" if r["ecp_share"] is not None else "n/a"
        diff = f"{r['ecp_max_rel_diff']:.1e}" if r["ecp_max_rel_diff"] is not None else "n/a"
        plain = f"{r['simulate_without_ecp_s']:.2f}" if r["simulate_without_ecp_s"] is not None else "n/a"
        print(f"{r['ranks']:>2}  {r['variant']:<18}{r['setup_s']:>8.2f}{r['simulate_s']:>8.2f}{plain:>13}{share:>8}"
              f"{r['ecp_fold_s']:>8.2f}{r['total_s']:>8.2f}{r['peak_rss_max_mib']:>6.0f}{r['spikes']:>7}"
              f"{r['total_speedup']:>8.2f}{r['simulate_speedup']:>7.2f}  {diff:>12}  "
              f"{'identical' if r['spikes_identical'] else 'DIFFER'}")
    for s in skipped:
        print(f"{s['ranks']:>2}  {s['label']:<18}({s['case']}) cannot run: {s['reason']}")
    print("setup: load + build + setup of the slowest rank; ECP +%: simulate with the ECP over simulate without, same "
          "variant and ranks; fold: the plugin's time folding currents into the electrode matrix (inside simulate); "
          "total x, sim x: stock's time / this one's (both with the ECP); ECP vs stock: largest |difference| over "
          "each channel's largest |value|")
    out = args.out / "reports.json"
    write_json(out, {"machine": machine(), "tstop_ms": args.tstop, "rows": rows, "skipped": skipped})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
