"""Progress of a run, as a user sees it in a log file: building cells, simulating (percent of tstop, simulated
ms per second, time left); NEURON's psolve in pieces keeps the spikes of one psolve call, and CoreNEURON's own
progress bar is relayed as the same lines."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bmtk_scaling.environment import configure_neuron_environment
from bmtk_scaling.sonata.spikes import read_spikes
from tests.helpers import cli

pytestmark = [pytest.mark.slow, pytest.mark.mpi]
TSTOP = 1000.0


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    from network_builders import ping_assembly

    return ping_assembly(tmp_path_factory.mktemp("progress") / "ping", n_assemblies=2, cells_per_assembly=50,
                         seed=1, tstop=TSTOP)


def _spikes(path: Path) -> np.ndarray:
    return read_spikes(path)[["node_id", "timestamp"]].to_numpy()


def _configure(net, name: str, **options: str) -> Path:
    args = [a for k, v in options.items() for a in (f"--{k}", v)]
    proc = cli("configure", str(net.simulation_config), *args, "--out", str(net.path / f"{name}.json"))
    assert proc.returncode == 0, proc.stderr
    return net.path / f"{name}.json"


@pytest.fixture(scope="module")
def one_call(net) -> np.ndarray:
    from bmtk_scaling.run.launcher import run_config

    return _spikes(Path(run_config(_configure(net, "one", **{"progress-interval": "0"}), 2).spikes_file))


@pytest.mark.parametrize("engine", ["neuron", "coreneuron"])
def test_run_logs_progress_and_pieces_keep_the_spikes(net, one_call, engine, tmp_path):
    config = _configure(net, f"pieces_{engine}", engine=engine, **{"progress-interval": "0.05"})
    log = tmp_path / "run.log"
    with log.open("w") as out:  # a log file, not a terminal: plain lines
        proc = subprocess.run([str(Path(sys.executable).parent / "bmtk-scaling"), "run", str(config), "--ranks", "2"],
                              stdout=out, stderr=subprocess.STDOUT, timeout=600)
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert re.search(r"^progress: build cells 50 of 50 cells \(100%\)$", text, re.MULTILINE), text[-2000:]
    # NEURON: the plugin's pieces; CoreNEURON: its own progress bar, relayed
    simulate = re.findall(r"^progress: simulate ([\d.]+) of 1000 ms \((\d+)%\)(, [\d.]+ ms/s, \d+ s left)?$", text,
                          re.MULTILINE)
    assert len(simulate) >= 2 and simulate[-1][:2] == ("1000", "100") and simulate[-1][2], text[-2000:]
    percents = [int(p) for _, p, _ in simulate]
    assert percents == sorted(percents) and percents[0] < 100
    assert len(one_call) > 100
    assert np.array_equal(_spikes(net.path / "output" / "spikes.h5"), one_call)


def test_run_script_prints_progress_lines_itself(net, one_call, tmp_path):
    """Without the runner (python run_bionet.py, a SLURM job's output file) rank 0 writes the lines itself."""
    config = _configure(net, "script", **{"progress-interval": "0.05"})
    log = tmp_path / "slurm-1.out"
    with log.open("w") as out:
        proc = subprocess.run([sys.executable, "run_bionet.py", str(config)], cwd=net.path, stdout=out,
                              stderr=subprocess.STDOUT, timeout=600, env=configure_neuron_environment(dict(os.environ)))
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert "progress: build cells 100 of 100 cells (100%)" in text
    assert "progress: simulate 1000 of 1000 ms (100%)" in text
