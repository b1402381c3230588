"""Launch a simulation config under real MPI and measure it.

``run_config`` checks the config (:mod:`preflight`), then starts ``mpiexec -n R python -m
bmtk_scaling.run.rank_main CONFIG`` with the environment NEURON needs, a timeout, and a check that
NEURON really sees R ranks. A rank that fails is named with
its error; a run that hangs is stopped and each unfinished rank is named with the phase it was in.
Nothing is recorded as a result unless the whole run succeeded, and results files are written
atomically.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bmtk_scaling import progress
from bmtk_scaling.atomic import begin_staging, exclusive_lock
from bmtk_scaling.environment import PARENT_ENV, configure_neuron_environment, end_with_parent, mpiexec_path
from bmtk_scaling.errors import BmtkScalingError, RunFailed
from bmtk_scaling.run.preflight import check_output_location, check_timeout, plan_run
from bmtk_scaling.run.rank_main import FAILURE_TAG
from bmtk_scaling.run.result import RunResult
from bmtk_scaling.sites import SiteModel, rank_environment, read_rank_counts, shim_library
from bmtk_scaling.sonata.configs import LoadedConfig
from bmtk_scaling.sonata.spikes import read_spikes

LAUNCHERS = ("mpiexec", "srun")
_CORENEURON_BAR = re.compile(r"^psolve \|[= ]*\| t: ([\d.]+)\s+ETA")  # CoreNEURON's own progress bar, one redraw
# CoreNEURON's own timers, printed by rank 0 at verbose >= 1 on every psolve: its set-up, and its time loop
_CORENEURON_SETUP = re.compile(r"^\s*Setup Done\s*:\s*([\d.eE+-]+) seconds", re.M)
_CORENEURON_SOLVER = re.compile(r"^\s*Solver Time\s*:\s*([\d.eE+-]+)", re.M)


def launch_command(launcher: str, ranks: int) -> list[str]:
    """The MPI launcher prefix: this environment's mpiexec, or SLURM's srun inside an allocation."""
    if launcher == "mpiexec":
        return [str(mpiexec_path()), "-n", str(ranks)]
    if launcher == "srun":
        srun = shutil.which("srun")
        if srun is None:
            raise BmtkScalingError("launcher srun: no srun on PATH (run inside a SLURM job, or use the launcher "
                                   "mpiexec)")
        # The PyPI mpich wheel speaks PMI-2 to srun; without it (a cluster's MpiDefault is often none) every
        # rank would start as its own 1-rank world. SLURM_MPI_TYPE, when set, chooses instead (srun reads it).
        mpi = [] if os.environ.get("SLURM_MPI_TYPE") else ["--mpi=pmi2"]
        return [srun, "-n", str(ranks), *mpi, "--kill-on-bad-exit=1"]
    raise BmtkScalingError(f"launcher must be one of {LAUNCHERS}, got {launcher!r}")


def run_config(config: Path | LoadedConfig, ranks: int, timeout: float = 3600.0, quiet: bool = True,
               launcher: str = "mpiexec", sites: SiteModel | None = None, show_progress: bool = False,
               output_dir: Path | None = None, echo: Callable[[str], None] | None = None) -> RunResult:
    """Run ``config`` on ``ranks`` MPI processes and return its measurements; raise RunFailed otherwise.

    ``output_dir``: where the run writes instead of the config's ``output_dir``; without it, a folder
    beside that one where it holds files this tool did not write (:func:`~bmtk_scaling.run.preflight.choose_output`).
    ``echo`` is told where the outputs go as soon as that is decided, before anything is compiled or launched.

    ``show_progress``: render rank 0's progress (building, simulating) on stderr while the ranks work.
    ``sites`` (else the config's ``bmtk_scaling.sites``) places the ranks on emulated sites: the latency
    shim is preloaded into every rank and its counts come back in the result.
    Everything :func:`~bmtk_scaling.run.preflight.plan_run` checks is refused before any rank starts.
    The ranks write into a fresh hidden folder beside ``output_dir``, which replaces the last output
    only when the run succeeded: a failed, stopped or timed-out run costs nothing already there.
    """
    timeout = check_timeout(timeout)
    prefix = launch_command(launcher, ranks) if isinstance(ranks, int) and ranks >= 1 else None
    plan = plan_run(config, ranks, check_memory=launcher == "mpiexec",  # srun: the ranks' memory is elsewhere
                    output=output_dir, on_output=echo)
    config = plan.config
    sites = sites if sites is not None else plan.settings.sites.model
    if sites is not None:
        sites.check_ranks(ranks)
        library = shim_library()  # compiled (once) before any rank starts
    with exclusive_lock(plan.output_dir):
        check_output_location(plan.sim, plan.output_dir)  # again, now that no other run can write it
        staging = begin_staging(plan.output_dir, kind="run output")
        scratch = staging.folder / ".bmtk-scaling-run"  # metrics and per-rank phases; removed before commit
        scratch.mkdir()
        site_counts = None
        try:
            rank_prefix = [] if sites is None else rank_environment(sites, library, scratch)
            data, wall = _launch(prefix, rank_prefix, config, ranks, timeout, quiet, staging.folder, scratch,
                                 plan.mechanisms_dir, show_progress, plan.tstop)
            if sites is not None:
                site_counts = read_rank_counts(scratch, ranks)
            shutil.rmtree(scratch)
        except BaseException:
            staging.abort()
            raise
        staging.commit()  # if the rename fails, the results stay in staging and the error says where
    spikes = read_spikes(plan.spikes_file)
    return RunResult(config=str(config), ranks=ranks, engine=data["engine"], neuron_loop=data["neuron_loop"],
                     wall_s=wall, spikes_file=str(plan.spikes_file), spike_count=len(spikes), per_rank=data["ranks"],
                     notes=[*plan.notes, *data.get("notes", [])], predicted_imbalance=_predicted_imbalance(plan),
                     exchange=data.get("exchange", {}), sites=_sites_record(sites, site_counts),
                     output_dir=str(plan.output_dir), beside=str(plan.beside) if plan.beside else None)


def _sites_record(sites: SiteModel | None, counts: list[dict] | None) -> dict | None:
    """The site model in force and the shim's counts per rank: whole run, and the simulation alone."""
    if sites is None:
        return None
    return {"site_map": list(sites.site_map), "latency_ms": sites.latency_ms,
            "bandwidth_mbit_s": sites.bandwidth_mbit_s, "run_per_rank": counts}


def _predicted_imbalance(plan) -> float | None:
    if plan.settings.partition is None:
        return None
    from bmtk_scaling.partition.map_file import read_map

    return read_map(plan.sim.resolve(plan.settings.partition)).metrics.get("imbalance")


def _launch(prefix: list[str], rank_prefix: list[str], config: Path, ranks: int, timeout: float, quiet: bool,
            out_dir: Path, scratch: Path, mechanisms_dir: Path | None, show_progress: bool = False,
            tstop: float = 0.0) -> tuple[dict, float]:
    """Start the ranks, wait for them (or stop them), and return rank 0's metrics and the wall time."""
    metrics = scratch / "metrics.json"
    cmd = [*prefix, *rank_prefix, sys.executable, "-m", "bmtk_scaling.run.rank_main", str(config),
           "--metrics", str(metrics), "--expect-ranks", str(ranks), "--status-dir", str(scratch),
           "--output-dir", str(out_dir),
           *(["--mechanisms-dir", str(mechanisms_dir)] if mechanisms_dir else [])]
    env = configure_neuron_environment(dict(os.environ))
    env["PYTHONUNBUFFERED"] = "1"
    env[progress.RELAY_ENV] = "relay"  # rank 0's progress comes back as tagged lines, rendered here (or dropped)
    t0 = time.perf_counter()
    env[PARENT_ENV] = str(os.getpid())
    proc = subprocess.Popen(cmd, cwd=config.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, preexec_fn=end_with_parent())
    try:
        out, err = _communicate(proc, timeout, show_progress, tstop)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise RunFailed(f"{config.name} on {ranks} rank(s) did not finish within {timeout:g} s and was stopped; "
                        + _unfinished_ranks(scratch, ranks)) from None
    except BaseException:  # Ctrl-C or a signal: the ranks run in their own session, so stop them too
        _kill_group(proc)
        raise
    wall = time.perf_counter() - t0
    if not quiet:
        sys.stdout.write(out)
    if proc.returncode != 0:
        raise RunFailed(_failure_message(config, ranks, proc.returncode, out, err, scratch))
    if not metrics.is_file():
        raise RunFailed(f"{config.name}: mpiexec exited 0 but rank 0 wrote no metrics; output:\n" + _tail(out + err))
    data = json.loads(metrics.read_text())
    _add_coreneuron_timers(data, out)
    return data, wall


def _add_coreneuron_timers(data: dict, out: str) -> None:
    """Rank 0's CoreNEURON timers from its output, so that the time loop is told apart from the hand-over of the
    model (NEURON -> CoreNEURON and back), which the rank's ``simulate`` includes; summed over psolve calls."""
    solver = [float(t) for t in _CORENEURON_SOLVER.findall(out)]
    if not solver or not data.get("ranks"):
        return  # NEURON, or CoreNEURON at verbose 0
    rank0 = min(data["ranks"], key=lambda r: r["rank"])
    rank0["coreneuron_solver_s"] = sum(solver)
    rank0["coreneuron_setup_s"] = sum(float(t) for t in _CORENEURON_SETUP.findall(out))


def _communicate(proc: subprocess.Popen, timeout: float, show_progress: bool, tstop: float) -> tuple[str, str]:
    """``proc.communicate(timeout)``, reading stdout as it comes: rank 0's progress lines (the plugin's, and
    CoreNEURON's own progress bar, one line per redraw in text mode) are rendered at once (``show_progress``) and
    kept out of the output; subprocess.TimeoutExpired as communicate raises it."""
    out: list[str] = []
    err: list[str] = []
    first_bar: list[float] = []

    def read_out() -> None:
        for line in proc.stdout:
            update = progress.relayed(line)
            bar = _CORENEURON_BAR.search(line) if update is None else None
            if bar is not None:
                t, now = min(float(bar.group(1)), tstop), time.perf_counter()
                first_bar.append(now)
                update = {"phase": "simulate", "done": t, "total": tstop, "unit": "ms",
                          "detail": progress.simulate_detail(t, tstop, now - first_bar[0])}
            if update is None:
                out.append(line)
            elif show_progress:
                progress.render(**update)

    def read_err() -> None:
        err.append(proc.stderr.read())

    readers = [threading.Thread(target=f, daemon=True) for f in (read_out, read_err)]
    for reader in readers:
        reader.start()
    proc.wait(timeout=timeout)
    for reader in readers:
        reader.join()
    return "".join(out), "".join(err)


def _kill_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


def _rank_phases(status_dir: Path, ranks: int) -> dict[int, str]:
    phases = {}
    for k in range(ranks):
        f = status_dir / f"rank{k}.status"
        phases[k] = f.read_text().strip() if f.is_file() else "not started"
    return phases


def _unfinished_ranks(status_dir: Path, ranks: int) -> str:
    stuck = {k: p for k, p in _rank_phases(status_dir, ranks).items() if p != "done"}
    if not stuck:
        return "every rank had finished its simulation (stuck while writing output)"
    return "; ".join(f"rank {k} was {phase}" for k, phase in stuck.items())


def _failure_message(config: Path, ranks: int, code: int, out: str, err: str, status_dir: Path) -> str:
    """Each failed rank's cause on a line of its own; where a rank hit a bug rather than a refusal, its traceback."""
    reported = _rank_errors(status_dir, ranks)
    causes = {**_causes_by_rank(out + "\n" + err), **{r: e["error"] for r, e in reported.items()}}
    if causes:
        named = "".join(f"\n  rank {r}: {c}" for r, c in sorted(causes.items()))
        message = f"{config.name} on {ranks} rank(s) failed (exit {code}):{named}"
        bugs = [r for r, e in sorted(reported.items()) if not e.get("bad_input")]
        if bugs:
            message += (f"\ntraceback of rank {bugs[0]}:\n{reported[bugs[0]]['traceback'].rstrip()}\nthis is an error "
                        "in bmtk-scaling or bmtk, not a refusal of your input: please report it with this traceback")
        return message
    phases = _rank_phases(status_dir, ranks)
    dead = ", ".join(f"rank {k} ({p})" for k, p in phases.items() if p != "done") or "unknown rank"
    return f"{config.name} on {ranks} rank(s) failed (exit {code}); unfinished: {dead}\n{_tail(out + err)}"


def _rank_errors(status_dir: Path, ranks: int) -> dict[int, dict]:
    """What each failed rank wrote to ``rank<k>.error`` (its cause, whether it was a refusal, its traceback)."""
    found = {}
    for k in range(ranks):
        path = status_dir / f"rank{k}.error"
        try:
            found[k] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return found


def _causes_by_rank(text: str) -> dict[int, str]:
    """First error each rank reported: our own tagged line, a hoc error (NEURON prefixes the rank under MPI,
    then calls MPI_Abort), or MPI's abort notice."""
    causes: dict[int, str] = {}
    patterns = (rf"^{re.escape(FAILURE_TAG)} (\d+): (.*)$", r"^(\d+) NEURON: (.*)$",
                r"^Abort\(.*?\) on node \d+ \(rank (\d+) in comm \d+\): (.*)$")
    for pattern in patterns:
        for rank, cause in re.findall(pattern, text, flags=re.MULTILINE):
            causes.setdefault(int(rank), cause.strip())
    return causes


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
