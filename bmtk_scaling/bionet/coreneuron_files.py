"""CoreNEURON file mode: NEURON writes the model, lets go of it, and CoreNEURON runs it from the files.

Why: CoreNEURON's online (in-memory) mode keeps NEURON's copy of the model beside CoreNEURON's, so
peak memory is their sum. Here CoreNEURON is loaded only after NEURON has freed its copy, into the
memory NEURON gave back, so the peak is NEURON's model plus ``nrncore_write``'s temporary buffers.
Measured (PING 2x1250: 2500 cells, 562,611 Exp2Syn+NetCon, stock bionet edges, 300 ms; peak RSS
per rank, 1 rank / 2 ranks): NEURON psolve 1303 / 743 MiB; CoreNEURON online 1488 / 838 MiB;
this module 1374 / 793 MiB. CoreNEURON's own copy is 145 MiB (``special-core`` alone: 187 MiB peak).
With build cycles (:mod:`build_cycles`) NEURON holds one part of the model at a time, so the peak
falls to the larger of one part and CoreNEURON's copy.

Sequence, :func:`run_file_mode` (in-process, collective on every MPI rank, NEURON 9.0.2):

1. :func:`write_model`: ``h.finitialize(v_init)``, then ``pc.nrncore_write(dat_dir)``: per rank
   ``<group>_1.dat``/``<group>_2.dat``, plus ``files.dat``, ``bbcore_mech.dat``, ``globals.dat``.
   Neither ``cache_efficient`` (NEURON 9 data always are) nor ``set_maxstep`` is needed: the exchange
   interval is ``--mindelay``, capped by the smallest NetCon delay in the files.
2. :func:`release_neuron_model` empties, in place, everything the simulator reaches of NEURON's
   model (the caller still holds ``sim`` and the network, so deleting names would free nothing).
   Deleting a cell also removes its gid from NEURON: no ``pc.spike_record``/``psolve`` afterwards.
3. ``coreneuron.file_mode = True``, then ``pc.nrncore_run("--datpath D ... --skip-write-model-to-disk")``.
   The flag makes CoreNEURON read the files, not NEURON's memory, run its own ``finitialize``
   (``--voltage v_init``, then the INITIAL blocks, as NEURON's ``finitialize(v_init)`` does) and
   write ``<out>/out.dat`` (one file, written collectively over MPI). Without ``file_mode = True``
   the call reads through NEURON's in-memory callbacks and segfaults (``nrnthread_dat1``). NEURON
   passes MPI and its MPI library on itself, and sets CoreNEURON's OpenMP threads to its own count.
4. :func:`read_out_dat`: each rank keeps its own cells' spikes, as exact doubles.

Spike times: out.dat prints ``"%.8g\\t%d"`` (207.900000000113 becomes 207.9). NEURON and CoreNEURON
stamp a threshold crossing at ``t + 1e-10``, ``t`` accumulated by two half-step additions per fixed
step, so the printed value names its step and :func:`exact_spike_times` rebuilds the very double
that NEURON's ``psolve`` records, or raises if a time is off that grid. Valid for cells with a
threshold detector (every bionet biophysical cell), runs starting at t = 0, and ``t < dt * 5e6``.

Out of process, :func:`standalone_command`: NEURON ranks write and exit, then ``mpiexec -n R
<mech>/x86_64/special-core --mpi --mpi-lib <neuron>/.data/lib/libcorenrnmpi_mpich.so ...`` runs the
files. Same spikes, same peak (the writer's); it needs ``LD_PRELOAD=<venv>/lib/libmpi.so.12`` (the
wheel's ``libcorenrnmpi_mpich.so`` does not link libmpi: "undefined symbol: MPI_Allgather") and
``OMP_NUM_THREADS=1``, and a second launch plus a spike-file conversion outside bionet.
"""

from __future__ import annotations

import functools
import gc
import importlib.util
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import BuiltinFunctionType, FunctionType, MethodType, ModuleType
from typing import Any

import numpy as np
import pandas as pd

from bmtk_scaling.errors import BmtkScalingError
from bmtk_scaling.mechanisms import corenrn_library, export_coreneuron_library

__all__ = [
    "SPIKE_TEPS",
    "coreneuron_arguments",
    "exact_spike_times",
    "read_out_dat",
    "release_neuron_model",
    "run_file_mode",
    "standalone_command",
    "write_model",
]

