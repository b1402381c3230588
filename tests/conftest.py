"""Session fixtures: small circuits built once with the real builders into real files, and a real SLURM cluster."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest


@pytest.fixture(scope="session")
def small_ping(tmp_path_factory):
    from network_builders import ping_assembly

    return ping_assembly(tmp_path_factory.mktemp("ping") / "net", n_assemblies=2, cells_per_assembly=100,
                         seed=3, tstop=300.0)


@pytest.fixture(scope="session")
def small_pairs(tmp_path_factory):
    from network_builders import n_pairs

    return n_pairs(tmp_path_factory.mktemp("pairs") / "net", n_pairs=12, tstop=30.0)


@pytest.fixture(scope="session")
def small_cliques(tmp_path_factory):
    from network_builders import nk_cliques

    return nk_cliques(tmp_path_factory.mktemp("cliques") / "net", n_cliques=4, clique_size=5, tstop=40.0)


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real two-node SLURM cluster on this machine (tools/slurm/start-cluster), stopped by its PIDs at the end.

    Skips only where SLURM cannot be installed (no apt-get, not root); with BMTK_SCALING_REQUIRE_SLURM=1
    (set by .ci/run) that is a failure instead. Yields the environment that sbatch, srun and the jobs use.
    """
    tools = Path(__file__).resolve().parents[1] / "tools" / "slurm"
    # munged wants its socket's folder and every folder above it searchable: pytest's tmp folders are 0700.
    root = Path(tempfile.mkdtemp(prefix="bmtk-slurm-", dir="/tmp"))
    cpus = str(max(2, os.cpu_count() or 1))  # a hung 2-rank job and an salloc of 2 ranks fit side by side
    proc = subprocess.run([str(tools / "start-cluster"), str(root), "--cpus", cpus, "--gpus", "2"],
                          capture_output=True, text=True, timeout=1200)  # stand-in GPUs: how SLURM hands them out
    if proc.returncode == 3:
        root.rmdir()
        reason = proc.stderr.strip()
        if os.environ.get("BMTK_SCALING_REQUIRE_SLURM") == "1":
            pytest.fail(f"BMTK_SCALING_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)
    assert proc.returncode == 0, proc.stderr
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "SLURM_CONF": str(root / "slurm.conf"), "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "BMTK_SCALING": str(bin_dir / "bmtk-scaling")}
    env.pop("SLURM_MPI_TYPE", None)
    yield SimpleNamespace(root=root, env=env, started=proc.stdout)
    stop = subprocess.run([str(tools / "stop-cluster"), str(root), "--remove"], capture_output=True, text=True,
                          timeout=300)
    assert stop.returncode == 0 and not stop.stderr.strip(), stop.stderr
