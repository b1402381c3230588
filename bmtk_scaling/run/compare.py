"""Run one network on stock BMTK-NEURON, on NEURON with psolve and on CoreNEURON, and compare.

Each variant is a config derived from the user's, run through the runner on the same number of ranks:
stock bionet as shipped (its own placement, edges and ``h.run``), and the user's settings on NEURON
with psolve and on CoreNEURON. The report says how much faster and leaner each engine is than stock
bmtk, and whether the spikes are identical (if not: how many differ and when they first diverge).
"""

from __future__ import annotations

import csv
import io
import json
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from bmtk_scaling.atomic import atomic_directory, claim, write_text_atomic
from bmtk_scaling.config.derive import derive_config, with_settings, write_config
from bmtk_scaling.config.settings import STOCK
from bmtk_scaling.errors import BmtkScalingError
from bmtk_scaling.run.launcher import run_config
from bmtk_scaling.run.preflight import check_timeout, plan_run
from bmtk_scaling.run.result import result_to_dict
from bmtk_scaling.sonata.configs import load_config, protected_inputs
from bmtk_scaling.sonata.spikes import read_spikes

COMPARE_KIND = "engine comparison"

# (key, label, settings changed from the user's config; None: stock bionet, without the plugin's settings)
VARIANTS = (
    ("bmtk_neuron", "stock BMTK-NEURON", None),
    ("neuron_psolve", "NEURON psolve", {"engine": "neuron", "neuron_loop": "psolve"}),
    ("coreneuron", "CoreNEURON", {"engine": "coreneuron", "neuron_loop": "psolve"}),
)


@dataclass(frozen=True)
class SpikeDiff:
    identical: bool
    n_reference: int
    n_other: int
    n_differ: int  # spikes present in one train and not the other
    first_divergence_ms: float | None

    def describe(self) -> str:
        if self.identical:
            return "identical"
        return f"{self.n_differ} differ, first at {self.first_divergence_ms:.3f} ms"


def compare_spikes(reference: pd.DataFrame, other: pd.DataFrame) -> SpikeDiff:
    """Exact comparison of two spike trains as sorted (time, node id) sequences."""
    a = reference.sort_values(["timestamp", "node_id"])[["timestamp", "node_id"]].to_numpy()
    b = other.sort_values(["timestamp", "node_id"])[["timestamp", "node_id"]].to_numpy()
    if a.shape == b.shape and np.array_equal(a, b):
        return SpikeDiff(True, len(a), len(b), 0, None)
    set_a = set(map(tuple, a.tolist()))
    set_b = set(map(tuple, b.tolist()))
    n = min(len(a), len(b))
    mismatch = np.nonzero(np.any(a[:n] != b[:n], axis=1))[0]
    if mismatch.size:
        first = float(min(a[mismatch[0], 0], b[mismatch[0], 0]))
    else:  # one train is a prefix of the other
        first = float((a if len(a) > n else b)[n, 0])
    return SpikeDiff(False, len(a), len(b), len(set_a ^ set_b), first)


def compare_engines(config: Path, ranks: int, out_dir: Path | None = None, overwrite: bool = False,
                    timeout: float = 3600.0, progress=print) -> dict:
    """Run the three variants of ``config`` on ``ranks`` ranks; write JSON, CSV and a PNG into ``out_dir``."""
    config = Path(config).absolute()
    check_timeout(timeout)
    out_dir = (Path(out_dir) if out_dir else config.parent / f"compare_{ranks}ranks").absolute()
    protected = protected_inputs(load_config(config))
    claim(out_dir, COMPARE_KIND, folder=True, overwrite=overwrite, protected=protected)  # before any check or build
    # the user's config, checked before any variant is written or run (each variant's memory when it runs)
    plan_run(config, ranks, check_output=False, check_memory=False)
    base = load_config(config).data
    rows, spikes, skipped = [], {}, []
    with atomic_directory(out_dir, overwrite=overwrite, kind=COMPARE_KIND, protected=protected) as tmp:

        def final(path: str) -> str:  # the folder is renamed into place at the end: name paths as they will be
            return str(out_dir / Path(path).relative_to(tmp))

        for key, label, switches in VARIANTS:
            new = with_settings(base, STOCK) if switches is None else derive_config(base, **switches)
            cfg = write_config(new, config, tmp / f"{key}.json", output_dir=f"./{key}")
            progress(f"running {label} on {ranks} rank(s) ...")
            try:
                result = run_config(cfg, ranks, timeout=timeout)
            except BmtkScalingError as err:  # refused before it ran: say why, compare the others
                if switches is None:
                    raise
                skipped.append({"variant": key, "label": label, "reason": str(err)})
                progress(f"  {label} cannot run: {err}")
                continue
            spikes[key] = read_spikes(Path(result.spikes_file))
            row = {"variant": key, "label": label, **result_to_dict(result)}
            row["config"], row["spikes_file"] = final(row["config"]), final(row["spikes_file"])
            rows.append(row)

        stock = rows[0]["summary"]
        for row in rows:
            s = row["summary"]
            row["speedup_simulate"] = stock["simulate_s"] / s["simulate_s"] if s["simulate_s"] > 0 else None
            row["speedup_total"] = stock["total_s"] / s["total_s"]
            row["memory_ratio"] = s["peak_rss_max_mib"] / stock["peak_rss_max_mib"]
            row["spikes_vs_stock"] = compare_spikes(spikes["bmtk_neuron"], spikes[row["variant"]]).__dict__

        report = {"config": str(config), "ranks": ranks, "machine": _machine(), "variants": rows, "skipped": skipped}
        write_text_atomic(tmp / "compare.json", json.dumps(report, indent=2, default=float) + "\n")
        write_text_atomic(tmp / "compare.csv", _csv(rows))
        _plot(rows, spikes, tmp / "compare.png", f"{config.parent.name}/{config.name} on {ranks} rank(s)")
    report["out_dir"] = str(out_dir)
    return report


