"""Spike-exchange options x emulated latency between two sites: PING-Assembly and N-Pairs on 2 ranks.

Each network runs on 2 ranks placed on two sites (the latency shim, docs/sites.md) under each
exchange option, at each one-way latency, all in one run of this script (each case a real mpiexec
launch). Prints one table: simulate time, time relative to NEURON's default exchange at the same
latency, and the cross-site collectives and messages the shim counted during the simulation; checks
that every case gave the spikes of the default exchange. Writes bench/results/exchange.json.

    python bench/exchange.py [--latency 0 1 10] [--ping-cells 40] [--pairs 20] [--tstop 300]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_json  # noqa: E402

OPTIONS = {  # label -> (engine, exchange switches)
    "default": ("neuron", {}),
    "step_wait off": ("neuron", {"step_wait": False}),
    "compress 100": ("neuron", {"spike_compress": 100}),
    "compress 100 + step_wait off": ("neuron", {"spike_compress": 100, "step_wait": False}),
    "multisend": ("neuron", {"multisend": True}),
    "bin queue": ("neuron", {"bin_queue": True}),
    "CoreNEURON default": ("coreneuron", {}),
    "CoreNEURON compress 100": ("coreneuron", {"spike_compress": 100}),
    "CoreNEURON multisend": ("coreneuron", {"multisend": True}),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, nargs="+", default=[0.0, 1.0, 10.0], help="one-way ms")
    parser.add_argument("--ping-cells", type=int, default=40, help="cells per PING assembly (2 assemblies)")
    parser.add_argument("--pairs", type=int, default=20, help="N-Pairs pairs")
    parser.add_argument("--tstop", type=float, default=300.0, help="PING ms (N-Pairs runs tstop / 5)")
    parser.add_argument("--options", nargs="+", default=list(OPTIONS), choices=list(OPTIONS))
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()

    from bmtk_scaling.config.derive import derive_config, write_config
    from bmtk_scaling.run.launcher import run_config
    from bmtk_scaling.sites import SiteModel
    from bmtk_scaling.sonata.configs import load_config
    from bmtk_scaling.sonata.spikes import read_spikes
    from network_builders import n_pairs, ping_assembly

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        nets = {f"PING 2x{args.ping_cells}": ping_assembly(Path(tmp) / "ping", n_assemblies=2, seed=2,
                                                           cells_per_assembly=args.ping_cells, tstop=args.tstop),
                f"N-Pairs {args.pairs}": n_pairs(Path(tmp) / "pairs", n_pairs=args.pairs, tstop=args.tstop / 5)}
        for net_name, net in nets.items():
            reference = None
            for label in args.options:
                engine, switches = OPTIONS[label]
                name = label.replace(" ", "_").replace("+", "")
                cfg = derive_config(load_config(net.simulation_config).data, output_dir=f"$BASE_DIR/out_{name}",
                                    engine=engine, **switches)
                config = write_config(cfg, net.simulation_config, net.path / f"{name}.json", overwrite=True)
                for latency in args.latency:
                    result = run_config(config, 2, sites=SiteModel((0, 1), latency))
                    spikes = read_spikes(Path(result.spikes_file))[["node_id", "timestamp"]].to_numpy()
                    reference = spikes if reference is None else reference
                    counts = result.per_rank[0]["sites"]
                    row = {"network": net_name, "option": label, "engine": engine, "exchange": result.exchange,
                           "latency_ms": latency, "simulate_s": result.summary["simulate_s"],
                           "spikes": len(spikes), "identical": bool(len(spikes) == len(reference)
                                                                    and (spikes == reference).all()),
                           **{k: counts[k] for k in ("cross_site_collectives", "cross_site_messages_sent",
                                                     "model_delay_s")}}
                    rows.append(row)
                    print(f"  {net_name:<12} {label:<30} {latency:>5g} ms  {row['simulate_s']:8.3f} s  "
                          f"{row['cross_site_collectives']:>6.0f} coll", flush=True)

    base = {(r["network"], r["latency_ms"]): r["simulate_s"] for r in rows if r["option"] == "default"}
    head = (f"{'network':<13}{'option':<31}{'latency ms':>11}{'simulate s':>11}{'vs default':>11}"
            f"{'collectives':>12}{'messages':>9}{'model s':>8}  spikes")
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        ref = base.get((r["network"], r["latency_ms"]))
        r["vs_default"] = r["simulate_s"] / ref if ref else None
        vs = f"{r['vs_default']:.2f}" if r["vs_default"] else "n/a"
        print(f"{r['network']:<13}{r['option']:<31}{r['latency_ms']:>11g}{r['simulate_s']:>11.3f}{vs:>11}"
              f"{r['cross_site_collectives']:>12.0f}{r['cross_site_messages_sent']:>9.0f}{r['model_delay_s']:>8.2f}"
              f"  {'identical' if r['identical'] else 'DIFFER'}")
    print("2 ranks on 2 sites; vs default: simulate time / NEURON default exchange's at the same latency; "
          "collectives, messages: cross-site, counted by the shim on rank 0 during the simulation; model s: "
          "the delay the latency model adds on rank 0; spikes: against the default exchange at 0 ms")
    write_json(args.out / "exchange.json", {"machine": machine(), "tstop_ms": args.tstop, "rows": rows})
    print(f"wrote {args.out / 'exchange.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
