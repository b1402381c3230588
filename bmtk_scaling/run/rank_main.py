"""Run a SONATA simulation config with BMTK's bionet (the body of every generated ``run_bionet.py``).

Order matters: NEURON must be told where the MPI library is before it is imported, and MPI must be
initialised before ``bmtk.simulator.bionet`` is imported (bmtk reads the rank count at import time).
The network and simulator are the plugin's subclasses of bionet's, so everything the config says
(engine, partition) is honoured without editing this script.

Options used by the runner (``bmtk-scaling run``): ``--expect-ranks`` makes NEURON's silent serial
fallback an error, ``--metrics`` writes per-rank timings and memory, ``--status-dir`` leaves one small
file per rank naming its current phase so a hung run can be reported rank by rank.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import socket
import sys
import time
import traceback
from pathlib import Path

from bmtk_scaling import progress
from bmtk_scaling.atomic import write_text_atomic
from bmtk_scaling.environment import configure_neuron_environment, end_with_runner, finalize_mpi

FAILURE_TAG = "bmtk-scaling rank"
# what a rank refuses on purpose (a config it cannot run): its message is the whole story; anything else is a bug
BAD_INPUT = (ValueError, NotImplementedError)


class _RankStatus:
    """Phase of this rank, written to ``<dir>/rank<k>.status`` (nothing when no directory is given)."""

    def __init__(self, directory: Path | None, rank: int) -> None:
        self.path = Path(directory) / f"rank{rank}.status" if directory else None

    def set(self, phase: str) -> None:
        if self.path is not None:
            write_text_atomic(self.path, phase + "\n")


def run_bionet(config: Path, metrics: Path | None = None, expect_ranks: int | None = None,
               status_dir: Path | None = None, output_dir: Path | None = None,
               mechanisms_dir: Path | None = None) -> None:
    """Build the network of ``config`` with bionet and simulate it (one MPI rank or many).

    ``output_dir``: where this run writes (the runner's fresh folder). Without it (``python
    run_bionet.py CONFIG``), rank 0 checks the config as the runner does, stages the outputs in a fresh
    folder and puts it in place of the config's output_dir only when every rank has finished.
    """
    with contextlib.ExitStack() as stack:
        _run(config, metrics, expect_ranks, status_dir, output_dir, mechanisms_dir, stack)


def _run(config: Path, metrics: Path | None, expect_ranks: int | None, status_dir: Path | None,
         output_dir: Path | None, mechanisms_dir: Path | None, stack: contextlib.ExitStack) -> None:
    t_start = time.perf_counter()
    configure_neuron_environment()
    if os.environ.get(progress.RELAY_ENV) == "relay":
        progress.unbuffer_c_stdout()  # CoreNEURON's progress bar reaches the runner as it is drawn
    # SONATA resolves relative paths against the config's folder, bmtk against the working directory.
    config = Path(config).absolute()
    metrics = Path(metrics).absolute() if metrics else None
    status_dir = Path(status_dir).absolute() if status_dir else None
    os.chdir(config.parent)
    from neuron import h

    h.nrnmpi_init()
    pc = h.ParallelContext()
    rank, nhost = int(pc.id()), int(pc.nhost())
    status = _RankStatus(status_dir, rank)
    status.set("starting")
    if expect_ranks is not None and nhost != expect_ranks:
        under_srun = "SLURM_STEP_ID" in os.environ
        raise RuntimeError(
            f"NEURON sees {nhost} rank(s) but {expect_ranks} were launched: it did not load MPI and fell back "
            f"to serial (MPI_LIB_NRN_PATH={os.environ.get('MPI_LIB_NRN_PATH')!r})"
            + (", or srun's --mpi plugin is not the PMI this MPI speaks (PyPI mpich needs --mpi=pmi2, which the srun "
               "launcher passes unless SLURM_MPI_TYPE is set)" if under_srun else "")
        )
    staging = None
    if output_dir is None:  # run directly, not by the runner: check and stage here (rank 0 for every rank)
        path = None
        if rank == 0:
            staging, plan = _stage_outputs(config, nhost, stack)
            path = (str(staging.folder), str(plan.mechanisms_dir) if plan.mechanisms_dir else None)
        path = pc.py_broadcast(path, 0)
        output_dir, mechanisms_dir = Path(path[0]), (Path(path[1]) if path[1] else None)
    from bmtk.simulator import bionet

    import bmtk_scaling.bionet.cell_drive  # noqa: F401  (registers the attach_drive cell processor)
    from bmtk_scaling.bionet.network import ScalingBioNetwork
    from bmtk_scaling.bionet.simulator import ScalingBioSimulator
    from bmtk_scaling.config.settings import read_settings
    from bmtk_scaling.environment import require_gpu_support
    from bmtk_scaling.sonata.configs import resolved_for_bmtk

    conf = bionet.Config.from_dict(resolved_for_bmtk(config, Path(output_dir).absolute(), mechanisms_dir),
                                   validate=True)
    settings = read_settings(conf, where=str(config))  # refused here, before any cell is built
    if settings.engine.gpu:
        require_gpu_support()
    conf.build_env()
    t_loaded = time.perf_counter()
    rss_loaded = _current_rss_mib()
    status.set("building")
    net = ScalingBioNetwork.from_config(conf)
    sim = ScalingBioSimulator.from_config(conf, network=net)
    t_built = time.perf_counter()
    netcons, synapse_objects = net.connection_counts()  # before the run: CoreNEURON file mode frees the model
    n_cells = len(net.get_local_cells())
    status.set("simulating")
    sim.run()
    t_end = time.perf_counter()
    status.set("done")
    later = sim.later_parts  # build cycles 2..N, built (and freed) during the run
    n_cells, netcons, synapse_objects = (n_cells + later["cells"], netcons + later["netcons"],
                                         synapse_objects + later["synapse_objects"])

    mine = {
        "rank": rank,
        "host": socket.gethostname(),
        "slurm_node": os.environ.get("SLURMD_NODENAME"),  # where SLURM placed this rank (None outside SLURM)
        "load_s": t_loaded - t_start,
        "build_s": t_built - t_loaded + sim.timings.get("build_parts", 0.0),
        **{f"{k}_s": v for k, v in sim.timings.items()},
        "total_s": t_end - t_start,
        # file mode measures NEURON's phase and CoreNEURON's apart (and restarts the process's peak in between)
        "peak_rss_mib": max([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                             *(v for v in sim.memory.values() if v == v)]),
        **sim.memory,
        "rss_before_build_mib": rss_loaded,
        "cells": n_cells,
        "netcons": netcons,
        "synapse_objects": synapse_objects,
        **sim.rank_load(),
    }
    gathered = pc.py_allgather(mine)
    if rank == 0 and metrics is not None:
        summary = {"engine": sim.settings.engine.value, "neuron_loop": sim.settings.neuron_loop,
                   "psolve": sim.settings.uses_psolve, "nhost": nhost, "exchange": sim.exchange_in_force,
                   "ranks": sorted(gathered, key=lambda m: m["rank"]), "notes": [*net.notes, *_sites_notes(settings)]}
        write_text_atomic(metrics, json.dumps(summary, indent=2) + "\n")
    pc.barrier()
    if staging is not None:
        staging.commit()


def _sites_notes(settings) -> list[str]:
    """A config with sites run without the latency shim (python run_bionet.py under mpiexec) ran on one site."""
    from bmtk_scaling.sites import shim_counters

    if settings.sites.model is None or shim_counters() is not None:
        return []
    return ["the config places ranks on sites, but the latency shim was not loaded (only bmtk-scaling run loads "
            "it): this run had no added latency"]


def _stage_outputs(config: Path, nhost: int, stack: contextlib.ExitStack):
    """The runner's checks and output staging, for a run started without the runner (rank 0 only)."""
    from bmtk_scaling.atomic import begin_staging, exclusive_lock, read_marker
    from bmtk_scaling.run.preflight import plan_run

    plan = plan_run(config, nhost)
    stack.enter_context(exclusive_lock(plan.output_dir))
    staging = begin_staging(plan.output_dir, kind="run output")
    # removed if the run failed; kept (its marker says so) if only the final rename failed: the results are there
    stack.callback(lambda: staging.folder.exists() and not (read_marker(staging.folder) or {}).get("kept")
                   and staging.abort())
    if plan.beside is not None:  # the config's folder holds the user's files: said before anything is built
        print(f"bmtk-scaling: {plan.where()}", flush=True)
    for note in plan.notes:
        print(f"bmtk-scaling: {note}", flush=True)
    return staging, plan


