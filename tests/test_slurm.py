"""SLURM scripts for a sweep: parsed and checked, then run here (a stand-in srun is the only mock)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli import cli
from tests.test_sweep import TINY, write_spec

CLUSTER = TINY + """
slurm:
  partition: gpu
  account: abc123
  time: "00:20:00"
  cores_per_node: 4
  gpus_per_node: 2
  setup: ["module load mpi"]
  extra: ["--mem=0"]
  mpi_lib: /opt/mpi/lib/libmpi.so.12
grids:
  - {ranks: [1, 2]}
  - {engines: [coreneuron], ranks: [1, 3], threads: [2]}
  - {engines: [coreneuron_gpu], ranks: [3]}
"""

FAKE_SRUN = """#!/bin/bash
# Stand-in for SLURM's srun on a machine without SLURM: 'srun -n R [--opt ...] CMD' -> 'mpiexec -n R CMD'.
n=1
while [[ $# -gt 0 && "$1" == -* ]]; do
  case "$1" in -n) n="$2"; shift 2;; *) shift;; esac
done
exec "{mpiexec}" -n "$n" "$@"
"""


def sbatch_options(path: Path) -> dict[str, str]:
    opts = {}
    for line in path.read_text().splitlines():
        if line.startswith("#SBATCH "):
            key, _, value = line[len("#SBATCH "):].partition("=")
            opts[key] = value
    return opts


@pytest.fixture(scope="module")
def scripts(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("slurm")
    spec = write_spec(tmp, CLUSTER)
    proc = cli("sweep", str(spec), "--reduced", "--slurm", str(tmp / "jobs"))
    assert proc.returncode == 0, proc.stderr  # GPU points are fine: they run on the cluster
    return tmp / "jobs", proc


def test_one_job_array_per_resource_shape(scripts):
    jobs, proc = scripts
    names = sorted(p.name for p in jobs.iterdir() if p.name != ".bmtk-scaling")  # the marker: which are ours
    assert names == ["collect.sbatch", "points_r1_t1.sbatch", "points_r1_t1.txt", "points_r1_t2.sbatch",
                     "points_r1_t2.txt", "points_r2_t1.sbatch", "points_r2_t1.txt", "points_r3_t1_gpu.sbatch",
                     "points_r3_t1_gpu.txt", "points_r3_t2.sbatch", "points_r3_t2.txt", "prepare.sbatch",
                     "spec.yaml", "submit.sh"]
    for shape in ("r1_t1", "r2_t1", "r1_t2", "r3_t2", "r3_t1_gpu"):
        listed = (jobs / f"points_{shape}.txt").read_text().split()
        assert len(listed) == 2  # two reduced networks
        assert sbatch_options(jobs / f"points_{shape}.sbatch")["--array"] == "0-1"
    assert "r3_t1_gpu (2 points)" in proc.stdout


@pytest.mark.parametrize("shape,expected", [
    ("r2_t1", {"--ntasks": "2", "--nodes": "1", "--ntasks-per-node": "2", "--cpus-per-task": "1"}),
    ("r3_t2", {"--ntasks": "3", "--nodes": "2", "--ntasks-per-node": "2", "--cpus-per-task": "2"}),
    ("r3_t1_gpu", {"--ntasks": "3", "--nodes": "2", "--ntasks-per-node": "2", "--gpus-per-node": "2"}),
])
def test_ranks_nodes_and_gpus(scripts, shape, expected):
    opts = sbatch_options(scripts[0] / f"points_{shape}.sbatch")
    assert {k: opts.get(k) for k in expected} == expected
    assert opts["--time"] == "00:20:00" and opts["--partition"] == "gpu" and opts["--account"] == "abc123"
    assert "--mem" in opts and opts["--output"] == "logs/%x-%A_%a.out"
    assert ("--gpus-per-node" in opts) == shape.endswith("gpu")


def test_commands_run_the_same_spec(scripts):
    jobs, _ = scripts
    body = (jobs / "points_r3_t2.sbatch").read_text()
    assert "module load mpi" in body and "export MPI_LIB_NRN_PATH=/opt/mpi/lib/libmpi.so.12" in body
    assert "OMP_NUM_THREADS=2" in body
    assert "sweep spec.yaml --out results --reduced --point-list points_r3_t2.txt" in body
    assert '--launcher "${BMTK_SCALING_LAUNCHER:-srun}"' in body
    assert "--prepare-only" in (jobs / "prepare.sbatch").read_text()
    assert "--collect" in (jobs / "collect.sbatch").read_text()
    submit = (jobs / "submit.sh").read_text().splitlines()
    prepare = next(i for i, ln in enumerate(submit) if "prepare.sbatch" in ln)
    arrays = [i for i, ln in enumerate(submit) if "--dependency=afterok:$prep points_" in ln]
    collect = next(i for i, ln in enumerate(submit) if "afterany" in ln and "collect.sbatch" in ln)
    assert len(arrays) == 5 and prepare < min(arrays) and max(arrays) < collect
    for script in jobs.glob("*.s*"):
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, script.name


def test_gpu_points_need_a_gpu_only_where_they_run(scripts, tmp_path):
    jobs, _ = scripts
    args = ["sweep", str(jobs / "spec.yaml"), "--reduced", "--out", str(tmp_path / "r")]
    proc = cli(*args, "--point-list", str(jobs / "points_r3_t1_gpu.txt"), "--array-index", "0")
    assert proc.returncode == 2 and "use engine coreneuron_gpu" in proc.stderr
    assert not (tmp_path / "r").exists()
    proc = cli(*args, "--point-list", str(jobs / "points_r3_t2.txt"), "--array-index", "0", "--prepare-only")
    assert proc.returncode == 0, proc.stderr  # a CPU task of the same spec prepares without a GPU
    assert len(list((tmp_path / "r" / "networks").iterdir())) == 1


def test_default_time_from_the_timeout(tmp_path):
    spec = write_spec(tmp_path, TINY.replace("timeout_s: 120", "timeout_s: 3000"))
    assert cli("sweep", str(spec), "--slurm", str(tmp_path / "jobs")).returncode == 0
    assert sbatch_options(tmp_path / "jobs" / "points_r1_t1.sbatch")["--time"] == "01:00:00"  # 3000 s + 10 min


@pytest.mark.mpi
@pytest.mark.slow
def test_scripts_run_here_with_a_stand_in_srun(tmp_path):
    """prepare, one array task on 2 ranks through 'srun', then collect: the jobs a cluster would run."""
    spec = write_spec(tmp_path, TINY.replace("ranks: [1, 2]", "ranks: [2]"))
    jobs = tmp_path / "jobs"
    assert cli("sweep", str(spec), "--reduced", "--slurm", str(jobs)).returncode == 0
    fake = tmp_path / "bin" / "srun"
    fake.parent.mkdir()
    fake.write_text(FAKE_SRUN.replace("{mpiexec}", str(Path(sys.executable).parent / "mpiexec")))
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}",
           "BMTK_SCALING": str(Path(sys.executable).parent / "bmtk-scaling")}

    def job(script: str, **extra) -> subprocess.CompletedProcess:
        proc = subprocess.run(["bash", str(jobs / script)], env={**env, **extra}, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return proc

    job("prepare.sbatch")
    assert len(list((jobs / "results" / "networks").iterdir())) == 2 and not (jobs / "results" / "points").exists()
    job("points_r2_t1.sbatch", SLURM_ARRAY_TASK_ID="1")
    assert len(list((jobs / "results" / "points").glob("*.json"))) == 1
    out = job("collect.sbatch").stdout
    assert "0 point(s) run, 1 were already done" in out and "1 remain" in out
    with open(jobs / "results" / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["network"], r["ranks"]) for r in rows] == [("cliques", "2")]  # line 1 of the list
    proc = subprocess.run(["bash", str(jobs / "points_r2_t1.sbatch")], env={**env, "SLURM_ARRAY_TASK_ID": "5"},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "array index 5 is outside" in proc.stderr