log = logging.getLogger(__name__)

SPIKE_TEPS = 1e-10  # NEURON/CoreNEURON stamp a threshold crossing at t + teps (PreSyn::send(nt->_t + teps))
_PRINTED_REL_ERR = 5.000001e-8  # "%.8g" keeps 8 significant digits
# hoc classes that are not part of the model: dropping them frees nothing and may break later code.
_NOT_MODEL = frozenset({"Vector", "ParallelContext", "CVode", "File", "StringFunctions", "Timer", "Random",
                        "Matrix", "Deck", "Graph", "VBox", "HBox"})


def _hoc():
    from neuron import h

    return h, h.ParallelContext()


@functools.cache
def _neuron_types() -> tuple[type, type, type]:
    from neuron import hoc, nrn  # imported here so that reading spikes needs no NEURON

    return hoc.HocObject, nrn.Section, nrn.Segment


def _is_model_object(value: object) -> bool:
    """A NEURON section, segment or hoc object instance that belongs to the model (not a Vector etc.)."""
    hoc_object, section, segment = _neuron_types()
    if isinstance(value, section | segment):
        return True
    if isinstance(value, hoc_object) and not isinstance(value, type):
        try:
            name = value.hname()
        except (RuntimeError, TypeError, AttributeError):  # pointers (_ref_v) and other non-objects
            return False
        cls, bracket, _ = name.partition("[")
        return bool(bracket) and cls not in _NOT_MODEL
    if isinstance(value, np.ndarray) and value.dtype == object and value.size:
        return _is_model_object(value.flat[0])
    if isinstance(value, tuple | frozenset):
        return any(_is_model_object(item) for item in value)
    return False


_SKIP_TYPES = (type, ModuleType, FunctionType, BuiltinFunctionType, MethodType, str, bytes, int, float, complex,
               bool, np.ndarray, np.generic, pd.DataFrame, pd.Series, pd.Index)
_SCALARS = (str, bytes, int, float, complex, bool, np.generic)


def _hollow(obj: object) -> None:
    """Empty every attribute of ``obj`` except scalars (a cell keeps its gid, node id and population)."""
    attrs = vars(obj)
    for name, value in attrs.items():
        if value is None or isinstance(value, _SCALARS):
            continue
        attrs[name] = next((kind() for kind in (list, dict, set, tuple) if isinstance(value, kind)), None)


def _drop_model_references(roots: Iterable[object], keep: Iterable[object]) -> None:
    """Remove model objects from every list, dict, set and attribute reachable from ``roots``.

    Traversal uses ``gc.get_referents``: reading ``vars()`` of every object would give each one a
    real ``__dict__`` (CPython 3.11 keeps attributes inline), which costs more memory than is freed.
    """
    skip = (*_SKIP_TYPES, *_neuron_types())
    seen = {id(obj) for obj in keep}
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, skip):
            continue
        seen.add(id(obj))
        if isinstance(obj, list):
            if any(_is_model_object(item) for item in obj):
                obj[:] = [item for item in obj if not _is_model_object(item)]
            stack.extend(obj)
        elif isinstance(obj, dict):
            for key in [k for k, v in obj.items() if _is_model_object(k) or _is_model_object(v)]:
                del obj[key]
            stack.extend(obj.values())
        elif isinstance(obj, set):
            obj.difference_update([item for item in obj if _is_model_object(item)])
            stack.extend(obj)
        elif isinstance(obj, tuple | frozenset):
            stack.extend(obj)
        else:
            refs = gc.get_referents(obj)
            attrs = getattr(obj, "__dict__", None) if any(type(r) is dict for r in refs) else None
            if attrs is None and any(_is_model_object(r) for r in refs):
                attrs = vars(obj)  # a real __dict__ only for objects that hold a model object themselves
            if isinstance(attrs, dict):
                for name in [n for n, v in attrs.items() if _is_model_object(v)]:
                    attrs[name] = None  # an attribute: keep the name, drop the object
                seen.add(id(attrs))
                refs = list(attrs.values())
            stack.extend(refs)


