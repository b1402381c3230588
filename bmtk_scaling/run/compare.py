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
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from bmtk_scaling.atomic import Refused, atomic_directory, claim, write_text_atomic
from bmtk_scaling.config.derive import derive_config, with_settings, write_config
from bmtk_scaling.config.settings import STOCK
from bmtk_scaling.errors import BmtkScalingError, RunError, RunFailed
from bmtk_scaling.run.launcher import run_config
from bmtk_scaling.run.preflight import TOOL_SUFFIX, check_timeout, plan_run
from bmtk_scaling.run.result import result_to_dict
from bmtk_scaling.sonata.configs import LoadedConfig, loaded, protected_inputs
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


def parse_timeouts(given: tuple[str, ...] | list[str], default: float = 3600.0) -> dict[str, float]:
    """``--timeout`` values, ``SECONDS`` (every variant) or ``VARIANT=SECONDS``, as seconds per variant key."""
    keys = [key for key, _, _ in VARIANTS]
    out = dict.fromkeys(keys, default)
    for item in given:
        name, _, value = item.rpartition("=")
        if name and name not in keys:
            raise BmtkScalingError(f"--timeout {item}: no variant {name!r}; the variants are {', '.join(keys)}")
        try:
            seconds = float(value)
        except ValueError:
            raise BmtkScalingError(f"--timeout {item}: give SECONDS or VARIANT=SECONDS, e.g. 600 or "
                                   "coreneuron=600") from None
        check_timeout(seconds)
        for key in [name] if name else keys:
            out[key] = seconds
    return out


def default_out_dir(config: Path, ranks: int) -> Path:
    """Where ``compare`` writes by default: the current folder, never the network's (whose files are only read)."""
    return Path.cwd() / f"compare_{Path(config).stem}_{ranks}ranks"


def compare_engines(config: Path | LoadedConfig, ranks: int, out_dir: Path | None = None, overwrite: bool = False,
                    timeout: float | Mapping[str, float] = 3600.0, progress=print) -> dict:
    """Run the three variants of ``config`` on ``ranks`` ranks; write JSON, CSV and a PNG into ``out_dir``.

    ``out_dir`` defaults to :func:`default_out_dir`; where that holds files this tool did not write, a
    folder beside it named after it and the tool. ``timeout``: seconds per run, or per variant key
    (``{"coreneuron": 600}``; the others get the default). A variant refused before it runs is listed
    in ``skipped``, one that fails while running in ``failed``, each with its reason; the variants that
    finished are compared and written all the same. Nothing is written when none finished.
    """
    sim = loaded(config)  # read once; each variant's own config is read once by its run
    config = sim.path
    timeouts = {key: check_timeout(timeout.get(key, 3600.0) if isinstance(timeout, Mapping) else timeout)
                for key, _, _ in VARIANTS}
    protected = protected_inputs(sim)
    out_dir = _claim_out_dir(Path(out_dir).absolute() if out_dir else None, config, ranks, overwrite, protected)
    progress(f"writing to {out_dir}")
    # the user's config, checked before any variant is written or run (each variant's memory when it runs)
    plan_run(sim, ranks, check_output=False, check_memory=False)
    base = sim.data
    rows, spikes, skipped, failed = [], {}, [], []
    with atomic_directory(out_dir, overwrite=overwrite, kind=COMPARE_KIND, protected=protected) as tmp:

        def final(path: str) -> str:  # the folder is renamed into place at the end: name paths as they will be
            return str(out_dir / Path(path).relative_to(tmp))

        for key, label, switches in VARIANTS:
            new = with_settings(base, STOCK) if switches is None else derive_config(base, **switches)
            cfg = write_config(new, sim, tmp / f"{key}.json", output_dir=f"./{key}")
            progress(f"running {label} on {ranks} rank(s) ...")
            try:
                result = run_config(cfg, ranks, timeout=timeouts[key])
            except BmtkScalingError as err:  # refused before it ran: say why, compare the others
                if switches is None:
                    raise
                skipped.append({"variant": key, "label": label, "reason": str(err)})
                progress(f"  {label} cannot run: {err}")
                continue
            except RunError as err:  # started and failed: keep what finished, say why this one did not
                failed.append({"variant": key, "label": label, "reason": str(err)})
                progress(f"  {label} failed: {err}")
                continue
            spikes[key] = read_spikes(Path(result.spikes_file))
            row = {"variant": key, "label": label, **result_to_dict(result)}
            row["config"], row["spikes_file"] = final(row["config"]), final(row["spikes_file"])
            row["output_dir"] = final(row["output_dir"])
            rows.append(row)
        if not rows:
            raise RunFailed(f"no variant of {config.name} finished, so nothing was written:\n"
                            + "\n".join(f"  {f['label']}: {f['reason']}" for f in failed))

        stock = rows[0]["summary"] if rows[0]["variant"] == "bmtk_neuron" else None
        for row in rows:
            s = row["summary"]
            row["speedup_simulate"] = (stock["simulate_s"] / s["simulate_s"] if stock and s["simulate_s"] > 0
                                       else None)
            row["speedup_total"] = stock["total_s"] / s["total_s"] if stock else None
            row["memory_ratio"] = s["peak_rss_max_mib"] / stock["peak_rss_max_mib"] if stock else None
            row["spikes_vs_stock"] = (compare_spikes(spikes["bmtk_neuron"], spikes[row["variant"]]).__dict__
                                      if stock else None)

        report = {"config": str(config), "ranks": ranks, "machine": _machine(), "variants": rows, "skipped": skipped,
                  "failed": failed}
        write_text_atomic(tmp / "compare.json", json.dumps(report, indent=2, default=float) + "\n")
        write_text_atomic(tmp / "compare.csv", _csv(rows))
        _plot(rows, spikes, tmp / "compare.png", f"{config.parent.name}/{config.name} on {ranks} rank(s)")
    report["out_dir"] = str(out_dir)
    return report


