"""Lean instantiation: array-read edges and shared synapses against stock bionet, on real runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bmtk_scaling.config.derive import derive_config, write_config
from bmtk_scaling.run.launcher import run_config
from bmtk_scaling.sonata.configs import load_config
from bmtk_scaling.sonata.spikes import read_spikes

pytestmark = [pytest.mark.mpi, pytest.mark.slow]


@pytest.fixture(scope="module")
def ping(tmp_path_factory):
    from network_builders import ping_assembly

    return ping_assembly(tmp_path_factory.mktemp("lean") / "ping", n_assemblies=2, cells_per_assembly=80, seed=5,
                         tstop=400.0)


def _run(net, name: str, ranks: int = 1, **switches):
    cfg = write_config(derive_config(load_config(net.simulation_config).data, output_dir=f"$BASE_DIR/out_{name}",
                                     **switches), net.simulation_config, net.path / f"{name}.json", overwrite=True)
    result = run_config(cfg, ranks)
    return result, read_spikes(Path(result.spikes_file))[["node_id", "timestamp"]].to_numpy()


def test_per_edge_reproduces_stock_bmtk_exactly(ping):
    stock_run, stock = _run(ping, "stock", engine="neuron", neuron_loop="bmtk", synapses="bmtk", cell_build="bmtk")
    lean_run, lean = _run(ping, "per_edge", engine="neuron", synapses="per_edge")
    assert len(stock) > 500
    assert np.array_equal(stock, lean)
    for run in (stock_run, lean_run):  # simulate in CPU seconds too, both loops (bench/instantiate.py compares it)
        r = run.per_rank[0]
        assert 0 < r["simulate_cpu_s"] <= 1.5 * r["simulate_s"] + 0.1


def test_shared_synapses_match_per_edge_and_save_objects(ping):
    per_edge, a = _run(ping, "pe", engine="neuron", synapses="per_edge")
    shared, b = _run(ping, "sh", engine="neuron", synapses="shared")
    assert np.array_equal(a, b)
    pe, sh = per_edge.per_rank[0], shared.per_rank[0]
    assert pe["netcons"] == sh["netcons"] == ping.n_edges  # one NetCon per edge either way
    assert pe["synapse_objects"] == ping.n_edges
    assert sh["synapse_objects"] <= 2 * ping.n_nodes  # at most one per (cell, synapse type)


def test_shared_is_identical_across_engines_and_ranks(ping):
    _, ref = _run(ping, "sh_n1", engine="neuron", synapses="shared")
    _, core2 = _run(ping, "sh_c2", ranks=2, engine="coreneuron", synapses="shared")
    _, neuron3 = _run(ping, "sh_n3", ranks=3, engine="neuron", synapses="shared")
    assert np.array_equal(ref, core2)
    assert np.array_equal(ref, neuron3)


def test_weight_functions_stay_lean(ping, tmp_path):
    """bmtk's wmax (the weight itself) is read as an array: the population stays lean, with the same spikes."""
    import h5py

    _, lean = _run(ping, "lean_ref", engine="neuron", synapses="shared")
    types = ping.path / "network" / "ping_ping_edge_types.csv"
    original = types.read_text()
    try:
        lines = original.splitlines()
        lines[0] += " weight_function"
        lines[1:] = [line + " wmax" for line in lines[1:]]
        types.write_text("\n".join(lines) + "\n")
        result, with_wmax = _run(ping, "wf", engine="neuron", synapses="shared")
    finally:
        types.write_text(original)
    assert not [n for n in result.notes if "built by bionet" in n], result.notes
    assert result.per_rank[0]["synapse_objects"] <= 2 * ping.n_nodes  # still shared
    assert np.array_equal(lean, with_wmax)
    assert h5py.is_hdf5(ping.edges_file)
    assert json.loads(ping.simulation_config.read_text())["target_simulator"] == "NEURON"
