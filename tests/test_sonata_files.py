"""The written SONATA folders: readable by libsonata and h5py, equal to the builder's arrays."""

from __future__ import annotations

import json

import h5py
import libsonata
import numpy as np
import pytest

from network_builders import BUILDERS
from network_builders.writer import read_parameters


@pytest.fixture(params=["small_ping", "small_pairs", "small_cliques"])
def built(request):
    return request.getfixturevalue(request.param)


def _spec_of(built):
    params = read_parameters(built.path)
    key = {"ping_assembly": "ping", "n_pairs": "pairs", "nk_cliques": "cliques"}[params["kind"]]
    return BUILDERS[key].spec(**params["parameters"])


def test_libsonata_reads_nodes_and_attributes(built):
    spec = _spec_of(built)
    pop = libsonata.NodeStorage(str(built.nodes_file)).open_population(built.population)
    assert pop.size == spec.n_nodes
    everything = libsonata.Selection([(0, pop.size)])
    for name in ("role", "assembly", "drive_amp"):
        expected = np.concatenate([np.asarray(g.columns[name]) for g in spec.groups])
        got = np.asarray(pop.get_attribute(name, everything))
        assert np.array_equal(got, expected), name


def test_libsonata_reads_edges_and_indices(built):
    spec = _spec_of(built)
    pop = libsonata.EdgeStorage(str(built.edges_file)).open_population(f"{built.population}_to_{built.population}")
    assert pop.size == spec.n_edges
    everything = libsonata.Selection([(0, pop.size)])
    got = set(zip(pop.source_nodes(everything).tolist(), pop.target_nodes(everything).tolist(), strict=True))
    expected = {(int(s), int(t)) for e in spec.edges for s, t in zip(e.sources, e.targets, strict=True)}
    assert got == expected
    # the spec's index (node_id_to_ranges) must give every node's afferent and efferent edges
    for node in range(spec.n_nodes):
        aff = pop.target_nodes(pop.afferent_edges([node]))
        eff = pop.source_nodes(pop.efferent_edges([node]))
        assert np.all(aff == node) and np.all(eff == node)
        assert aff.size == sum(int(np.sum(e.targets == node)) for e in spec.edges)


def test_configs_parse_with_libsonata(built):
    circuit = libsonata.CircuitConfig.from_file(str(built.circuit_config))
    assert circuit.node_populations == {built.population}
    assert circuit.node_population(built.population).size == built.n_nodes
    sim = libsonata.SimulationConfig.from_file(str(built.simulation_config))
    assert sim.target_simulator == libsonata.SimulationConfig.SimulatorType.NEURON
    assert sim.run.tstop == pytest.approx(read_parameters(built.path)["parameters"]["tstop"])
    raw = json.loads(built.simulation_config.read_text())
    assert raw["run"]["dL"] > 100.0  # keeps the 100 um soma in one segment


def test_files_are_uncompressed_by_default(small_ping):
    with h5py.File(small_ping.edges_file) as h5:
        assert h5["edges/ping_to_ping/source_node_id"].compression is None


def test_gzip_is_an_explicit_choice(tmp_path):
    from network_builders import n_pairs

    built = n_pairs(tmp_path / "gz", n_pairs=3, compression="gzip")
    with h5py.File(built.edges_file) as h5:
        assert h5["edges/pairs_to_pairs/source_node_id"].compression == "gzip"
    with pytest.raises(ValueError, match="compression"):
        n_pairs(tmp_path / "bad", n_pairs=3, compression="lzf")
    assert not (tmp_path / "bad").exists()


def test_existing_output_is_kept_unless_overwrite(tmp_path):
    from network_builders import n_pairs

    out = tmp_path / "net"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(ValueError, match="did not write"):  # not ours: no overwrite would help, none is offered
        n_pairs(out, n_pairs=2)
    assert (out / "precious.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="did not write"):  # a folder the tool did not write is never replaced
        n_pairs(out, n_pairs=2, overwrite=True)
    assert (out / "precious.txt").read_text() == "keep me"
    ours = tmp_path / "ours"
    n_pairs(ours, n_pairs=2)
    n_pairs(ours, n_pairs=3, overwrite=True)
    assert json.loads((ours / "network_parameters.json").read_text())["n_nodes"] == 6
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers, no lock
