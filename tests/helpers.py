"""Helpers shared by the tests: run a built network as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bmtk_scaling.environment import configure_neuron_environment
from bmtk_scaling.report.activity import read_spikes


def run_network(network_dir: Path, config: str = "simulation_config.json", timeout: float = 600):
    """Simulate a built network with its own run_bionet.py in a fresh process; return its spikes."""
    env = configure_neuron_environment(dict(os.environ))
    proc = subprocess.run([sys.executable, "run_bionet.py", config], cwd=network_dir, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return read_spikes(network_dir / "output" / "spikes.h5")


def cli(*args: str, cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the ``bmtk-scaling`` console script as a user would (found beside this interpreter)."""
    import shutil

    beside = Path(sys.executable).parent / "bmtk-scaling"  # `.venv/bin/python -m pytest` leaves PATH as it was
    exe = str(beside) if beside.is_file() else shutil.which("bmtk-scaling")
    assert exe, "the console script must be installed (pip install -e .)"
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)
