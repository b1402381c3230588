"""The --slurm scripts on a real two-node SLURM cluster (munged, slurmctld, slurmd n1 and n2 on this machine).

One sweep is submitted with the real sbatch through submit.sh. The ranks of one 2-rank point are frozen
(SIGSTOP), as a hung run would be, so that its array task meets its one-minute time limit; SLURM's
time-limit check runs every 30 s, so that takes 60 to 90 s, and the local sweep and the srun run inside
an allocation are measured meanwhile. Then submit.sh is run again and must finish only the killed point.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from bmtk_scaling.run.launcher import launch_command
from bmtk_scaling.sonata.spikes import read_spikes
from bmtk_scaling.sweep.execute import _spikes_sha
from tests.helpers import cli
from tests.test_sweep import TINY, write_spec

pytestmark = [pytest.mark.slurm, pytest.mark.mpi, pytest.mark.slow]

TOOLS = Path(__file__).resolve().parents[1] / "tools" / "slurm"

SPEC = TINY.replace("timeout_s: 120", "timeout_s: 600") + """
slurm: {cores_per_node: 1, time: "00:01:00"}
"""  # one rank per node: every 2-rank point spans n1 and n2; the sweep's own timeout is far beyond SLURM's


def _scontrol_job(env: dict, job: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "-o", "show", "job", job], env=env, capture_output=True, text=True,
                         timeout=30).stdout
    return dict(f.split("=", 1) for f in out.split() if "=" in f)


def _queue(env: dict) -> list[str]:
    proc = subprocess.run(["squeue", "-h", "-o", "%i %T"], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def _wait_until(what: str, ready, timeout: float, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = ready()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} within {timeout:g} s"
        time.sleep(poll)


def _rank_processes(run_dir: Path) -> list[int]:
    """PIDs of the rank processes of one point (their command line names the point's run folder)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        argv = cmd.split(b"\0")
        if argv[1:3] == [b"-m", b"bmtk_scaling.run.rank_main"] and str(run_dir).encode() in cmd:  # not srun's
            found.append(int(proc.name))
    return found


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _rows(csv_path: Path) -> dict[str, dict]:
    with open(csv_path, newline="") as fh:
        return {r["point_id"]: r for r in csv.DictReader(fh)}


def _submit(jobs: Path, env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(jobs / "submit.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def submitted(slurm_cluster, tmp_path_factory):
    """submit.sh with the real sbatch; the first 2-rank point's ranks are frozen as soon as they appear."""
    tmp = tmp_path_factory.mktemp("cluster")
    spec = write_spec(tmp, SPEC)
    jobs = tmp / "jobs"
    written = cli("sweep", str(spec), "--reduced", "--slurm", str(jobs))
    assert written.returncode == 0, written.stderr
    frozen_id = (jobs / "points_r2_t1.txt").read_text().split()[0]
    t0 = time.monotonic()
    _submit(jobs, slurm_cluster.env)
    frozen: dict[int, dict[str, str]] = {}

    def freeze() -> bool:
        for pid in _rank_processes(jobs / "results" / "runs" / frozen_id):
            if pid not in frozen:
                os.kill(pid, signal.SIGSTOP)
                frozen[pid] = _environ(pid)
        return len(frozen) == 2

    _wait_until("the frozen point's 2 ranks started", freeze, timeout=300, poll=0.05)
    return {"jobs": jobs, "spec": spec, "results": jobs / "results", "frozen_id": frozen_id, "frozen": frozen,
            "t_submit": t0, "env": slurm_cluster.env}


@pytest.fixture(scope="module")
def local(submitted, tmp_path_factory):
    """The same spec swept here with mpiexec, while the SLURM job waits for its time limit."""
    out = tmp_path_factory.mktemp("local") / "results"
    proc = cli("sweep", str(submitted["spec"]), "--reduced", "--out", str(out), "--no-progress")
    return {"proc": proc, "out": out}


@pytest.fixture(scope="module")
def timed_out(submitted):
    """What is left once the frozen point's array task met its time limit and collect ran."""
    env, frozen = submitted["env"], submitted["frozen"]
    job = next(iter(frozen.values()))["SLURM_JOB_ID"]
    _wait_until(f"job {job} ended", lambda: _scontrol_job(env, job).get("JobState") not in ("PENDING", "RUNNING",
                                                                                            "COMPLETING"),
                timeout=240)
    info = _scontrol_job(env, job)
    gone = _wait_until("ranks gone", lambda: not any(_alive(p) for p in frozen) or None, timeout=30) is True
    _wait_until("the queue emptied (collect ran)", lambda: not _queue(env), timeout=180)
    results = submitted["results"]
    return {"job": info, "ranks_gone": gone, "alive": [p for p in frozen if _alive(p)],
            "rows": _rows(results / "results.csv"),
            "stamps": {p.name: p.stat().st_mtime_ns for p in (results / "points").glob("*.json")},
            "waited_s": time.monotonic() - submitted["t_submit"]}


@pytest.fixture(scope="module")
def resubmitted(submitted, timed_out):
    """submit.sh again, as a user does after a job died: only the killed point may run."""
    env, jobs = submitted["env"], submitted["jobs"]
    before = set((jobs / "logs").iterdir())
    _submit(jobs, env)
    _wait_until("the resubmitted sweep finished", lambda: not _queue(env), timeout=300)
    results = submitted["results"]
    logs = {p.name: p.read_text() for p in set((jobs / "logs").iterdir()) - before}
    return {"rows": _rows(results / "results.csv"), "logs": logs,
            "stamps": {p.name: p.stat().st_mtime_ns for p in (results / "points").glob("*.json")},
            "records": {p.stem: json.loads(p.read_text()) for p in (results / "points").glob("*.json")}}


def test_start_refuses_a_folder_munged_cannot_use_and_names_it(slurm_cluster, tmp_path):
    private = tmp_path / "private"  # pytest's folders are 0700: munged would refuse its socket below them
    proc = subprocess.run([str(TOOLS / "start-cluster"), str(private / "c")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1 and "is not searchable by others" in proc.stderr, proc.stderr
    assert not private.exists()
    proc = subprocess.run([str(TOOLS / "stop-cluster"), str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "holds no cluster" in proc.stderr


def test_a_daemon_that_dies_fails_the_start_at_once_with_its_log(slurm_cluster):  # (installs the packages)
    root = Path(tempfile.mkdtemp(prefix="bmtk-slurm-bad-", dir="/tmp"))
    try:
        (root / "munge" / "socket").mkdir(parents=True)  # munged cannot make its socket there
        t0 = time.monotonic()
        proc = subprocess.run([str(TOOLS / "start-cluster"), str(root)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1 and time.monotonic() - t0 < 10
        assert "munged exited" in proc.stderr and "Is a directory" in proc.stderr, proc.stderr
        assert not (root / "pids.json").exists() and (root / "pids.stopped.json").exists()
    finally:
        shutil.rmtree(root)


def test_the_cluster_defaults_to_no_mpi_so_the_launcher_must_ask_for_pmi2(slurm_cluster):
    conf = (slurm_cluster.root / "slurm.conf").read_text()
    assert "MpiDefault=none" in conf  # as SLURM's own default: a plain srun would start 1-rank worlds
    nodes = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %T"], env=slurm_cluster.env, capture_output=True,
                           text=True, timeout=30).stdout.split("\n")
    assert {ln.split()[0] for ln in nodes if ln.strip()} == {"n1", "n2"}


def test_gpu_points_get_a_device_per_rank(slurm_cluster, tmp_path):
    """A GPU point's job (its resource lines as written, 2 stand-in GPUs per node) and the srun launcher's command:
    every rank sees its node's GPUs, so CoreNEURON's choice (node-local rank mod visible GPUs) differs per rank."""
    spec = write_spec(tmp_path, TINY + """
slurm: {gpus_per_node: 2, cores_per_node: 2}
grids:
  - {engines: [coreneuron_gpu], ranks: [4]}
""")
    assert cli("sweep", str(spec), "--reduced", "--slurm", str(tmp_path / "jobs")).returncode == 0
    script = tmp_path / "jobs" / "points_r4_t1_gpu.sbatch"
    lines = script.read_text().splitlines()
    assert "bmtk-scaling" in lines[-1]  # the point's command: replaced by one that shows what each rank sees
    show = 'echo "$SLURMD_NODENAME $SLURM_LOCALID ${CUDA_VISIBLE_DEVICES:-none}"'
    script.write_text("\n".join([*lines[:-1], f"{shlex.join(launch_command('srun', 4))} bash -c {shlex.quote(show)}",
                                 ""]))
    proc = subprocess.run(["sbatch", "--wait", "--array=0", "--output", str(tmp_path / "gpu.out"), str(script)],
                          env=slurm_cluster.env, capture_output=True, text=True, timeout=120, cwd=script.parent)
    assert proc.returncode == 0, proc.stderr
    seen = [ln.split() for ln in (tmp_path / "gpu.out").read_text().splitlines() if ln.startswith("n")]
    assert sorted((node, int(local)) for node, local, _ in seen) == [("n1", 0), ("n1", 1), ("n2", 0), ("n2", 1)]
    for node, local, visible in seen:
        devices = visible.split(",")
        assert devices == ["0", "1"], (node, local, visible)
    assert {(node, devices.split(",")[int(local) % 2]) for node, local, devices in seen} == \
        {("n1", "0"), ("n1", "1"), ("n2", "0"), ("n2", "1")}  # one device per rank, none shared


def test_submit_runs_prepare_then_the_arrays_on_both_nodes(submitted):
    frozen = submitted["frozen"]
    # The frozen point's ranks were started by srun inside the job array, one on each node, with PMI-2.
    assert sorted(e["SLURMD_NODENAME"] for e in frozen.values()) == ["n1", "n2"]
    assert {e["SLURM_ARRAY_TASK_ID"] for e in frozen.values()} == {"0"}
    assert sorted(e["PMI_RANK"] for e in frozen.values()) == ["0", "1"]
    assert {e["PMI_SIZE"] for e in frozen.values()} == {"2"}
    prepare = next((submitted["jobs"] / "logs").glob("tiny-prepare-*.out")).read_text()
    assert "prepared 2 networks and the maps and configs of 4 points" in prepare


def test_the_same_spec_swept_here(local):
    assert local["proc"].returncode == 0, local["proc"].stderr
    assert len(_rows(local["out"] / "results.csv")) == 4


def test_run_with_the_srun_launcher_inside_an_allocation(slurm_cluster, local, tmp_path):
    """salloc -N2 -n2, then `bmtk-scaling run --launcher srun`: NEURON sees 2 ranks, one per node, same spikes."""
    rows = _rows(local["out"] / "results.csv")
    point = next(r for r in rows.values() if r["ranks"] == "2" and r["network"] == "pairs")
    config = local["out"] / "runs" / point["point_id"] / "config.json"
    out = tmp_path / "run.json"
    exe = slurm_cluster.env["BMTK_SCALING"]
    proc = subprocess.run(["salloc", "-N2", "-n2", "--time=5", exe, "run", str(config), "--ranks", "2",
                           "--launcher", "srun", "--timeout", "120", "--json", str(out)],
                          env=slurm_cluster.env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert [(r["rank"], r["slurm_node"]) for r in result["per_rank"]] == [(0, "n1"), (1, "n2")]
    assert _spikes_sha(read_spikes(Path(result["spikes_file"]))) == point["spikes_sha256"]


def test_a_pmi_the_mpi_does_not_speak_is_named(slurm_cluster, local):
    """SLURM_MPI_TYPE=none (the launcher then passes no --mpi): each rank is a 1-rank world, refused by name."""
    rows = _rows(local["out"] / "results.csv")
    point = next(r for r in rows.values() if r["ranks"] == "2" and r["network"] == "cliques")
    config = local["out"] / "runs" / point["point_id"] / "config.json"
    spikes = config.parent / "output" / "spikes.h5"
    before = spikes.stat().st_mtime_ns
    proc = subprocess.run(["salloc", "-N2", "-n2", "--time=5", slurm_cluster.env["BMTK_SCALING"], "run", str(config),
                           "--ranks", "2", "--launcher", "srun", "--timeout", "120"],
                          env={**slurm_cluster.env, "SLURM_MPI_TYPE": "none"}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1
    assert "NEURON sees 1 rank(s) but 2 were launched" in proc.stderr and "--mpi=pmi2" in proc.stderr, proc.stderr
    assert spikes.stat().st_mtime_ns == before  # the last good output is kept


def test_a_time_limit_stops_the_ranks(submitted, timed_out):
    job = timed_out["job"]
    assert job["JobState"] == "TIMEOUT" and job["TimeLimit"] == "00:01:00", job
    assert timed_out["ranks_gone"], f"ranks still alive after the time limit: {timed_out['alive']}"
    log = next((submitted["jobs"] / "logs").glob(f"tiny-r2_t1-*_{timed_out['job']['ArrayTaskId']}.out")).read_text()
    assert "DUE TO TIME LIMIT" in log and "interrupted (SIGTERM)" in log
    rows = timed_out["rows"]  # collect ran after the killed task (afterany) with what was finished
    assert len(rows) == 3 and submitted["frozen_id"] not in rows


def test_a_resubmission_finishes_only_what_was_not_done(submitted, timed_out, resubmitted):
    frozen_file = f"{submitted['frozen_id']}.json"
    assert set(resubmitted["rows"]) == set(timed_out["rows"]) | {submitted["frozen_id"]}
    for name, stamp in timed_out["stamps"].items():  # finished points were not run again
        assert resubmitted["stamps"][name] == stamp, name
    assert frozen_file in resubmitted["stamps"] and frozen_file not in timed_out["stamps"]
    arrays = [text for name, text in resubmitted["logs"].items() if "-r1_t1-" in name or "-r2_t1-" in name]
    assert len(arrays) == 4
    assert sum("1 points, 1 already finished, 0 to run" in t for t in arrays) == 3
    assert sum("1 point(s) run, 0 were already done" in t for t in arrays) == 1


def test_results_equal_a_local_run_and_2_rank_points_span_both_nodes(submitted, resubmitted, local):
    here = _rows(local["out"] / "results.csv")
    there = resubmitted["rows"]
    assert set(here) == set(there)
    assert {p: r["spikes_sha256"] for p, r in there.items()} == {p: r["spikes_sha256"] for p, r in here.items()}
    for pid, record in resubmitted["records"].items():
        nodes = [r["slurm_node"] for r in record["run"]["per_rank"]]
        assert len(nodes) == record["run"]["ranks"]  # NEURON gathered one entry per rank: it saw them all
        assert sorted(nodes) == (["n1", "n2"] if len(nodes) == 2 else nodes) and set(nodes) <= {"n1", "n2"}, pid