def release_neuron_model(sim, keep: Iterable[object] = ()) -> dict[str, int]:
    """Let NEURON free the model built by ``sim`` (a bionet simulator); return the objects still alive.

    Why in place: the caller (bionet's run script) still holds ``sim`` and the network, so deleting
    names frees nothing. This rank's cells are hollowed (only scalar attributes such as the gid
    stay: their sections, synapses, NetCons and bmtk's per-edge Python objects go at once, most of the
    memory), then every list, dict, set and attribute reachable from ``sim`` loses its sections,
    segments, point processes, NetCons, cell templates and hoc Lists (e.g. input VecStims, clamps,
    lean-edge NetCon lists). Vectors (spike recordings) and objects in ``keep`` stay. Objects still
    alive afterwards are held from elsewhere (a local variable, a module global): counted and logged.
    """
    from bmtk_scaling._bmtk_private import forget_morphologies

    h, _ = _hoc()
    for cell in list(sim.net.get_local_cells().values()):
        _hollow(cell)
    _drop_model_references([sim], keep)
    forget_morphologies()  # bionet keeps the first cell of each morphology file alive in a module-wide cache
    gc.collect()
    left = {"sections": sum(1 for _ in h.allsec()), "netcons": int(h.List("NetCon").count())}
    if any(left.values()):
        log.warning("NEURON objects still referenced after release (memory not freed): %s", left)
    return left


def write_model(dat_dir: Path, v_init: float, append: bool = False) -> Path:
    """Initialise the built model and write it for CoreNEURON into ``dat_dir`` (collective on all ranks).

    ``append``: add this model's datasets to those already in ``dat_dir`` (a later build cycle):
    NEURON's ``nrncore_write(path, 1)`` appends their group ids to ``files.dat`` and updates its count.
    A dataset is named by the first gid of its thread, so parts with different cells never collide.
    """
    h, pc = _hoc()
    dat_dir = Path(dat_dir).absolute()
    if int(pc.id()) == 0 and not append:
        shutil.rmtree(dat_dir, ignore_errors=True)  # stale files of a run with more ranks would be read
        dat_dir.mkdir(parents=True)
    pc.barrier()
    h.finitialize(v_init)
    pc.nrncore_write(str(dat_dir), 1 if append else 0)
    pc.barrier()
    return dat_dir


def _check_path(path: Path) -> str:
    text = str(Path(path).absolute())
    if any(c.isspace() for c in text):
        raise BmtkScalingError(f"CoreNEURON splits its arguments on spaces; use a path without whitespace: {text!r}")
    return text


def coreneuron_arguments(dat_dir: Path, out_dir: Path, tstop: float, dt: float, v_init: float, celsius: float,
                         verbose: int = 1, extra: Sequence[str] = (), mindelay: float = 10.0) -> list[str]:
    """CoreNEURON command-line options for a file-mode run (long forms: ``-v`` means both --voltage and
    --version). Floats are written with ``repr`` so CoreNEURON parses exactly NEURON's values."""
    return ["--datpath", _check_path(dat_dir), "--outpath", _check_path(out_dir), "--tstop", repr(float(tstop)),
            "--dt", repr(float(dt)), "--celsius", repr(float(celsius)), "--voltage", repr(float(v_init)),
            "--mindelay", repr(float(mindelay)), "--verbose", str(int(verbose)), *extra]


def _time_grid(n_steps: int, dt: float) -> np.ndarray:
    """t after each fixed step 0..n_steps, accumulated as NEURON and CoreNEURON do: t += dt/2 twice."""
    halves = np.cumsum(np.full(2 * n_steps, 0.5 * dt))  # sequential sums, bit for bit as in C
    return np.concatenate(([0.0], halves[1::2]))


