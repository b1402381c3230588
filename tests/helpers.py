"""Helpers shared by the tests: run a built network as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from bmtk_scaling.environment import configure_neuron_environment
from bmtk_scaling.sonata.spikes import read_spikes


def run_network(network_dir: Path, config: str = "simulation_config.json", timeout: float = 600):
    """Simulate a built network with its own run_bionet.py in a fresh process; return its spikes."""
    env = configure_neuron_environment(dict(os.environ))
    proc = subprocess.run([sys.executable, "run_bionet.py", config], cwd=network_dir, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return read_spikes(network_dir / "output" / "spikes.h5")


def interruptible() -> None:
    """``preexec_fn`` giving a child the default SIGINT of a terminal's foreground command: a test run started
    in the background (``cmd &`` without job control) hands its children SIGINT ignored, and a Ctrl-C test
    would then see the command finish instead of stop."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli(*args: str, cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the ``bmtk-scaling`` console script as a user would (found beside this interpreter)."""
    import shutil

    beside = Path(sys.executable).parent / "bmtk-scaling"  # `.venv/bin/python -m pytest` leaves PATH as it was
    exe = str(beside) if beside.is_file() else shutil.which("bmtk-scaling")
    assert exe, "the console script must be installed (pip install -e .)"
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def add_spike_inputs(net, spike_times: dict[int, list[float]]) -> dict:
    """Give a built N-Pairs network a virtual population ``inputs``: input i drives the sender of pair i.

    Writes the input nodes and edges beside the network, a SONATA spike file, adds them to the circuit
    config, and returns the simulation config's JSON with a bmtk ``spikes`` input (written back too).
    """
    import json

    import h5py
    import numpy as np
    from bmtk.builder import NetworkBuilder

    from bmtk_scaling.sonata.configs import load_config

    pairs_nodes = NetworkBuilder("pairs")
    pairs_nodes.import_nodes(str(net.nodes_file), str(net.path / "network" / "pairs_node_types.csv"))
    inputs = NetworkBuilder("inputs")
    inputs.add_nodes(N=len(spike_times), model_type="virtual")
    inputs.add_edges(source=inputs.nodes(), target=pairs_nodes.nodes(),  # input i -> sender of pair i (node 2i)
                     connection_rule=lambda s, t: int(t.node_id == 2 * s.node_id), model_template="exp2syn",
                     dynamics_params="exc.json", syn_weight=1.0, delay=1.0, target_sections=["soma"],
                     distance_range=[0.0, 1e20])
    inputs.build()
    inputs.save_nodes(output_dir=str(net.path / "network"))
    inputs.save_edges(output_dir=str(net.path / "network"))
    with h5py.File(net.path / "input_spikes.h5", "w") as h5:
        grp = h5.create_group("spikes/inputs")
        ids = [n for n, ts in spike_times.items() for _ in ts]
        times = [t for ts in spike_times.values() for t in ts]
        grp.create_dataset("node_ids", data=np.array(ids, dtype=np.uint64))
        grp.create_dataset("timestamps", data=np.array(times))
    circuit = json.loads(net.circuit_config.read_text())
    circuit["networks"]["nodes"].append({"nodes_file": "$NETWORK_DIR/inputs_nodes.h5",
                                         "node_types_file": "$NETWORK_DIR/inputs_node_types.csv",
                                         "populations": {"inputs": {"type": "virtual"}}})
    circuit["networks"]["edges"].append({"edges_file": "$NETWORK_DIR/inputs_pairs_edges.h5",
                                         "edge_types_file": "$NETWORK_DIR/inputs_pairs_edge_types.csv"})
    net.circuit_config.write_text(json.dumps(circuit))
    base = load_config(net.simulation_config).data
    base["inputs"] = {"replay": {"input_type": "spikes", "module": "sonata", "input_file": "$BASE_DIR/input_spikes.h5",
                                 "node_set": "inputs"}}
    net.simulation_config.write_text(json.dumps(base))  # bmtk-style inputs: libsonata rejects module "sonata"
    return base
