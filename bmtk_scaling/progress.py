"""Progress of long work (building cells and edges, simulating), shown as a bmtk user sees their runs.

On a terminal a tqdm bar per phase; anywhere else (a log file, a SLURM output file) plain lines, at
most one every few seconds per phase. Only rank 0 reports. Ranks started by ``bmtk-scaling run``
(``BMTK_SCALING_PROGRESS=relay``) instead print one tagged JSON line per update on stdout, which the
runner reads while the ranks work and renders the same way in the user's terminal or log.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, TextIO

TAG = "bmtk-scaling progress "
RELAY_ENV = "BMTK_SCALING_PROGRESS"
PLAIN_EVERY_S = 5.0  # plain lines: at most one per phase this often (and always the last)
REPORT_EVERY_S = 0.5  # a rank's updates: at most one per phase this often (and always the last)

_bars: dict[str, Any] = {}
_last_line: dict[str, float] = {}
_last_report: dict[str, float] = {}


def report(phase: str, done: float, total: float, unit: str, detail: str = "", rank: int = 0) -> None:
    """Progress of ``phase`` (``done`` of ``total`` ``unit``), from a rank: relayed, or rendered here (rank 0 only)."""
    if rank != 0:
        return
    now = time.monotonic()
    if done < total and now - _last_report.get(phase, -1e9) < REPORT_EVERY_S:
        return  # building reports every cell: lines (and the relay's pipe) only this often
    _last_report[phase] = now
    if os.environ.get(RELAY_ENV) == "relay":
        line = TAG + json.dumps({"phase": phase, "done": done, "total": total, "unit": unit, "detail": detail})
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        return
    render(phase, done, total, unit, detail)


def relayed(line: str) -> dict | None:
    """The update a rank's tagged line carries, or None for any other line."""
    if not line.startswith(TAG):
        return None
    try:
        return json.loads(line[len(TAG):])
    except ValueError:
        return None


def render(phase: str, done: float, total: float, unit: str, detail: str = "", stream: TextIO | None = None) -> None:
    """Show an update: a tqdm bar on a terminal, else a plain line (throttled; the last one always)."""
    stream = stream or sys.stderr
    finished = done >= total
    if stream.isatty():
        from tqdm import tqdm

        bar = _bars.get(phase)
        if bar is None:
            bar = _bars[phase] = tqdm(total=total, desc=phase, unit=unit, file=stream, leave=True,
                                      bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:g}/{total:g} {unit}{postfix}")
        bar.n = done
        bar.set_postfix_str(detail, refresh=False)
        bar.refresh()
        if finished:
            bar.close()
            del _bars[phase]
        return
    now = time.monotonic()
    if not finished and now - _last_line.get(phase, -1e9) < PLAIN_EVERY_S:
        return
    _last_line[phase] = now
    percent = 100.0 * done / total if total else 100.0
    stream.write(f"progress: {phase} {done:g} of {total:g} {unit} ({percent:.0f}%){', ' + detail if detail else ''}\n")
    stream.flush()
    if finished:
        _last_line.pop(phase, None)


def simulate_detail(t_ms: float, tstop_ms: float, wall_s: float) -> str:
    """Simulated ms per second of wall time and the time left at that pace."""
    rate = t_ms / wall_s if wall_s > 0 else 0.0
    left = (tstop_ms - t_ms) / rate if rate > 0 else float("nan")
    if rate <= 0:
        return ""
    return f"{rate:.0f} ms/s, {left:.0f} s left" if rate >= 100 else f"{rate:.3g} ms/s, {left:.0f} s left"


def unbuffer_c_stdout() -> None:
    """Make the C library's stdout unbuffered, so CoreNEURON's progress bar (printf to a pipe) reaches the runner
    as it is drawn, not in bursts of 4 KiB; glibc only, else nothing changes."""
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        libc.setvbuf(ctypes.c_void_p.in_dll(libc, "stdout"), None, 2, 0)  # 2: _IONBF
    except (OSError, ValueError, AttributeError):
        return