def exact_spike_times(printed: np.ndarray, dt: float) -> np.ndarray:
    """The doubles behind out.dat's 8-digit spike times (see module docstring); ValueError if off the grid."""
    printed = np.asarray(printed, dtype=np.float64)
    if printed.size == 0:
        return printed.copy()
    tol = _PRINTED_REL_ERR * np.abs(printed) + 1e-12
    if tol.max() >= dt / 4:
        raise BmtkScalingError(f"spike times up to {printed.max():g} ms printed with 8 digits cannot be told apart "
                         f"at dt = {dt:g} ms (needs t < dt * 5e6)")
    steps = np.rint((printed - SPIKE_TEPS) / dt).astype(np.int64)
    if steps.min() < 0:
        raise BmtkScalingError(f"negative spike time in out.dat: {printed.min():g}")
    grid = _time_grid(int(steps.max()) + 2, dt) + SPIKE_TEPS
    candidates = grid[np.clip(steps[None, :] + np.array([[-1], [0], [1]]), 0, grid.size - 1)]
    best = candidates[np.argmin(np.abs(candidates - printed), axis=0), np.arange(printed.size)]
    off = np.abs(best - printed) > tol
    if off.any():
        bad = printed[off][:5]
        raise BmtkScalingError(f"{int(off.sum())} spike time(s) are not threshold crossings on the dt = {dt:g} ms grid "
                         f"(e.g. {bad.tolist()}): artificial-cell spikes or a run not starting at t = 0?")
    return best


def read_out_dat(path: Path, dt: float, gids: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CoreNEURON's ``out.dat`` as (times, gids) arrays sorted by time then gid, times exact (see above).

    ``gids`` keeps only those cells' spikes (e.g. this rank's cells, or the recorded ones: CoreNEURON
    writes every gid with a spike detector, virtual input cells included).
    """
    path = Path(path)
    if path.stat().st_size == 0:
        return np.empty(0), np.empty(0, dtype=np.int64)
    table = pd.read_csv(path, sep="\t", header=None, names=["t", "gid"], dtype={"t": np.float64, "gid": np.int64})
    times, ids = table["t"].to_numpy(), table["gid"].to_numpy()
    keep = ids >= 0
    if gids is not None:
        keep &= np.isin(ids, np.fromiter(gids, dtype=np.int64))
    times = exact_spike_times(times[keep], dt)
    ids = ids[keep]
    order = np.lexsort((ids, times))
    return times[order], ids[order]


def run_file_mode(sim, tstop: float, dt: float, v_init: float, celsius: float, work_dir: Path, *,
                  verbose: int = 1, extra_args: Sequence[str] = (), keep_files: bool = False,
                  mindelay: float = 10.0, more_parts: Iterable[Callable[[], Any]] = (),
                  stats: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Run a built bionet model on CoreNEURON from files; return this rank's cells' spikes (times, gids).

    Call on every rank after the network is built, instead of ``finitialize``/``psolve``; the sequence
    and why are in the module docstring. Afterwards ``sim`` holds no NEURON objects and its cells only
    scalars (gid, node id): count cells and NetCons before. bmtk's ``SpikesMod.block`` re-arms
    ``pc.spike_record`` on the deleted gids (a hoc error): give the returned spikes to its writer
    directly. Vector recordings (soma reports) are not in the files and stay empty. ``work_dir``
    must be one folder seen by every rank; its ``coredat`` and ``out`` are removed unless ``keep_files``.
    ``extra_args`` go to CoreNEURON as they are (e.g. ``["--cell-permute", "1"]``).

    ``more_parts``: build cycles after ``sim`` (:mod:`build_cycles`), each a call that builds the next
    part of this rank's cells and returns its simulator; every rank must pass as many. Each part is
    written after the one before was freed and NEURON's gid table cleared, so an edge from a cell of
    another part reaches its source by gid, as an edge from another rank does. ``stats``, if given,
    receives the seconds spent writing and freeing (``write_s``), building later parts
    (``build_parts_s``), in CoreNEURON (``coreneuron_s``), and the peak resident memory before and
    during CoreNEURON's run (``build_peak_rss_mib``, ``coreneuron_peak_rss_mib``).
    """
    from neuron import coreneuron

    from bmtk_scaling.bionet.peak_memory import peak_rss_mib, release_free_heap, reset_peak_rss

    h, pc = _hoc()
    rank = int(pc.id())
    mech_dir = getattr(sim, "mechanisms_dir", None)
    if mech_dir:
        export_coreneuron_library(Path(mech_dir))  # before CoreNEURON's library is first loaded
    work_dir = Path(work_dir).absolute()
    out_dir = work_dir / "out"
    gids = {int(g) for g in sim.net.get_local_cells()}
    timing = {"write_s": 0.0, "build_parts_s": 0.0}

    t0 = time.perf_counter()
    dat_dir = write_model(work_dir / "coredat", v_init)
    left = release_neuron_model(sim)
    timing["write_s"] += time.perf_counter() - t0
    for build in more_parts:
        pc.gid_clear()  # the freed part's gids: a later part reaches them as sources by gid, not as cells here
        release_free_heap()
        t0 = time.perf_counter()
        part = build()
        gids.update(int(g) for g in part.net.get_local_cells())
        t1 = time.perf_counter()
        write_model(dat_dir, v_init, append=True)
        left = release_neuron_model(part)
        del part
        timing["build_parts_s"] += t1 - t0
        timing["write_s"] += time.perf_counter() - t1
    release_free_heap()
    local_gids = np.array(sorted(gids), dtype=np.int64)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    pc.barrier()
    build_peak = peak_rss_mib()
    separate = reset_peak_rss()
    args = coreneuron_arguments(dat_dir, out_dir, tstop, dt, v_init, celsius, verbose, extra_args, mindelay)
    t0 = time.perf_counter()
    with coreneuron(file_mode=True):
        pc.nrncore_run(" ".join([*args, "--skip-write-model-to-disk"]))
    pc.barrier()
    timing["coreneuron_s"] = time.perf_counter() - t0
    run_peak = peak_rss_mib()
    times, gids_out = read_out_dat(out_dir / "out.dat", dt, local_gids)
    pc.barrier()
    if rank == 0 and not keep_files:
        shutil.rmtree(dat_dir, ignore_errors=True)
        shutil.rmtree(out_dir, ignore_errors=True)
    log.info("CoreNEURON file mode: %d spikes on rank %d (NEURON objects left: %s)", times.size, rank, left)
    if stats is not None:
        stats.update(timing, build_peak_rss_mib=build_peak,
                     coreneuron_peak_rss_mib=run_peak if separate else float("nan"))
    return times, gids_out


