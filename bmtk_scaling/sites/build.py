"""Compile the latency shim (``shim.c``) with the system's gcc against this environment's MPI, once.

Like the NMODL mechanisms, the library is cached under the package's cache root, keyed by the hash
of its source, the MPI header and library it is built against, and gcc's version; a build goes to a
temporary file first and is renamed into place, so ranks or tests asking at the same time never see
half a library.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bmtk_scaling.environment import find_mpi_library
from bmtk_scaling.errors import BmtkScalingError
from bmtk_scaling.mechanisms.build import cache_root

SOURCE = Path(__file__).with_name("shim.c")
LIBRARY_NAME = "libbmtk_scaling_sites.so"


def _mpi_header(lib: Path) -> Path:
    for candidate in (Path(sys.prefix) / "include" / "mpi.h", lib.parent.parent / "include" / "mpi.h"):
        if candidate.is_file():
            return candidate
    raise BmtkScalingError(f"multi-site latency: no mpi.h beside the MPI library {lib} (the PyPI mpich wheel "
                           "ships one in <venv>/include): reinstall the package's dependencies (pip install -e .)")


def _gcc() -> str:
    gcc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("gcc")
    if gcc is None:
        raise BmtkScalingError("multi-site latency compiles a small C library and needs gcc: install it "
                               "(apt-get install gcc), or run without sites")
    return gcc


def shim_library() -> Path:
    """The compiled shim (built on first use); BmtkScalingError when gcc or the MPI library is missing."""
    lib = find_mpi_library()
    if lib is None:
        raise BmtkScalingError("multi-site latency needs this environment's MPI library (PyPI mpich): "
                               "pip install the package's dependencies")
    lib = lib.resolve()
    header = _mpi_header(lib)
    gcc = _gcc()
    version = subprocess.run([gcc, "--version"], capture_output=True, text=True, check=False).stdout
    digest = hashlib.sha256()
    for part in (SOURCE.read_bytes(), header.read_bytes(), str(lib).encode(), version.encode()):
        digest.update(part + b"\0")
    out_dir = cache_root() / "sites" / digest.hexdigest()[:16]
    target = out_dir / LIBRARY_NAME
    if target.is_file():
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=out_dir)
    os.close(fd)
    cmd = [gcc, "-O2", "-shared", "-fPIC", "-Wall", "-o", tmp, str(SOURCE), f"-I{header.parent}", f"-L{lib.parent}",
           f"-l:{lib.name}", f"-Wl,-rpath,{lib.parent}"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        Path(tmp).unlink(missing_ok=True)
        raise RuntimeError(f"compiling the latency shim failed ({' '.join(cmd)}):\n{done.stderr}")
    os.replace(tmp, target)
    return target
