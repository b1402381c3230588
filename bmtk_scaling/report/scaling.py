"""Scaling analyses of a sweep's results table: the numbers behind every figure of the report.

- strong scaling: one network on more ranks; speedup S(R) = R0 * T(R0) / T(R) from the smallest rank
  count R0 run, efficiency S(R) / R;
- weak scaling: cells per rank fixed, ranks growing (Pesce et al.'s definition; synapses per rank are
  shown, since a network whose synapses grow faster than its cells loads each rank more); efficiency T(R0) / T(R);
- memory scaling: Memory = a * N^b fitted on log-log data by least squares (as Pesce et al. did with
  R's lm on log-transformed data), with R^2 and adjusted R^2, extrapolated to 1 M and 10 M cells;
- ranks against threads at a fixed core count (ranks x threads);
- load imbalance (max / mean compute time per rank) and barrier wait against ranks.

Repeats of a point are combined by their median (robust to one disturbed run) or, on a machine shared
with other work, by their minimum (other work only ever adds time, so the fastest repeat is the least
disturbed): the spec's ``statistic``. Every function takes and returns pandas DataFrames; none draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bmtk_scaling.errors import BmtkScalingError

EXTRAPOLATE_CELLS = (1_000_000, 10_000_000)
# Points differing only in these are repeats or the same configuration.
CONFIG_KEYS = ["network", "network_key", "n_cells", "n_synapses", "ranks", "threads", "cores", "strategy", "engine"]


@dataclass(frozen=True)
class PowerLawFit:
    """y = a * x^b fitted as log y = log a + b log x."""

    a: float
    b: float
    r2: float
    adj_r2: float
    n: int

    def predict(self, x) -> np.ndarray:
        return self.a * np.asarray(x, dtype=float) ** self.b

    def describe(self, x_name: str = "N", unit: str = "") -> str:
        return f"{self.a:.3g}{unit} * {x_name}^{self.b:.3f}  (R^2 {self.r2:.4f}, adj. {self.adj_r2:.4f}, n={self.n})"


def fit_power_law(x, y) -> PowerLawFit:
    """Least-squares fit of log(y) on log(x); needs two or more points with distinct positive x and y > 0."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if np.unique(x).size < 2:
        raise BmtkScalingError("a power-law fit needs at least two distinct positive x values, got "
                               f"{np.unique(x).size}")
    lx, ly = np.log(x), np.log(y)
    b, log_a = np.polyfit(lx, ly, 1)
    resid = ly - (log_a + b * lx)
    ss_tot = float(((ly - ly.mean()) ** 2).sum())
    r2 = 1.0 - float((resid ** 2).sum()) / ss_tot if ss_tot > 0 else 1.0
    n = int(x.size)
    adj = 1.0 - (1.0 - r2) * (n - 1) / (n - 2) if n > 2 else math.nan
    return PowerLawFit(a=float(np.exp(log_a)), b=float(b), r2=r2, adj_r2=adj, n=n)


STATISTICS = ("median", "min")


def combine_repeats(df: pd.DataFrame, values: list[str], how: str = "median") -> pd.DataFrame:
    """One row per configuration (repeats and seeds combined by ``how``: median or min)."""
    if how not in STATISTICS:
        raise BmtkScalingError(f"repeats are combined by one of {STATISTICS}, got {how!r}")
    keys = [k for k in CONFIG_KEYS if k in df.columns]
    cols = [v for v in values if v in df.columns]
    numeric = df[keys + cols].copy()
    for v in cols:
        numeric[v] = pd.to_numeric(numeric[v], errors="coerce")
    out = numeric.groupby(keys, dropna=False, sort=True)[cols].agg(how).reset_index()
    out["repeats"] = numeric.groupby(keys, dropna=False, sort=True).size().to_numpy()
    return out


def strong_scaling(df: pd.DataFrame, how: str = "median") -> pd.DataFrame:
    """Speedup and efficiency per network size whose runs span two or more rank counts (threads fixed)."""
    med = combine_repeats(df, ["simulate_s", "total_s"], how)
    group = ["network", "network_key", "n_cells", "threads", "strategy", "engine"]
    parts = []
    for _, g in med.groupby(group, sort=True):
        if g["ranks"].nunique() < 2:
            continue
        g = g.sort_values("ranks").copy()
        base = g.iloc[0]
        for m in ("simulate_s", "total_s"):
            g[f"speedup_{m[:-2]}"] = base["ranks"] * base[m] / g[m]
            g[f"efficiency_{m[:-2]}"] = g[f"speedup_{m[:-2]}"] / g["ranks"]
        g["base_ranks"] = int(base["ranks"])
        parts.append(g)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def weak_scaling(df: pd.DataFrame, how: str = "median") -> pd.DataFrame:
    """Time against ranks where cells per rank stay fixed and the network grows with the ranks."""
    med = combine_repeats(df, ["simulate_s", "total_s", "cells_per_rank"], how)
    med["cells_per_rank_r"] = med["cells_per_rank"].round().astype(int)
    parts = []
    for _, g in med.groupby(["network", "cells_per_rank_r", "threads", "strategy", "engine"], sort=True):
        if g["ranks"].nunique() < 2 or g["n_cells"].nunique() < 2:
            continue
        g = g.sort_values("ranks").copy()
        g["synapses_per_rank"] = g["n_synapses"] / g["ranks"]  # cells per rank fixed need not mean synapses too
        for m in ("simulate_s", "total_s"):
            g[f"weak_efficiency_{m[:-2]}"] = g.iloc[0][m] / g[m]
        parts.append(g)
    return pd.concat(parts, ignore_index=True).drop(columns="cells_per_rank_r") if parts else pd.DataFrame()


