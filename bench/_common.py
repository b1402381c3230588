"""Shared by the benchmarks: run a case in a fresh process (own peak RSS), describe the machine."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import resource
import time
from importlib import metadata
from pathlib import Path


def _child(fn, kwargs, queue):
    t0 = time.perf_counter()
    result = fn(**kwargs)
    elapsed = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put({"seconds": elapsed, "peak_rss_mib": peak_kib / 1024.0, **(result or {})})


def measure(fn, **kwargs) -> dict:
    """Run ``fn(**kwargs)`` in a fresh spawned process; return its wall time, peak RSS and result dict."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, kwargs, queue))
    proc.start()
    out = queue.get()
    proc.join()
    if proc.exitcode != 0:
        raise RuntimeError(f"benchmark case {fn.__name__} failed with exit code {proc.exitcode}")
    return out


def machine() -> dict:
    versions = {}
    for dist in ("bmtk", "neuron", "numpy", "h5py", "pymetis", "mpi4py", "mpich"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_gib, 1),
            "python": platform.python_version(), "versions": versions}


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
