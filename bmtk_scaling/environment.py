"""What the process needs before NEURON is imported, and what this NEURON installation can do.

NEURON loads MPI with dlopen and silently falls back to serial (every rank runs the whole model)
when ``MPI_LIB_NRN_PATH`` does not name a loadable ``libmpi``. The PyPI ``mpich`` package ships that
library into the environment's ``lib/``; we point NEURON at it so users never export it by hand.

GPU support cannot be asked of NEURON in-process: a wheel built without it does not raise,
``coreneuron.gpu = True`` followed by a psolve prints "GPU support was not enabled at build time" and
exits the whole process with status 42. So :func:`probe_gpu_support` tries a one-cell model in a
child process, once per process, and :func:`require_gpu_support` is the one check every command uses.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from bmtk_scaling.errors import BmtkScalingError, GpuUnavailableError

_MPI_SONAMES = ("libmpi.so.12", "libmpi.so.40")
CACHE_ENV = "BMTK_SCALING_CACHE"
PARENT_ENV = "BMTK_SCALING_PARENT_PID"  # set for the ranks: they end when the command that started them dies
_PR_SET_PDEATHSIG = 1


def end_with_parent(signum: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` that has the kernel send ``signum`` to the child when this process dies
    (Linux ``PR_SET_PDEATHSIG``); elsewhere than Linux it does nothing.

    The runner starts mpiexec (or srun) with it: if the command is killed, even with SIGKILL, mpiexec
    gets SIGTERM and stops its ranks; each rank also ends with its own parent (:func:`end_with_runner`).
    libc is looked up here, in the parent: the child only makes the call (no loading after fork).
    """
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return lambda: None
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the call took effect
            os.kill(os.getpid(), int(signum))

    return hook


def end_with_runner() -> None:
    """In a rank the runner started: die with the launcher, and exit at once if the runner is already gone."""
    runner = os.environ.get(PARENT_ENV)
    if not runner:
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass
    try:
        os.kill(int(runner), 0)
    except ProcessLookupError:
        os._exit(1)
    except (PermissionError, ValueError):
        pass


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


def is_whole_library(path: Path) -> bool:
    """Whether ``path`` is a complete ELF shared library: a truncated one (a full disk, a killed copy) would load
    and then crash the rank with "Bus error" far from its cause, so it is rebuilt instead."""
    import struct

    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError:
        return False
    if len(head) < 52 or head[:4] != b"\x7fELF" or head[4] not in (1, 2) or head[5] not in (1, 2):
        return False
    order = "<" if head[5] == 1 else ">"
    if head[4] == 2:  # 64-bit: e_shoff at 0x28, e_shentsize and e_shnum at 0x3A
        if len(head) < 64:
            return False
        (shoff,) = struct.unpack_from(order + "Q", head, 0x28)
        shentsize, shnum = struct.unpack_from(order + "HH", head, 0x3A)
    else:
        (shoff,) = struct.unpack_from(order + "I", head, 0x20)
        shentsize, shnum = struct.unpack_from(order + "HH", head, 0x2E)
    return shoff + shentsize * shnum <= size


def configure_neuron_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Set the variables NEURON reads at import time, keeping any the user set explicitly.

    Works on ``os.environ`` by default, or on a copy meant for a child process.
    """
    env = os.environ if environ is None else environ
    env.setdefault("NEURON_MODULE_OPTIONS", "-nogui")
    # The mpich wheel's UCX takes SIGHUP for its debug mode, so a hung-up terminal would not stop a run: let
    # SIGHUP mean what it means (the CLI's handler stops the children and cleans up).
    env.setdefault("UCX_DEBUG_SIGNO", "0")
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


_PROBE = """
from neuron import h, coreneuron
h.load_file("stdrun.hoc")
soma = h.Section(name="soma")
soma.insert("hh")
pc = h.ParallelContext()
pc.set_gid2node(0, 0)
nc = h.NetCon(soma(0.5)._ref_v, None, sec=soma)
pc.cell(0, nc)
h.cvode.cache_efficient(1)
coreneuron.enable = True
coreneuron.gpu = True
h.finitialize(-65)
pc.psolve(1.0)
print("GPU-PROBE-OK")
"""

HOW_TO_GET_GPU = (
    "GPU runs need NEURON built with CoreNEURON GPU support (NVIDIA HPC SDK, "
    "cmake -DCORENRN_ENABLE_GPU=ON; see nrn.readthedocs.io 'CoreNEURON' install docs) and an NVIDIA GPU; "
    "the PyPI 'neuron' wheel has none. Use the engine coreneuron to run CoreNEURON on the CPU."
)


@dataclass(frozen=True)
class GpuSupport:
    available: bool
    reason: str


@functools.lru_cache(maxsize=1)
def probe_gpu_support(timeout: float = 120.0) -> GpuSupport:
    """Run the probe once per process; never raises."""
    env = configure_neuron_environment(dict(os.environ))
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return GpuSupport(False, f"the GPU probe did not finish within {timeout:.0f} s")
    out = proc.stdout + proc.stderr
    if proc.returncode == 0 and "GPU-PROBE-OK" in out:
        return GpuSupport(True, "CoreNEURON ran a probe model on the GPU")
    if "GPU support was not enabled" in out or proc.returncode == 42:
        return GpuSupport(False, "this NEURON build has no CoreNEURON GPU support (probe exited with status "
                          f"{proc.returncode}: 'GPU support was not enabled at build time')")
    tail = " | ".join(out.strip().splitlines()[-3:])
    return GpuSupport(False, f"the GPU probe failed with status {proc.returncode}: {tail}")


def require_gpu_support() -> None:
    """Raise GpuUnavailableError, before any run, when GPU execution is not possible here."""
    support = probe_gpu_support()
    if not support.available:
        raise GpuUnavailableError(f"GPU requested but unavailable: {support.reason}. {HOW_TO_GET_GPU}")


def cache_root() -> Path:
    """Where compiled builds are cached: ``$BMTK_SCALING_CACHE``, else ``~/.cache/bmtk-scaling``, checked usable.

    An unset or empty HOME (or HOME=/) falls back to the account's home from the password database,
    never the filesystem root; a cache place that is a file or cannot be written is refused, naming
    the variable that moves it.
    """
    explicit = os.environ.get(CACHE_ENV, "").strip()
    if explicit:
        root = Path(explicit).expanduser().absolute()
    else:
        root = _home() / ".cache" / "bmtk-scaling"
    return _usable_cache(str(root))


def _home() -> Path:
    import pwd

    candidates = [os.environ.get("HOME", "")]
    try:
        candidates.append(pwd.getpwuid(os.getuid()).pw_dir)
    except KeyError:
        pass
    for home in candidates:
        if home and os.path.isabs(home) and os.path.realpath(home) != "/":
            return Path(home)
    raise BmtkScalingError(f"HOME is unset, empty or the filesystem root, and this account has no home folder: set "
                           f"{CACHE_ENV} to a writable folder for the compiled mechanisms (or set HOME)")


@functools.lru_cache(maxsize=8)
def _usable_cache(root: str) -> Path:
    path = Path(root)
    fix = f"set {CACHE_ENV} to a writable folder"
    if path.exists() and not path.is_dir():
        raise BmtkScalingError(f"the cache folder {path} is a file, not a folder: {fix}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        import tempfile

        os.rmdir(tempfile.mkdtemp(prefix=".probe-", dir=path))
    except OSError as err:
        raise BmtkScalingError(f"the cache folder {path} cannot be written ({err.strerror or err}): {fix}") from None
    return path