def memory_fits(df: pd.DataFrame, min_sizes: int = 3, how: str = "median") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fits of peak memory (GiB, summed over ranks) against cells and against synapses.

    Two memories: ``total`` (peak RSS of every rank: what a job must request) and ``model`` (peak minus
    the RSS before the network was built: the interpreter, NEURON and bmtk excluded). Returns the
    median data points and one row per fit (group, memory, against) with a, b, R^2 and extrapolations.
    """
    med = combine_repeats(df, ["peak_rss_sum_mib", "model_rss_sum_mib", "peak_rss_max_mib"], how)
    med["total_gib"] = med["peak_rss_sum_mib"] / 1024
    med["model_gib"] = med["model_rss_sum_mib"] / 1024
    rows = []
    for key, g in med.groupby(["network", "engine", "ranks", "threads", "strategy"], sort=True):
        if g["n_cells"].nunique() < min_sizes:
            continue
        for memory in ("total", "model"):
            for against in ("n_cells", "n_synapses"):
                try:
                    fit = fit_power_law(g[against], g[f"{memory}_gib"])
                except ValueError:
                    continue
                row = dict(zip(["network", "engine", "ranks", "threads", "strategy"], key, strict=True))
                row.update(memory=memory, against=against, a_gib=fit.a, b=fit.b, r2=fit.r2, adj_r2=fit.adj_r2,
                           n=fit.n, x_min=float(g[against].min()), x_max=float(g[against].max()))
                if against == "n_cells":
                    for cells in EXTRAPOLATE_CELLS:
                        row[f"gib_at_{cells // 1_000_000}M_cells"] = float(fit.predict(cells))
                rows.append(row)
    return med, pd.DataFrame(rows)


def ranks_vs_threads(df: pd.DataFrame, how: str = "median") -> pd.DataFrame:
    """Configurations with the same cores (ranks x threads) split differently, threads > 1 among them."""
    med = combine_repeats(df, ["simulate_s", "total_s", "peak_rss_sum_mib"], how)
    parts = []
    for _, g in med.groupby(["network", "network_key", "strategy", "engine", "cores"], sort=True):
        if g[["ranks", "threads"]].drop_duplicates().shape[0] < 2 or (g["threads"] <= 1).all():
            continue
        parts.append(g.sort_values("ranks"))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def balance_vs_ranks(df: pd.DataFrame, how: str = "median") -> pd.DataFrame:
    """Load imbalance and barrier wait per configuration, where NEURON reported per-rank compute time."""
    has = pd.to_numeric(df.get("load_balance"), errors="coerce").notna() if "load_balance" in df else None
    if has is None or not has.any():
        return pd.DataFrame()
    med = combine_repeats(df[has], ["imbalance", "wait_max_s", "wait_mean_s", "simulate_s", "load_balance"], how)
    parts = [g for _, g in med.groupby(["network", "network_key", "threads", "strategy", "engine"], sort=True)
             if g["ranks"].nunique() >= 2]
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, ignore_index=True)
    out["wait_fraction"] = out["wait_max_s"] / out["simulate_s"]
    return out


def experiment_table(df: pd.DataFrame, x: str, y: str, hue: str | None, style: str | None = None,
                     ratio: tuple[str, str] | None = None, how: str = "median") -> pd.DataFrame:
    """y (repeats and seeds combined by ``how``) by x and hue (columns), plus y(ratio[0]) / y(ratio[1])."""
    keys = [k for k in (x, style) if k]
    data = df.copy()
    data[y] = pd.to_numeric(data[y], errors="coerce")
    if hue:
        table = data.groupby([*keys, hue], sort=True)[y].agg(how).unstack(hue)
        table.columns = [f"{y} [{c}]" for c in table.columns]
        if ratio:
            a, b = (f"{y} [{v}]" for v in ratio)
            if a in table and b in table:
                table[f"{ratio[0]}/{ratio[1]}"] = table[a] / table[b]
    else:
        table = data.groupby(keys, sort=True)[y].agg(how).to_frame()
    return table.reset_index()