def _claim_out_dir(out_dir: Path | None, config: Path, ranks: int, overwrite: bool, protected) -> Path:
    """The results folder, through the gate before any check or build; the default one, where it holds files
    this tool did not write, gives way to a folder beside it (``compare_..._bmtk-scaling``)."""
    if out_dir is not None:
        return claim(out_dir, COMPARE_KIND, folder=True, overwrite=overwrite, protected=protected)
    default = default_out_dir(config, ranks)
    try:
        return claim(default, COMPARE_KIND, folder=True, overwrite=overwrite, protected=protected)
    except Refused as refused:
        if refused.reason not in ("foreign", "kind"):
            raise
    return claim(default.parent / f"{default.name}{TOOL_SUFFIX}", COMPARE_KIND, folder=True, overwrite=overwrite,
                 protected=protected)


def format_table(report: dict) -> str:
    head = (f"{'engine':<20}{'build s':>9}{'setup s':>9}{'simulate s':>12}{'total s':>9}{'RSS max MiB':>13}"
            f"{'RSS sum MiB':>13}{'spikes':>8}{'balance':>9}{'sim x':>7}{'total x':>8}{'mem x':>7}  spikes vs stock")
    lines = [head, "-" * len(head)]
    for row in report["variants"]:
        s = row["summary"]
        bal = f"{s['load_balance']:.2f}" if s["load_balance"] is not None else "n/a"
        diff = row["spikes_vs_stock"]
        same = "no stock run" if diff is None else "identical" if diff["identical"] else (
            f"{diff['n_differ']} differ, first at {diff['first_divergence_ms']:.3f} ms")
        lines.append(f"{row['label']:<20}{s['build_s']:>9.2f}{s['setup_s']:>9.3f}{s['simulate_s']:>12.2f}"
                     f"{s['total_s']:>9.2f}{s['peak_rss_max_mib']:>13.0f}{s['peak_rss_sum_mib']:>13.0f}"
                     f"{s['spikes']:>8d}{bal:>9}{_ratio(row['speedup_simulate'], 7)}{_ratio(row['speedup_total'], 8)}"
                     f"{_ratio(row['memory_ratio'], 7)}  {same}")
    for row in report.get("skipped", []):
        lines.append(f"{row['label']:<20}cannot run here: {row['reason']}")
    for row in report.get("failed", []):
        lines.append(f"{row['label']:<20}FAILED: {row['reason'].splitlines()[0]}")
    lines.append("sim x, total x: stock's simulate / total time over this one's; mem x: this peak RSS (max over "
                 "ranks) / stock's; balance: mean/max NEURON compute time over ranks (CoreNEURON reports none)")
    return "\n".join(lines)


def _ratio(value: float | None, width: int) -> str:
    return f"{value:>{width}.2f}" if value is not None else f"{'n/a':>{width}}"


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    fields = ["variant", "label", "ranks", "build_s", "setup_s", "simulate_s", "total_s", "wall_s",
              "peak_rss_max_mib", "peak_rss_sum_mib", "spikes", "load_balance", "wait_max_s", "speedup_simulate",
              "speedup_total", "memory_ratio", "identical_to_stock", "n_differ", "first_divergence_ms"]
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for row in rows:
        s, d = row["summary"], row["spikes_vs_stock"] or {"identical": None, "n_differ": None,
                                                         "first_divergence_ms": None}
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
    first = rows[0]["variant"]  # stock, unless it failed
    other = "coreneuron" if "coreneuron" in spikes else rows[-1]["variant"]  # CoreNEURON, or what ran last
    for ax, key in zip(axes[1:], (first, other), strict=True):
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
