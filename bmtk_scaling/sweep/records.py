"""One tidy row per finished point, stored as its own JSON file, and the CSV assembled from them.

Each finished point is written once, atomically and fsync'ed (``points/<id>.json``): an interrupted
sweep keeps every measurement it finished, and a rerun knows exactly which points are done. The
CSV (``results.csv``) is rebuilt from those files after every point, so it is never half-written
and never disagrees with them. Every row carries its provenance (versions, machine, command, git
commit, seed, every network parameter), so rows from different days or machines stay comparable.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from bmtk_scaling.atomic import write_text_atomic
from bmtk_scaling.sweep.columns import IDENTITY, MEASURED, PARTITION, PROVENANCE, VERSIONED
from bmtk_scaling.sweep.grid import Point

SCHEMA_VERSION = 1
POINTS_DIR = "points"
FAILED_DIR = "failed"
RESULTS_CSV = "results.csv"
def provenance() -> dict:
    """Who measured: machine, versions, command and the project's git commit (with -dirty when edited)."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for dist in VERSIONED:
        try:
            versions[f"version_{dist.replace('-', '_')}"] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[f"version_{dist.replace('-', '_')}"] = None
    return {
        "hostname": socket.gethostname(),
        "cpu": cpu,
        "cores_available": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **versions,
        "git_commit": git_commit(),
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }


def git_commit(where: Path | None = None) -> str | None:
    """The commit of the checkout this package runs from, or None outside git."""
    where = where or Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("-dirty" if dirty else "")


def make_row(spec_name: str, point: Point, run: dict, network: dict, partition_metrics: dict, spikes_sha: str,
             started: float, meta: dict) -> dict:
    """The tidy row of one finished point. ``run``: runner.result_to_dict; ``network``: n_edges, build seconds."""
    s = run["summary"]
    per_rank = run["per_rank"]

    def col(key: str) -> np.ndarray:
        return np.array([r.get(key, 0.0) for r in per_rank], dtype=float)

    model = col("peak_rss_mib") - col("rss_before_build_mib")
    step, wait = col("step_time"), col("wait_time")
    has_balance = s["load_balance"] is not None
    params = point.network.params
    row = {
        "spec": spec_name, "point_id": point.id, "network": point.network.entry, "builder": point.network.builder,
        "network_key": point.network.key, "size_index": point.size_index, "seed": point.network.seed,
        "repeat": point.repeat, "ranks": point.ranks, "threads": point.threads, "cores": point.cores,
        "strategy": point.strategy, "engine": point.engine, "gpu": point.gpu, "latency_ms": point.latency_ms,
        "exchange": point.exchange, "n_cells": network["n_nodes"],
        "n_synapses": network["n_edges"], "cells_per_rank": network["n_nodes"] / point.ranks,
        "load_s": s["load_s"], "build_s": s["build_s"], "setup_s": s["setup_s"], "simulate_s": s["simulate_s"],
        "total_s": s["total_s"], "wall_s": s["wall_s"], "peak_rss_max_mib": s["peak_rss_max_mib"],
        "peak_rss_sum_mib": s["peak_rss_sum_mib"], "model_rss_sum_mib": float(np.nansum(model)),
        "spikes": s["spikes"], "spikes_sha256": spikes_sha,
        "load_balance": s["load_balance"], "imbalance": 1.0 / s["load_balance"] if has_balance else None,
        "step_time_max_s": float(step.max()) if has_balance else None,
        "wait_max_s": s["wait_max_s"], "wait_mean_s": float(wait.mean()) if has_balance else None,
        "netcons": int(col("netcons").sum()), "network_build_s": network.get("build_s"),
        "cross_site_collectives": s.get("sim_cross_site_collectives"),  # during the simulation (emulated sites)
        "cross_site_messages": s.get("sim_cross_site_messages_sent"),
        "synapses_cut": partition_metrics.get("synapses_cut"), "cut_fraction": partition_metrics.get("cut_fraction"),
        "communication_volume": partition_metrics.get("communication_volume"),
        "partition_imbalance": partition_metrics.get("imbalance"),
        "min_cross_rank_delay": partition_metrics.get("min_cross_rank_delay"),
        **{f"param_{k}": v for k, v in sorted(params.items())},
        "started_at": _iso(started), "finished_at": _iso(time.time()),
        **meta, "params_json": point.network.params_json,
    }
    return row


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


def write_json_durable(path: Path, data: dict) -> None:
    """Write JSON atomically and fsync it and its folder: a finished sweep point survives a crash."""
    write_text_atomic(Path(path), json.dumps(data, indent=1, default=_json_default) + "\n", durable=True)


def _json_default(value):
    if isinstance(value, np.integer | np.floating | np.bool_):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in a results file")


def point_file(out_dir: Path, point_id: str) -> Path:
    return Path(out_dir) / POINTS_DIR / f"{point_id}.json"


def read_point(out_dir: Path, point_id: str) -> dict | None:
    """The stored record of a finished point, or None (absent, or unreadable: then it runs again)."""
    path = point_file(out_dir, point_id)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if data.get("schema") == SCHEMA_VERSION and data.get("row", {}).get("point_id") == point_id else None


def csv_text(rows: list[dict]) -> str:
    """Rows as CSV: the fixed columns first, then every parameter column any row has, then provenance."""
    params = sorted({k for r in rows for k in r if k.startswith("param_")})
    fields = IDENTITY + MEASURED + PARTITION + params + PROVENANCE
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in fields})
    return buf.getvalue()
