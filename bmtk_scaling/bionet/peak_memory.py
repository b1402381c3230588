"""Peak resident memory of this process, read and reset, so that two phases of one run are measured apart.

Why: ``ru_maxrss`` is one high-water mark for the whole process. In CoreNEURON file mode the run has
two phases whose peaks users need apart: NEURON building and writing the model, then CoreNEURON
running it. Linux keeps the mark in ``VmHWM`` (``/proc/self/status``) and resets it (and
``ru_maxrss``) to the current resident size on ``echo 5 > /proc/self/clear_refs`` (Linux >= 4.0).
Where that file cannot be written, the reset reports False and the second phase's peak is the
process's peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import resource
from pathlib import Path

__all__ = ["peak_rss_mib", "release_free_heap", "reset_peak_rss"]


def peak_rss_mib() -> float:
    """The process's peak resident memory since start or the last :func:`reset_peak_rss`, MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_rss() -> bool:
    """Start a new peak from the current resident size; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@functools.cache
def _libc():
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def release_free_heap() -> None:
    """Give memory the allocator holds but nothing uses back to the system (glibc ``malloc_trim``).

    After NEURON frees a model, glibc keeps much of it mapped; trimming lets the next phase (the next
    build cycle, CoreNEURON) start from what is really in use, and the measured peaks say so.
    """
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if trim is not None:
        trim(0)