def standalone_command(mech_dir: Path, dat_dir: Path, out_dir: Path, tstop: float, dt: float, v_init: float,
                       celsius: float, ranks: int = 1, *, mpiexec: Path | None = None, verbose: int = 1,
                       extra: Sequence[str] = ()) -> tuple[list[str], dict[str, str]]:
    """argv and environment to run files written by :func:`write_model` with ``special-core`` (no NEURON).

    Any ``ranks`` works: CoreNEURON deals the written datasets (one per NEURON rank and thread) over
    its ranks, and idles the extra ones. Spikes land in ``out_dir/out.dat`` (:func:`read_out_dat`).
    """
    from bmtk_scaling.environment import find_mpi_library, mpiexec_path

    core = Path(mech_dir) / corenrn_library(mech_dir).parent.name / "special-core"
    if not core.is_file():
        raise FileNotFoundError(f"{core} not found: compile the mechanisms with 'nrnivmodl -coreneuron'")
    argv = [str(core), *coreneuron_arguments(dat_dir, out_dir, tstop, dt, v_init, celsius, verbose, extra)]
    env = dict(os.environ)
    # OpenMP would start one thread per core in every rank: 2 ranks x 2 threads on 2 cores ran 25x slower.
    # (NEURON's in-process launch sets the OpenMP threads to its own thread count for the same reason.)
    env.setdefault("OMP_NUM_THREADS", "1")
    if ranks > 1:
        mpi = find_mpi_library()
        if mpi is None:
            raise FileNotFoundError("no libmpi in this environment (pip install mpich)")
        spec = importlib.util.find_spec("neuron")  # located, not imported: no hoc interpreter in this process
        package = Path(next(iter(spec.submodule_search_locations))) if spec else Path()
        lib = package / ".data" / "lib" / f"libcorenrnmpi_{_mpi_flavour(mpi)}.so"
        if not lib.is_file():
            raise FileNotFoundError(f"CoreNEURON MPI library {lib} not found")
        argv = [str(mpiexec or mpiexec_path()), "-n", str(int(ranks)), *argv, "--mpi", "--mpi-lib", str(lib)]
        # libcorenrnmpi_*.so resolves MPI symbols from the process, it does not link libmpi itself.
        env["LD_PRELOAD"] = " ".join(p for p in (str(mpi), env.get("LD_PRELOAD", "")) if p)
    return argv, env


def _mpi_flavour(libmpi: Path) -> str:
    return "ompi" if "libmpi.so.40" in libmpi.name else "mpich"
