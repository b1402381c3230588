"""Figures of the scaling report (matplotlib, PNG): one function per analysis, tables in, file out."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bmtk_scaling.report.scaling import EXTRAPOLATE_CELLS, PowerLawFit  # noqa: E402

DPI = 90  # small PNGs: they are committed under docs/


def _label(row, keys) -> str:
    return ", ".join(f"{row[k]}" if k not in ("threads", "n_cells") else
                     (f"{row[k]} thr" if k == "threads" else f"{int(row[k])} cells") for k in keys)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _log_x_at(ax, values) -> None:
    """Log x axis labelled at the measured values (matplotlib's minor labels overlap on short ranges)."""
    ax.set_xscale("log")
    ticks = sorted(pd.to_numeric(pd.Series(values).dropna()).unique())
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def plot_strong(table: pd.DataFrame, path: Path) -> Path:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    keys = ["network", "n_cells", "engine", "strategy", "threads"]
    top = int(table["ranks"].max())
    ax1.plot([1, top], [1, top], color="0.6", ls=":", label="ideal")
    for i, (_, g) in enumerate(table.groupby(keys, sort=True)):
        color = f"C{i % 10}"
        label = _label(g.iloc[0], keys)
        ax1.plot(g["ranks"], g["speedup_simulate"], "o-", color=color, label=f"{label} (simulate)")
        ax1.plot(g["ranks"], g["speedup_total"], "s--", color=color, alpha=0.6, label=f"{label} (total)")
        ax2.plot(g["ranks"], g["efficiency_simulate"], "o-", color=color)
        ax2.plot(g["ranks"], g["efficiency_total"], "s--", color=color, alpha=0.6)
    ax2.axhline(1.0, color="0.6", ls=":")
    ax1.set(xlabel="MPI ranks", ylabel="speedup", title="Strong scaling: speedup")
    ax2.set(xlabel="MPI ranks", ylabel="parallel efficiency", title="Strong scaling: efficiency", ylim=(0, None))
    for ax in (ax1, ax2):
        ax.set_xticks(sorted(table["ranks"].unique()))
    ax1.legend(fontsize=6, loc="upper left")
    return _save(fig, path)


def plot_weak(table: pd.DataFrame, path: Path) -> Path:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    keys = ["network", "engine", "strategy", "threads"]
    for i, (_, g) in enumerate(table.groupby(keys, sort=True)):
        label = _label(g.iloc[0], keys) + f", {g['cells_per_rank'].iloc[0]:.0f} cells/rank"
        ax1.plot(g["ranks"], g["simulate_s"], "o-", color=f"C{i}", label=f"{label} (simulate)")
        ax1.plot(g["ranks"], g["total_s"], "s--", color=f"C{i}", alpha=0.6, label=f"{label} (total)")
        ax2.plot(g["ranks"], g["weak_efficiency_simulate"], "o-", color=f"C{i}")
    ax2.axhline(1.0, color="0.6", ls=":")
    ax1.set(xlabel="MPI ranks (network grows with them)", ylabel="time (s)", title="Weak scaling", ylim=(0, None))
    ax2.set(xlabel="MPI ranks", ylabel="T(R0) / T(R)", title="Weak scaling efficiency", ylim=(0, None))
    for ax in (ax1, ax2):
        ax.set_xticks(sorted(table["ranks"].unique()))
    ax1.legend(fontsize=6, loc="upper left")
    return _save(fig, path)


def plot_memory(points: pd.DataFrame, fits: pd.DataFrame, path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    keys = ["network", "engine", "ranks", "threads", "strategy"]
    for ax, against, xlabel in ((axes[0], "n_cells", "cells"), (axes[1], "n_synapses", "synapses")):
        for i, (key, f) in enumerate(fits[fits["against"] == against].groupby(keys, sort=True)):
            g = points.set_index(keys).loc[key].reset_index() if len(keys) else points
            label = f"{key[0]}, {key[1]}, {key[2]} rank(s)"
            for memory, marker, ls in (("total", "o", "-"), ("model", "^", "--")):
                row = f[f["memory"] == memory]
                if row.empty:
                    continue
                row = row.iloc[0]
                fit = PowerLawFit(row["a_gib"], row["b"], row["r2"], row["adj_r2"], int(row["n"]))
                x = g[against].to_numpy(float)
                ax.loglog(x, g[f"{memory}_gib"], marker, color=f"C{i}", ls="none")
                top = max(EXTRAPOLATE_CELLS[0], x.max()) if against == "n_cells" else x.max() * 3
                xs = np.geomspace(x.min(), top, 50)
                ax.loglog(xs, fit.predict(xs), ls, color=f"C{i}", lw=1,
                          label=f"{label} {memory}: {fit.a:.2g}·N^{fit.b:.2f} (R²={fit.r2:.3f})")
        if against == "n_cells":
            for cells in EXTRAPOLATE_CELLS[:1]:
                ax.axvline(cells, color="0.7", ls=":")
        ax.set(xlabel=xlabel, ylabel="peak memory, all ranks (GiB)", title=f"Memory against {xlabel}")
        ax.legend(fontsize=6)
    return _save(fig, path)


def plot_ranks_threads(table: pd.DataFrame, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    keys = ["network", "n_cells", "engine", "strategy", "cores"]
    for i, (_, g) in enumerate(table.groupby(keys, sort=True)):
        labels = [f"{r}x{t}" for r, t in zip(g["ranks"], g["threads"], strict=True)]
        ax.plot(range(len(g)), g["simulate_s"], "o-", color=f"C{i}",
                label=_label(g.iloc[0], keys[:4]) + f", {g['cores'].iloc[0]} cores")
        ax.set_xticks(range(len(g)), labels)
    ax.set(xlabel="ranks x threads (same cores)", ylabel="simulate time (s)", title="MPI ranks against threads",
           ylim=(0, None))
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_balance(table: pd.DataFrame, path: Path) -> Path:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    keys = ["network", "n_cells", "strategy", "threads"]
    for i, (_, g) in enumerate(table.groupby(keys, sort=True)):
        label = _label(g.iloc[0], keys[:3])
        ax1.plot(g["ranks"], g["imbalance"], "o-", color=f"C{i % 10}", label=label)
        ax2.plot(g["ranks"], g["wait_max_s"], "o-", color=f"C{i % 10}", label=f"{label} (max)")
        ax2.plot(g["ranks"], g["wait_mean_s"], "s:", color=f"C{i % 10}", alpha=0.6)
    ax1.axhline(1.0, color="0.6", ls=":")
    ax1.set(xlabel="MPI ranks", ylabel="max / mean compute time", title="Load imbalance (NEURON)")
    ax2.set(xlabel="MPI ranks", ylabel="wait time (s)", title="Time waiting for other ranks (max; dotted: mean)")
    for ax in (ax1, ax2):
        ax.set_xticks(sorted(table["ranks"].unique()))
    ax1.legend(fontsize=7)
    return _save(fig, path)


def plot_experiment(data: pd.DataFrame, x: str, y: str, hue: str | None, style: str | None,
                    ratio: tuple[str, str] | None, path: Path, title: str = "", logx: bool = False,
                    logy: bool = False, x_label: str | None = None, how: str = "median") -> Path:
    """y against x, one line per (hue, style) value (repeats combined by ``how``, their range shaded), plus
    a ratio panel if asked."""
    fig, axes = plt.subplots(1, 2 if ratio else 1, figsize=(10 if ratio else 6, 4), squeeze=False)
    ax = axes[0][0]
    data = data.copy()
    data[y] = pd.to_numeric(data[y], errors="coerce")
    keys = [k for k in (hue, style) if k]
    styles = {v: s for v, s in zip(sorted(data[style].unique(), key=str), ("-", "--", ":", "-."), strict=False)} \
        if style else {}
    hues = {v: f"C{i}" for i, v in enumerate(sorted(data[hue].unique(), key=str))} if hue else {}
    groups = data.groupby(keys, sort=True) if keys else [((), data)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        vals = dict(zip(keys, key, strict=True))
        med = g.groupby(x, sort=True)[y].agg(value=how, lo="min", hi="max").reset_index()
        label = ", ".join(f"{v}" if k == hue else f"{k} {v}" for k, v in vals.items()) or y
        ax.plot(med[x], med["value"], "o", ls=styles.get(vals.get(style), "-"), color=hues.get(vals.get(hue), "C0"),
                label=label)
        if (med["hi"] > med["lo"]).any():
            ax.fill_between(med[x], med["lo"], med["hi"], color=hues.get(vals.get(hue), "C0"), alpha=0.15)
    repeats = data.groupby([k for k in (x, *keys) if k], sort=False).size().max()
    ax.set(xlabel=x_label or x, ylabel=f"{y} ({how} of {repeats} repeats)" if repeats > 1 else y, title=title)
    if logx:
        _log_x_at(ax, data[x])
    if logy:
        ax.set_yscale("log")
    elif not logy:
        ax.set_ylim(0, None)
    ax.legend(fontsize=7)
    if ratio:
        ax2 = axes[0][1]
        sub = data[data[hue].isin(ratio)]
        other = [k for k in (x, style) if k]
        med = sub.groupby([*other, hue], sort=True)[y].agg(how).unstack(hue)
        if all(r in med.columns for r in ratio):
            med["ratio"] = med[ratio[0]] / med[ratio[1]]
            med = med.reset_index()
            for sval, g in (med.groupby(style, sort=True) if style else [(None, med)]):
                ax2.plot(g[x], g["ratio"], "o", ls=styles.get(sval, "-"), color="k",
                         label=f"{style} {sval}" if style else None)
        ax2.axhline(1.0, color="0.6", ls=":")
        ax2.set(xlabel=x_label or x, ylabel=f"{y}: {ratio[0]} / {ratio[1]}", title=f"{ratio[0]} / {ratio[1]}")
        if logx:
            _log_x_at(ax2, data[x])
        if style:
            ax2.legend(fontsize=7)
    return _save(fig, path)
