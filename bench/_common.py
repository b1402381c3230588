"""Shared by the benchmarks: run a case in a fresh process (own peak RSS), describe the machine."""

from __future__ import annotations

import json
import multiprocessing as mp
import resource
import shutil
import time
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "realnets" / "bmtk"  # bmtk's examples


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
    """Machine, versions, command and commit: the same provenance a sweep records per row."""
    from bmtk_scaling.sweep.records import provenance

    return provenance()


def write_json(path: Path, data: dict) -> None:
    """Results file written whole or not at all, through the gate: it replaces only bench results (JSON with
    the machine it was measured on), never another file."""
    from bmtk_scaling.atomic import is_json_with, write_file

    write_file(Path(path), json.dumps(data, indent=2, default=str) + "\n", "bench results", overwrite=True,
               recognise=is_json_with("machine"))


def copy_corpus(dest: Path, *names: str) -> None:
    """Writable copies of bmtk's examples ``names`` in ``dest`` (../shared is read-only; runs write beside configs)."""
    for name in names:
        shutil.copytree(CORPUS / name, dest / name)
    for path in dest.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)
