"""``bmtk-scaling report RESULTS.csv``: every analysis the data supports, as PNG figures and tables.

An analysis the data cannot support (one rank count only, fewer than three sizes, no NEURON
balance figures, ...) is skipped with the reason, so a user knows what to add to the spec. The
experiment figures a spec declares (``figures:``) are drawn too, and its ``analyses:`` (if given) limit
the standard ones to those its experiment is about; the spec is taken from the sweep (or from
``spec.yaml`` beside the CSV). The report folder is written whole or not at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bmtk_scaling.atomic import Protected, atomic_directory, write_text_atomic
from bmtk_scaling.errors import BmtkScalingError
from bmtk_scaling.report import plots as sp
from bmtk_scaling.report import scaling as sa
from bmtk_scaling.sweep.spec import FigureSpec, SweepSpec, parse_spec

NUMERIC = ["n_cells", "n_synapses", "ranks", "threads", "cores", "simulate_s", "total_s", "peak_rss_sum_mib"]
REQUIRED = ["network", "network_key", "n_cells", "n_synapses", "ranks", "threads", "cores", "strategy", "engine",
            "simulate_s", "total_s", "peak_rss_sum_mib"]


@dataclass
class ReportOutcome:
    out_dir: Path
    written: list[str] = field(default_factory=list)  # file names
    skipped: dict[str, str] = field(default_factory=dict)  # analysis -> why
    text: str = ""


REPORT_KIND = "report"  # what report --out replaces: only a report it drew before


def load_results(csv_path: Path) -> pd.DataFrame:
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise BmtkScalingError(f"results file {csv_path} not found (a sweep writes <out>/results.csv)")
    try:
        df = pd.read_csv(csv_path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise BmtkScalingError(f"{csv_path} is not a results CSV: {err}") from None
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise BmtkScalingError(f"{csv_path} lacks the columns {missing}: is it a bmtk-scaling sweep's results.csv?")
    if df.empty:
        raise BmtkScalingError(f"{csv_path} has no rows yet: run the sweep first")
    for column in NUMERIC:
        values = pd.to_numeric(df[column], errors="coerce")
        bad = values.isna() & df[column].notna()
        if bad.any():
            raise BmtkScalingError(f"{csv_path}: column {column!r} holds non-numbers (row {int(bad.idxmax()) + 2}: "
                                   f"{df[column][bad].iloc[0]!r}): is it a bmtk-scaling sweep's results.csv?")
        if not np.isfinite(values).any():
            raise BmtkScalingError(f"{csv_path}: column {column!r} has no finite value: nothing to draw")
        df[column] = values
    for column in ("ranks", "threads", "cores", "n_cells"):
        if (df[column] < 1).any() or (df[column] % 1 != 0).any():
            raise BmtkScalingError(f"{csv_path}: column {column!r} must hold positive integers, got "
                                   f"{sorted(set(df[column][(df[column] < 1) | (df[column] % 1 != 0)]))[:5]}")
    return df


def make_report(csv_path: Path, out_dir: Path | None = None, spec: SweepSpec | None = None) -> ReportOutcome:
    """Draw every supported figure and write its table into ``out_dir`` (default: beside the CSV, report/)."""
    csv_path = Path(csv_path)
    df = load_results(csv_path)
    out_dir = Path(out_dir) if out_dir else csv_path.parent / "report"
    notes: list[str] = []
    if spec is None and (csv_path.parent / "spec.yaml").is_file():
        try:
            spec = parse_spec((csv_path.parent / "spec.yaml").read_text(), str(csv_path.parent / "spec.yaml"))
        except ValueError as err:
            notes.append(f"the experiment figures of spec.yaml were not drawn: {err}")
    outcome = ReportOutcome(out_dir=out_dir)
    how = spec.statistic if spec else "median"
    sections: list[str] = []
    inputs = [csv_path, csv_path.parent / "spec.yaml"] + ([Path(spec.source)] if spec is not None else [])
    protected = Protected.of([p for p in inputs if p.is_file()], [], owner=csv_path.name)
    with atomic_directory(out_dir, overwrite=True, kind=REPORT_KIND, protected=protected) as tmp:
        for name, fn in (("strong_scaling", _strong), ("weak_scaling", _weak), ("memory_scaling", _memory),
                         ("ranks_threads", _threads), ("load_balance", _balance)):
            if spec is not None and name not in spec.analyses:
                continue  # the spec names the analyses its experiment is about
            result = fn(df, tmp, how)
            if isinstance(result, str):
                outcome.skipped[name] = result
            else:
                outcome.written += result[0]
                sections.append(f"## {name}\n\n" + "\n".join(f"![{f}]({f})" for f in result[0] if f.endswith(".png"))
                                + "\n\n" + result[1])
        for fig in (spec.figures if spec else []):
            result = _experiment(df, fig, tmp, how)
            if isinstance(result, str):
                outcome.skipped[fig.name] = result
            else:
                outcome.written += result[0]
                sections.append(f"## {fig.title or fig.name}\n\n![{fig.name}]({fig.name}.png)\n\n"
                                + (f"{fig.caption}\n\n" if fig.caption else "") + result[1])
        skipped = "".join(f"- {k}: {v}\n" for k, v in outcome.skipped.items())
        title = f"# Report: {spec.name}\n\n{spec.description}\n\n" if spec else "# Scaling report\n\n"
        outcome.text = (title + f"{len(df)} runs from {csv_path.name}; repeats combined by their {how}.\n\n"
                        + "\n\n".join(sections)
                        + (f"\n\n## Skipped\n\n{skipped}" if skipped else "") + "".join(f"\n{n}\n" for n in notes))
        write_text_atomic(tmp / "report.md", outcome.text)
        outcome.written.append("report.md")
    return outcome


def markdown_table(df: pd.DataFrame, digits: int = 3) -> str:
    """A DataFrame as a GitHub markdown table (numbers to ``digits`` significant digits)."""
    def fmt(v) -> str:
        if isinstance(v, float):
            if math.isnan(v):
                return "-"
            return f"{v:,.0f}" if abs(v) >= 10 ** digits else f"{v:.{digits}g}"
        return str(v)

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _write(tmp: Path, name: str, table: pd.DataFrame) -> str:
    write_text_atomic(tmp / f"{name}.csv", table.to_csv(index=False))
    return f"{name}.csv"


def _strong(df: pd.DataFrame, tmp: Path, how: str):
    table = sa.strong_scaling(df, how=how)
    if table.empty:
        return "no network size was run on two or more rank counts with the same threads, strategy and engine"
    sp.plot_strong(table, tmp / "strong_scaling.png")
    cols = ["network", "n_cells", "engine", "strategy", "threads", "ranks", "simulate_s", "speedup_simulate",
            "efficiency_simulate", "total_s", "speedup_total", "efficiency_total"]
    return ["strong_scaling.png", _write(tmp, "strong_scaling", table)], markdown_table(table[cols])


def _weak(df: pd.DataFrame, tmp: Path, how: str):
    table = sa.weak_scaling(df, how=how)
    if table.empty:
        return ("no two runs share the cells per rank on different rank counts (a spec network with "
                "scale_with_ranks gives that)")
    sp.plot_weak(table, tmp / "weak_scaling.png")
    cols = ["network", "engine", "strategy", "ranks", "n_cells", "cells_per_rank", "synapses_per_rank", "simulate_s",
            "weak_efficiency_simulate", "total_s", "weak_efficiency_total"]
    return ["weak_scaling.png", _write(tmp, "weak_scaling", table)], markdown_table(table[cols])


def _memory(df: pd.DataFrame, tmp: Path, how: str):
    points, fits = sa.memory_fits(df, how=how)
    if fits.empty:
        return "fewer than three network sizes share one network, engine, rank count, threads and strategy"
    sp.plot_memory(points, fits, tmp / "memory_scaling.png")
    files = ["memory_scaling.png", _write(tmp, "memory_fit", fits), _write(tmp, "memory_points", points)]
    cols = ["network", "engine", "ranks", "memory", "against", "a_gib", "b", "r2", "adj_r2", "n",
            "gib_at_1M_cells", "gib_at_10M_cells"]
    return files, markdown_table(fits[[c for c in cols if c in fits]])


def _threads(df: pd.DataFrame, tmp: Path, how: str):
    table = sa.ranks_vs_threads(df, how=how)
    if table.empty:
        return "no core count (ranks x threads) was split both as more ranks and as more threads"
    sp.plot_ranks_threads(table, tmp / "ranks_threads.png")
    cols = ["network", "n_cells", "engine", "cores", "ranks", "threads", "simulate_s", "total_s", "peak_rss_sum_mib"]
    return ["ranks_threads.png", _write(tmp, "ranks_threads", table)], markdown_table(table[cols])


def _balance(df: pd.DataFrame, tmp: Path, how: str):
    if pd.to_numeric(df.get("load_balance"), errors="coerce").notna().sum() == 0:
        return "no per-rank compute times: CoreNEURON reports none; NEURON runs on 2+ ranks give them"
    table = sa.balance_vs_ranks(df, how=how)
    if table.empty:
        return "per-rank compute times exist for one rank count only"
    sp.plot_balance(table, tmp / "load_balance.png")
    cols = ["network", "n_cells", "strategy", "ranks", "imbalance", "wait_max_s", "wait_mean_s", "simulate_s",
            "wait_fraction"]
    return ["load_balance.png", _write(tmp, "load_balance", table)], markdown_table(table[cols])


def _column(df: pd.DataFrame, name: str | None) -> str | None:
    if name is None or name in df.columns:
        return name
    return f"param_{name}" if f"param_{name}" in df.columns else None


def _experiment(df: pd.DataFrame, fig: FigureSpec, tmp: Path, how: str):
    cols = {k: _column(df, getattr(fig, k)) for k in ("x", "y", "hue", "style")}
    missing = [getattr(fig, k) for k, v in cols.items() if v is None and getattr(fig, k) is not None]
    if missing:
        return f"the results have no column {missing}"
    data = df.dropna(subset=[cols["x"], cols["y"]])
    for key, value in fig.where:
        column = _column(data, key)
        if column is None:
            return f"the results have no column {key!r}"
        if isinstance(value, int | float) and not isinstance(value, bool):
            data = data[pd.to_numeric(data[column], errors="coerce") == float(value)]
        else:
            data = data[data[column].astype(str) == str(value)]
    if data.empty:
        return f"no rows with {dict(fig.where)}"
    if data[cols["x"]].nunique() < 2 and not cols["hue"]:
        return f"only one value of {fig.x}"
    sp.plot_experiment(data, cols["x"], cols["y"], cols["hue"], cols["style"], fig.ratio, tmp / f"{fig.name}.png",
                       title=fig.title or fig.name, logx=fig.logx, logy=fig.logy, x_label=fig.x, how=how)
    table = sa.experiment_table(data, cols["x"], cols["y"], cols["hue"], cols["style"], fig.ratio, how=how)
    table = table.rename(columns={cols["x"]: fig.x})
    return [f"{fig.name}.png", _write(tmp, fig.name, table)], markdown_table(table)
