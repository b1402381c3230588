"""Run a built network under real ``mpiexec`` with a hard time limit, as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from bmtk_scaling.environment import configure_neuron_environment, mpiexec_path

PROBE = Path(__file__).with_name("mpi_probe.py")


def mpirun(n: int, args: list[str], cwd: Path, timeout: float = 180,
           program: list[str] | None = None) -> subprocess.CompletedProcess:
    """``mpiexec -n n python ARGS`` (or ``PROGRAM ARGS``) in ``cwd``; the whole process group is killed if it outlives
    ``timeout``. The environment has ``MPI_LIB_NRN_PATH``, which ``nrniv -mpi`` needs before Python starts."""
    env = configure_neuron_environment(dict(os.environ))
    cmd = [str(mpiexec_path()), "-n", str(n), *(program or [sys.executable]), *args]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"{' '.join(cmd)} did not finish within {timeout} s (hang?)") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
