"""Environment NEURON needs before it is imported: the real MPI library and no GUI.

NEURON loads MPI with dlopen and silently falls back to serial (every rank runs the whole model)
when ``MPI_LIB_NRN_PATH`` does not name a loadable ``libmpi``. The PyPI ``mpich`` package ships that
library into the environment's ``lib/``; we point NEURON at it so users never export it by hand.
"""

from __future__ import annotations

import os
import sys
from importlib import metadata
from pathlib import Path

_MPI_SONAMES = ("libmpi.so.12", "libmpi.so.40")


def find_mpi_library() -> Path | None:
    """Return the shared MPI library of this Python environment, or ``None`` when there is none.

    ``libmpi.so`` itself is a linker script in the mpich wheel, so only versioned names qualify.
    """
    for soname in _MPI_SONAMES:
        candidate = Path(sys.prefix) / "lib" / soname
        if candidate.is_file():
            return candidate
    for dist in ("mpich", "openmpi"):
        try:
            files = metadata.files(dist) or []
        except metadata.PackageNotFoundError:
            continue
        for f in files:
            if f.name in _MPI_SONAMES:
                path = Path(f.locate()).resolve()
                if path.is_file():
                    return path
    return None


def configure_neuron_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Set the variables NEURON reads at import time, keeping any the user set explicitly.

    Works on ``os.environ`` by default, or on a copy meant for a child process.
    """
    env = os.environ if environ is None else environ
    env.setdefault("NEURON_MODULE_OPTIONS", "-nogui")
    if "MPI_LIB_NRN_PATH" not in env:
        lib = find_mpi_library()
        if lib is not None:
            env["MPI_LIB_NRN_PATH"] = str(lib)
    return env


def mpiexec_path() -> Path:
    """The ``mpiexec`` of this environment (from the PyPI ``mpich`` package)."""
    candidate = Path(sys.executable).parent / "mpiexec"
    if candidate.is_file():
        return candidate
    from shutil import which

    found = which("mpiexec")
    if found is None:
        raise FileNotFoundError(
            "mpiexec not found: install the project's dependencies (pip install -e .) which bring PyPI 'mpich'"
        )
    return Path(found)


def finalize_mpi() -> None:
    """End MPI cleanly once every rank is done; call last in a process that ran under ``mpiexec``.

    NEURON initialises MPI but does not finalise it when Python exits. mpiexec (hydra) treats a rank
    that exits without MPI_Finalize as failed and kills the ranks still shutting down, so a run that
    finished and wrote its output could still end "Killed (signal 9)" (seen in about 1 of 5 runs on 3
    ranks). A barrier, then MPI_Finalize through mpi4py, makes every rank leave together.
    """
    from neuron import h

    pc = h.ParallelContext()
    if int(pc.nhost()) < 2:
        return
    pc.barrier()
    from mpi4py import MPI

    if MPI.Is_initialized() and not MPI.Is_finalized():
        MPI.Finalize()
