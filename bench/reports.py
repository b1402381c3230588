"""The ECP (extracellular potential) report: stock bmtk against the plugin, and what the ECP itself costs.

bmtk's bio_450cells with its shipped ``config.simulation_ecp.json`` (a linear electrode of 86 channels,
per-cell contributions), in two parts, each on every rank count:

- **against stock** (``--stock-tstop``, short: stock bmtk's ECP takes 10-20 min per 100 ms on a 2-core
  machine): ``compare`` of the ECP config (stock BMTK-NEURON, NEURON psolve, CoreNEURON side by side, same
  tstop): set-up and simulate apart, the whole run's and simulate's speed-up over stock, spikes and the largest
  ECP difference from stock's (relative to each channel's largest value);
- **the ECP's share** (``--tstop``, long enough to fire): the plugin on NEURON psolve and CoreNEURON, the ECP
  config and the same config without the ECP report, one after the other: simulate with over simulate
  without, the time folding currents into the electrode matrix, the number of psolve chunks, and the ECP of
  NEURON psolve against CoreNEURON's.

Needs ``../shared/realnets/bmtk`` (copied to a temporary folder; the originals are only read).

    python bench/reports.py [--ranks 1 2] [--tstop 1000] [--stock-tstop 20] [--no-contributions]
                            [--ecp-buffer-mib MIB]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import CORPUS, copy_corpus, machine, write_json  # noqa: E402

ENGINES = (("neuron_psolve", "NEURON psolve", {"engine": "neuron", "neuron_loop": "psolve"}),
           ("coreneuron", "CoreNEURON", {"engine": "coreneuron", "neuron_loop": "psolve"}))


def _configs(dest: Path, tstop: float, contributions: bool = True) -> dict[str, Path]:
    shipped = dest / "bio_450cells" / "config.simulation_ecp.json"
    data = json.loads(shipped.read_text())
    data["run"]["tstop"] = tstop
    if not contributions:
        data["reports"] = {k: {x: y for x, y in v.items() if x != "contributions_dir"}
                           for k, v in data["reports"].items()}
    config = shipped.with_name(f"config.ecp_{tstop:g}{'' if contributions else '_sum_only'}.json")
    config.write_text(json.dumps(data, indent=2))
    plain = dict(data, reports={k: v for k, v in data["reports"].items() if v.get("module") != "extracellular"})
    without = shipped.with_name(f"config.no_ecp_{tstop:g}.json")
    without.write_text(json.dumps(plain, indent=2))
    return {"with ECP": config, "without ECP": without}


def _ecp_difference(reference: Path, other: Path) -> float | None:
    import h5py
    import numpy as np

    if not (reference / "ecp.h5").is_file() or not (other / "ecp.h5").is_file():
        return None
    with h5py.File(reference / "ecp.h5") as a, h5py.File(other / "ecp.h5") as b:
        x, y = a["ecp/data"][()], b["ecp/data"][()]
    scale = np.abs(x).max(axis=0)
    scale[scale == 0] = 1.0
    return float((np.abs(x - y) / scale).max())


def _slowest(result: dict, key: str) -> float:
    return max((r.get(key) or 0.0) for r in result["per_rank"])


def _chunks(output_dir: Path) -> int | None:
    log = output_dir / "log.txt"
    found = re.search(r"ECP: (\d+) psolve chunk", log.read_text(errors="replace")) if log.is_file() else None
    return int(found.group(1)) if found else None


def against_stock(tmp: Path, tstop: float, ranks_list: list[int], timeout: float) -> list[dict]:
    from bmtk_scaling.run.compare import compare_engines

    config = _configs(tmp, tstop)["with ECP"]
    rows = []
    for ranks in ranks_list:
        print(f"bio_450cells with its ECP, {tstop:g} ms, stock against the plugin, {ranks} rank(s):", flush=True)
        report = compare_engines(config, ranks, out_dir=tmp / "compare" / f"stock_{ranks}", timeout=timeout,
                                 progress=lambda m: print("  " + m, flush=True))
        variants = {v["variant"]: v for v in report["variants"]}
        stock_dir = Path(variants["bmtk_neuron"]["output_dir"])
        for v in report["variants"]:
            s = v["summary"]
            rows.append({"ranks": ranks, "tstop_ms": tstop, "variant": v["label"],
                         "setup_s": s["load_s"] + s["build_s"] + s["setup_s"], "simulate_s": s["simulate_s"],
                         "total_s": s["total_s"], "peak_rss_max_mib": s["peak_rss_max_mib"], "spikes": s["spikes"],
                         "total_speedup": v["speedup_total"], "simulate_speedup": v["speedup_simulate"],
                         "spikes_identical": v["spikes_vs_stock"]["identical"],
                         "ecp_max_rel_diff": _ecp_difference(stock_dir, Path(v["output_dir"]))})
        rows += [{"ranks": ranks, "tstop_ms": tstop, "variant": s["label"], "skipped": s["reason"]}
                 for s in report["skipped"] + report["failed"]]
    return rows


def ecp_share(tmp: Path, tstop: float, ranks_list: list[int], timeout: float, contributions: bool = True,
              buffer_mib: int | None = None) -> list[dict]:
    from bmtk_scaling.config.derive import derive_config, write_config
    from bmtk_scaling.errors import BmtkScalingError
    from bmtk_scaling.run.launcher import run_config
    from bmtk_scaling.run.result import result_to_dict
    from bmtk_scaling.sonata.configs import load_config

    configs = _configs(tmp, tstop, contributions)
    rows = []
    for ranks in ranks_list:
        outputs = {}
        for key, label, switches in ENGINES:
            runs = {}
            for case, config in configs.items():
                name = f"{key}_{case.replace(' ', '_')}_{ranks}"
                more = {"ecp_buffer_mib": buffer_mib} if buffer_mib else {}
                derived = write_config(derive_config(load_config(config).data, **switches, **more), config,
                                       tmp / "share" / f"{name}.json", output_dir=f"./{name}")
                print(f"bio_450cells {case}, {tstop:g} ms, {label}, {ranks} rank(s) ...", flush=True)
                try:
                    runs[case] = result_to_dict(run_config(derived, ranks, timeout=timeout))
                except BmtkScalingError as err:
                    print(f"  failed: {err}", flush=True)
                    rows.append({"ranks": ranks, "tstop_ms": tstop, "variant": label, "case": case,
                                 "skipped": str(err)})
            if len(runs) < 2:
                continue
            w, wo = runs["with ECP"], runs["without ECP"]
            out_dir = Path(w["output_dir"])
            outputs[key] = out_dir
            rows.append({
                "ranks": ranks, "tstop_ms": tstop, "variant": label,
                "setup_s": w["summary"]["load_s"] + w["summary"]["build_s"] + w["summary"]["setup_s"],
                "simulate_s": w["summary"]["simulate_s"], "simulate_without_ecp_s": wo["summary"]["simulate_s"],
                "ecp_share": w["summary"]["simulate_s"] / wo["summary"]["simulate_s"] - 1.0,
                "ecp_fold_s": _slowest(w, "ecp_fold_s"), "ecp_write_s": _slowest(w, "ecp_write_s"),
                "contributions": contributions, "write_output_s": _slowest(w, "write_output_s"),
                "chunks": _chunks(out_dir), "ecp_buffer_mib": buffer_mib, "total_s": w["summary"]["total_s"],
                "peak_rss_max_mib": w["summary"]["peak_rss_max_mib"],
                "peak_rss_max_without_ecp_mib": wo["summary"]["peak_rss_max_mib"],
                "spikes": w["summary"]["spikes"], "spikes_without_ecp": wo["summary"]["spikes"],
            })
        if len(outputs) == 2:
            diff = _ecp_difference(outputs["neuron_psolve"], outputs["coreneuron"])
            for row in rows:
                if row["ranks"] == ranks and row.get("variant") == "CoreNEURON" and "skipped" not in row:
                    row["ecp_vs_neuron_psolve"] = diff
    return rows


def _print(stock_rows: list[dict], share_rows: list[dict]) -> None:
    if stock_rows:
        head = (f"{'R':>2}  {'variant':<18}{'tstop':>6}{'setup s':>9}{'sim s':>9}{'total s':>9}{'MiB':>6}"
                f"{'spikes':>7}{'total x':>8}{'sim x':>7}  {'ECP vs stock':>12}  spikes")
        print("\n" + head + "\n" + "-" * len(head))
        for r in stock_rows:
            if "skipped" in r:
                print(f"{r['ranks']:>2}  {r['variant']:<18}cannot run: {r['skipped']}")
                continue
            diff = f"{r['ecp_max_rel_diff']:.1e}" if r["ecp_max_rel_diff"] is not None else "n/a"
            print(f"{r['ranks']:>2}  {r['variant']:<18}{r['tstop_ms']:>6g}{r['setup_s']:>9.2f}{r['simulate_s']:>9.2f}"
                  f"{r['total_s']:>9.2f}{r['peak_rss_max_mib']:>6.0f}{r['spikes']:>7}{r['total_speedup']:>8.2f}"
                  f"{r['simulate_speedup']:>7.2f}  {diff:>12}  {'identical' if r['spikes_identical'] else 'DIFFER'}")
        print("setup: load + build + setup of the slowest rank; total x, sim x: stock's time / this one's (both with "
              "the ECP); ECP vs stock: largest |difference| over each channel's largest |value|")
    if share_rows:
        head = (f"{'R':>2}  {'variant':<15}{'tstop':>6}{'setup s':>9}{'sim s':>9}{'no ECP':>9}{'ECP +%':>8}"
                f"{'fold s':>8}{'blocks':>7}{'chunks':>7}{'write s':>8}{'MiB':>6}{'no ECP':>7}{'spikes':>7}"
                f"  {'vs psolve':>9}")
        print("\n" + head + "\n" + "-" * len(head))
        for r in share_rows:
            if "skipped" in r:
                print(f"{r['ranks']:>2}  {r['variant']:<15}({r['case']}) cannot run: {r['skipped']}")
                continue
            diff = f"{r['ecp_vs_neuron_psolve']:.1e}" if r.get("ecp_vs_neuron_psolve") is not None else ""
            print(f"{r['ranks']:>2}  {r['variant']:<15}{r['tstop_ms']:>6g}{r['setup_s']:>9.2f}{r['simulate_s']:>9.2f}"
                  f"{r['simulate_without_ecp_s']:>9.2f}{100 * r['ecp_share']:>8.1f}{r['ecp_fold_s']:>8.2f}"
                  f"{r.get('ecp_write_s') or 0:>7.2f}"
                  f"{r['chunks'] or 0:>7}{r['write_output_s']:>8.2f}{r['peak_rss_max_mib']:>6.0f}"
                  f"{r['peak_rss_max_without_ecp_mib']:>7.0f}{r['spikes']:>4}/{r['spikes_without_ecp']:<3}"
                  f"{diff:>11}")
        print("sim s / no ECP: simulate of the slowest rank with the ECP report / the same config without it; ECP +%: "
              "their ratio - 1; fold: folding currents into the electrode matrix and handing the rows to bmtk's "
              "writer (inside simulate); blocks: of fold, the block buffers and the blocks written (the sum by bmtk, "
              "the contribution files by the plugin); chunks: psolve calls; write: the modules' finalize (ecp.h5, the "
              "contribution files' last rows); MiB: peak RSS of the largest rank with / without; spikes: with / "
              "without the ECP; vs psolve: largest ECP difference from NEURON psolve's, relative to each channel's "
              "largest value")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--tstop", type=float, default=1000.0, help="ms, the ECP's share (plugin only); 0: skip")
    parser.add_argument("--stock-tstop", type=float, default=20.0, help="ms, against stock bmtk; 0: skip")
    parser.add_argument("--no-contributions", action="store_true",
                        help="the ECP's share without the per-cell contribution files (ecp.h5 only)")
    parser.add_argument("--ecp-buffer-mib", type=int, default=None,
                        help="the runs' ecp_buffer_mib (default: the setting's): fewer, longer psolve chunks")
    parser.add_argument("--timeout", type=float, default=7200.0)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if not CORPUS.is_dir():
        print(f"bmtk's examples are not here ({CORPUS}): nothing to measure")
        return 2
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        copy_corpus(tmp, "bio_450cells", "bio_components")
        stock_rows = against_stock(tmp, args.stock_tstop, args.ranks, args.timeout) if args.stock_tstop > 0 else []
        share_rows = (ecp_share(tmp, args.tstop, args.ranks, args.timeout, not args.no_contributions,
                                args.ecp_buffer_mib) if args.tstop > 0 else [])
    load_after = os.getloadavg()
    _print(stock_rows, share_rows)
    print(f"load average (1, 5, 15 min) before {load_before}, after {load_after}")
    out = args.out / (("reports_sum_only" if args.no_contributions else "reports")
                      + (f"_buffer{args.ecp_buffer_mib}" if args.ecp_buffer_mib else "") + ".json")
    write_json(out, {"machine": machine(), "tstop_ms": args.tstop, "stock_tstop_ms": args.stock_tstop,
                     "load_average_before": load_before, "load_average_after": load_after,
                     "against_stock": stock_rows, "ecp_share": share_rows})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