def format_table(report: dict) -> str:
    head = (f"{'engine':<20}{'build s':>9}{'setup s':>9}{'simulate s':>12}{'total s':>9}{'RSS max MiB':>13}"
            f"{'RSS sum MiB':>13}{'spikes':>8}{'balance':>9}{'sim x':>7}{'total x':>8}{'mem x':>7}  spikes vs stock")
    lines = [head, "-" * len(head)]
    for row in report["variants"]:
        s = row["summary"]
        bal = f"{s['load_balance']:.2f}" if s["load_balance"] is not None else "n/a"
        diff = row["spikes_vs_stock"]
        same = "identical" if diff["identical"] else (
            f"{diff['n_differ']} differ, first at {diff['first_divergence_ms']:.3f} ms")
        lines.append(f"{row['label']:<20}{s['build_s']:>9.2f}{s['setup_s']:>9.3f}{s['simulate_s']:>12.2f}"
                     f"{s['total_s']:>9.2f}{s['peak_rss_max_mib']:>13.0f}{s['peak_rss_sum_mib']:>13.0f}"
                     f"{s['spikes']:>8d}{bal:>9}{row['speedup_simulate']:>7.2f}{row['speedup_total']:>8.2f}"
                     f"{row['memory_ratio']:>7.2f}  {same}")
    for row in report.get("skipped", []):
        lines.append(f"{row['label']:<20}cannot run here: {row['reason']}")
    lines.append("sim x, total x: stock's simulate / total time over this one's; mem x: this peak RSS (max over "
                 "ranks) / stock's; balance: mean/max NEURON compute time over ranks (CoreNEURON reports none)")
    return "\n".join(lines)


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    fields = ["variant", "label", "ranks", "build_s", "setup_s", "simulate_s", "total_s", "wall_s",
              "peak_rss_max_mib", "peak_rss_sum_mib", "spikes", "load_balance", "wait_max_s", "speedup_simulate",
              "speedup_total", "memory_ratio", "identical_to_stock", "n_differ", "first_divergence_ms"]
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for row in rows:
        s, d = row["summary"], row["spikes_vs_stock"]
        writer.writerow({"variant": row["variant"], "label": row["label"], **{k: s.get(k) for k in fields if k in s},
                         "speedup_simulate": row["speedup_simulate"], "speedup_total": row["speedup_total"],
                         "memory_ratio": row["memory_ratio"], "identical_to_stock": d["identical"],
                         "n_differ": d["n_differ"], "first_divergence_ms": d["first_divergence_ms"]})
    return buf.getvalue()


def _plot(rows: list[dict], spikes: dict[str, pd.DataFrame], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), gridspec_kw={"width_ratios": [1.1, 1.5, 1.5]})
    labels = [r["label"] for r in rows]
    phases = (("build_s", "build"), ("setup_s", "setup"), ("simulate_s", "simulate"))
    x = np.arange(len(rows))
    width = 0.25
    for i, (key, name) in enumerate(phases):
        axes[0].bar(x + (i - 1) * width, [r["summary"][key] for r in rows], width, label=name)
    axes[0].set_xticks(x, [lbl.replace(" ", "\n", 1) for lbl in labels], fontsize=8)
    axes[0].set_ylabel("seconds (slowest rank)")
    axes[0].set_title("time per phase")
    axes[0].legend(fontsize=8)
    other = "coreneuron" if "coreneuron" in spikes else rows[-1]["variant"]  # CoreNEURON, or what ran last
    for ax, key in zip(axes[1:], ("bmtk_neuron", other), strict=True):
        df = spikes[key]
        ax.scatter(df["timestamp"], df["node_id"], s=1, marker="|", c="k", linewidths=0.5)
        ax.set_xlabel("time (ms)")
        ax.set_ylabel("node id")
        ax.set_title(dict((k, lbl) for k, lbl, _ in VARIANTS)[key] + f" ({len(df)} spikes)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _machine() -> dict:
    versions = {}
    for dist in ("bmtk", "neuron", "mpich", "mpi4py"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {"platform": platform.platform(), "python": platform.python_version(), "versions": versions}
