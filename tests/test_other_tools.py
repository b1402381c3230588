"""Files other SONATA tools accept: bluepysnap (and libsonata) read a built network, a partitioned
config and a run's outputs, and bluepysnap's validator finds no datatype the specification forbids."""

from __future__ import annotations

import shutil

import h5py
import libsonata
import numpy as np
import pytest
from helpers import cli

from bmtk_scaling.sonata.compat import sign_type_ids
from bmtk_scaling.sonata.spikes import read_spikes

bluepysnap = pytest.importorskip("bluepysnap")  # a test extra: pip install -e '.[test]'


@pytest.fixture(scope="module")
def run_pairs(small_pairs, tmp_path_factory):
    """A copy of the small N-Pairs network, partitioned for 2 ranks and run on them."""
    net = tmp_path_factory.mktemp("snap") / "net"
    shutil.copytree(small_pairs.path, net, symlinks=True)
    config = net / "sim_metis2.json"
    proc = cli("partition", str(net / "simulation_config.json"), "--ranks", "2", "--strategy", "metis",
               "--config-out", str(config))
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = cli("run", str(config), "--ranks", "2")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return net, config


def test_type_ids_are_signed_as_the_specification_says(small_pairs):
    with h5py.File(small_pairs.nodes_file) as h5:
        assert h5["nodes/pairs/node_type_id"].dtype == np.int64
    with h5py.File(small_pairs.edges_file) as h5:
        assert h5["edges/pairs_to_pairs/edge_type_id"].dtype == np.int32


def test_bluepysnap_validator_finds_no_forbidden_datatype(small_pairs):
    from bluepysnap.circuit_validation import validate

    errors = validate(str(small_pairs.circuit_config), skip_slow=False, print_errors=False)
    datatype = [str(e) for e in errors if "datatype" in str(e)]
    assert datatype == []
    # What is left is bluepysnap's own schema for "biophysical" and "chemical" populations (morphology,
    # orientation, synapse physiology per node and edge), which bmtk keeps in its type tables instead.
    assert all("is a required property" in str(e) or not str(e).strip() for e in errors - set(datatype)), errors


def test_bluepysnap_reads_what_libsonata_reads(small_pairs):
    circuit = bluepysnap.Circuit(str(small_pairs.circuit_config))
    nodes = circuit.nodes["pairs"]
    lib_nodes = libsonata.NodeStorage(str(small_pairs.nodes_file)).open_population("pairs")
    assert nodes.size == lib_nodes.size == small_pairs.n_nodes
    everything = libsonata.Selection([(0, lib_nodes.size)])
    np.testing.assert_array_equal(nodes.get(properties="assembly").to_numpy(),
                                  lib_nodes.get_attribute("assembly", everything))
    edges = circuit.edges["pairs_to_pairs"]
    lib_edges = libsonata.EdgeStorage(str(small_pairs.edges_file)).open_population("pairs_to_pairs")
    assert edges.size == lib_edges.size > 0
    for node in range(nodes.size):
        assert sorted(edges.afferent_edges(node)) == sorted(lib_edges.afferent_edges([node]).flatten())


def test_bluepysnap_opens_a_partitioned_config_and_its_spikes(run_pairs):
    net, config = run_pairs
    sim = bluepysnap.Simulation(str(config))
    assert sim.circuit.nodes.population_names == ["pairs"]
    assert sim.run.tstop == libsonata.SimulationConfig.from_file(str(config)).run.tstop
    got = sim.spikes["pairs"].get()
    ours = read_spikes(net / "output" / "spikes.h5")
    assert len(got) == len(ours) > 0
    np.testing.assert_allclose(np.sort(got.index.to_numpy()), np.sort(ours["timestamp"].to_numpy()))


def test_signing_refuses_ids_that_do_not_fit(tmp_path):
    path = tmp_path / "edges.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("edges/e/edge_type_id", data=np.array([1, 2**31], dtype=np.uint32))
    with pytest.raises(ValueError, match="more than int32"):
        sign_type_ids(path)
    with h5py.File(path) as h5:
        assert h5["edges/e/edge_type_id"].dtype == np.uint32  # left as it was
    with h5py.File(path, "r+") as h5:
        h5["edges/e/edge_type_id"][1] = 7
    assert sign_type_ids(path) == ["edges/e/edge_type_id"]
    assert sign_type_ids(path) == []