def report_failure(rank: int, err: BaseException, status_dir: Path | None) -> None:
    """Tell the runner why this rank failed: the tagged line and the traceback in one write to stderr (ranks
    writing at once never share a line), and ``rank<k>.error`` (JSON) in ``status_dir`` for the runner to read."""
    tb = "".join(traceback.format_exception(err))
    text = f"{FAILURE_TAG} {rank}: {type(err).__name__}: {err}\n{tb}"
    data = text.encode(errors="replace")
    while data:
        try:
            data = data[os.write(2, data):]
        except OSError:
            break
    if status_dir:
        bad_input = isinstance(err, BAD_INPUT)
        write_text_atomic(Path(status_dir) / f"rank{rank}.error", json.dumps(
            {"error": f"{type(err).__name__}: {err}", "bad_input": bad_input, "traceback": tb}) + "\n")
        _RankStatus(status_dir, rank).set(f"failed: {type(err).__name__}: {err}")


def _current_rss_mib() -> float:
    """Resident memory now (Linux), to separate the model's memory from the interpreter's."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, IndexError, ValueError):
        return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_bionet.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path, help="SONATA simulation config (simulation_config.json)")
    parser.add_argument("--metrics", type=Path, help="write per-rank timings and memory to this JSON file")
    parser.add_argument("--expect-ranks", type=int, help="fail unless NEURON sees exactly this many MPI ranks")
    parser.add_argument("--status-dir", type=Path, help="folder for per-rank phase files")
    parser.add_argument("--output-dir", type=Path, help="write the outputs here (the runner's fresh folder)")
    parser.add_argument("--mechanisms-dir", type=Path, help="load these compiled mechanisms (the runner's choice)")
    args = parser.parse_args(argv)
    end_with_runner()
    if not args.config.is_file():
        print(f"error: simulation config {args.config} not found", file=sys.stderr)
        return 2
    try:
        run_bionet(args.config, metrics=args.metrics, expect_ranks=args.expect_ranks, status_dir=args.status_dir,
                   output_dir=args.output_dir, mechanisms_dir=args.mechanisms_dir)
    except Exception as err:  # one line the runner can attribute to this rank, then the traceback
        rank = os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
        report_failure(int(rank), err, args.status_dir)
        os._exit(1)  # exit now: other ranks may be blocked in a collective; mpiexec stops them
    finalize_mpi()  # else mpiexec may kill ranks that are still exiting (see mpi_env.finalize_mpi)
    return 0


if __name__ == "__main__":
    sys.exit(main())
