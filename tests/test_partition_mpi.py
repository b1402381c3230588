"""bionet under real ``mpiexec -n 2`` and ``-n 3`` honours the partition map, and refuses bad ones.

Every cell must live on the rank the map names (NEURON's ``pc.gid_exists`` asked on each rank), and
the spikes must be identical under every strategy and identical to a 1-rank run, for all three
benchmark networks: a partition changes where work happens, never what is computed.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from bmtk_scaling.config.derive import write_config_with_partition
from bmtk_scaling.partition.map_file import make_map, read_map, write_map
from bmtk_scaling.partition.strategies import STRATEGIES
from bmtk_scaling.sonata.spikes import read_spikes
from tests.helpers import run_network
from tests.mpi_helpers import PROBE, mpirun

pytestmark = [pytest.mark.mpi, pytest.mark.slow]

NETWORKS = {
    "ping": ("ping_assembly", {"n_assemblies": 2, "cells_per_assembly": 60, "seed": 2, "drive_start": 10.0,
                              "tstop": 100.0}),  # the rhythm starts with the drive; 100 ms give ~3 gamma cycles
    "pairs": ("n_pairs", {"n_pairs": 10, "tstop": 30.0}),
    "cliques": ("nk_cliques", {"n_cliques": 3, "clique_size": 4, "tstop": 40.0}),
}


def _spike_array(path) -> np.ndarray:
    df = read_spikes(path)
    arr = np.column_stack([df["node_id"].to_numpy(np.float64), df["timestamp"].to_numpy(np.float64)])
    return arr[np.lexsort((arr[:, 1], arr[:, 0]))]


@pytest.fixture(scope="module", params=list(NETWORKS))
def network(request, tmp_path_factory):
    """A built network and the sorted (node_id, time) spikes of its 1-rank run."""
    import network_builders

    builder, params = NETWORKS[request.param]
    built = getattr(network_builders, builder)(tmp_path_factory.mktemp(request.param) / "net", **params)
    run_network(built.path)
    reference = _spike_array(built.path / "output" / "spikes.h5")
    assert len(reference) >= 10, "too few spikes for the comparison to mean anything"
    return built, reference


def _probe(built, config: str, n_ranks: int, out_dir) -> list[dict]:
    out_dir.mkdir()
    proc = mpirun(n_ranks, [str(PROBE), config, str(out_dir), str(built.n_nodes)], cwd=built.path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((out_dir / f"rank{r}.json").read_text()) for r in range(n_ranks)]
    assert [r["nhost"] for r in ranks] == [n_ranks] * n_ranks, "NEURON fell back to serial"
    return ranks


@pytest.mark.parametrize("n_ranks", [2, 3])
def test_cells_live_where_the_map_says_and_spikes_never_change(network, n_ranks, tmp_path):
    built, reference = network
    for strategy in STRATEGIES:
        pmap = make_map(built.simulation_config, n_ranks, strategy, seed=1)
        path = write_map(pmap, built.path / "partitions" / f"{strategy}_{n_ranks}.h5", overwrite=True)
        config = write_config_with_partition(built.simulation_config, path, f"sim_{strategy}_{n_ranks}.json",
                                             overwrite=True)
        seen = _probe(built, config.name, n_ranks, tmp_path / strategy)
        ids, ranks = pmap.assignment[built.population]
        for info in seen:
            assert sorted(info["gids"]) == sorted(ids[ranks == info["rank"]].tolist()), (strategy, info["rank"])
        spikes = _spike_array(built.path / "output" / "spikes.h5")
        assert np.array_equal(spikes, reference), f"{strategy} on {n_ranks} ranks changed the spikes"


def test_without_a_map_bionet_deals_round_robin(small_pairs, tmp_path):
    seen = _probe(small_pairs, "simulation_config.json", 3, tmp_path / "stock")
    ids, ranks = make_map(small_pairs.simulation_config, 3, "round_robin").assignment[small_pairs.population]
    for info in seen:
        assert sorted(info["gids"]) == sorted(ids[ranks == info["rank"]].tolist())


def _break_ranks(net, path):
    write_map(make_map(net / "simulation_config.json", 3, "random"), path, overwrite=True)
    return "made for 3 ranks, but this run has 2 MPI ranks"


def _break_missing(net, path):
    pmap = read_map(path)
    ids, ranks = pmap.assignment["pairs"]
    pmap.assignment["pairs"] = (ids[:-1], ranks[:-1])
    write_map(pmap, path, overwrite=True)
    return "misses 1 of the 24 nodes of 'pairs': node ids [23]"


def _break_duplicate(net, path):
    pmap = read_map(path)
    ids, ranks = pmap.assignment["pairs"]
    pmap.assignment["pairs"] = (np.append(ids, 2), np.append(ranks, 1 - ranks[2]))
    write_map(pmap, path, overwrite=True)
    return "more than once: node ids [2]"


def _break_network(net, path):
    types = net / "network" / "pairs_pairs_edge_types.csv"
    types.write_text(types.read_text().replace(" 1.0 ", " 2.0 ", 1))  # the delay changes after the map was made
    return "was made for another network: its fingerprint differs in ['pairs_pairs_edge_types.csv']"


@pytest.mark.parametrize("breaker", [_break_ranks, _break_missing, _break_duplicate, _break_network],
                         ids=["rank-count", "missing-node", "duplicate-node", "fingerprint"])
def test_a_bad_map_stops_every_rank_before_any_cell_is_built(small_pairs, tmp_path, breaker):
    net = tmp_path / "net"
    shutil.copytree(small_pairs.path, net, ignore=shutil.ignore_patterns("output"))
    path = write_map(make_map(net / "simulation_config.json", 2, "metis"), net / "partitions" / "m.h5")
    config = write_config_with_partition(net / "simulation_config.json", path, "sim_m.json")
    needle = breaker(net, path)
    proc = mpirun(2, ["run_bionet.py", config.name], cwd=net, timeout=120)
    assert proc.returncode != 0
    assert needle in proc.stderr, proc.stderr[-3000:]
    assert "Building cells" not in proc.stdout + proc.stderr
    assert not (net / "output" / "spikes.h5").exists()


def _add_virtual_inputs(net) -> None:
    """A virtual (spike-input) population 'ext' of 3 nodes, each synapsing onto every receiver."""
    from bmtk.builder import NetworkBuilder

    pairs = NetworkBuilder("pairs")
    pairs.import_nodes(nodes_file_name=str(net / "network" / "pairs_nodes.h5"),
                       node_types_file_name=str(net / "network" / "pairs_node_types.csv"))
    ext = NetworkBuilder("ext")
    ext.add_nodes(N=3, model_type="virtual", pop_name="ext")
    ext.add_edges(source=ext.nodes(), target=pairs.nodes(), connection_rule=lambda s, t: t.node_id % 2,
                  syn_weight=0.5, delay=2.0, model_template="exp2syn", dynamics_params="exc.json",
                  target_sections=["soma"], distance_range=[0.0, 1e20])
    ext.build()
    ext.save(output_dir=str(net / "network"), compression=None)
    circuit = json.loads((net / "circuit_config.json").read_text())
    circuit["networks"]["nodes"].append({"nodes_file": "$NETWORK_DIR/ext_nodes.h5",
                                         "node_types_file": "$NETWORK_DIR/ext_node_types.csv",
                                         "populations": {"ext": {"type": "virtual"}}})
    circuit["networks"]["edges"].append({"edges_file": "$NETWORK_DIR/ext_pairs_edges.h5",
                                         "edge_types_file": "$NETWORK_DIR/ext_pairs_edge_types.csv",
                                         "populations": {"ext_to_pairs": {"type": "chemical"}}})
    (net / "circuit_config.json").write_text(json.dumps(circuit, indent=2))


def test_virtual_nodes_are_left_to_bmtk(small_pairs, tmp_path):
    from bmtk_scaling.sonata.graph import read_graph

    net = tmp_path / "net"
    shutil.copytree(small_pairs.path, net, ignore=shutil.ignore_patterns("output"))
    _add_virtual_inputs(net)
    graph = read_graph(net / "simulation_config.json")
    assert graph.n_vertices == 24 and [p.n_cells for p in graph.populations] == [24, 0]
    assert np.array_equal(graph.cost(), np.tile([1, 1 + 1 + 3], 12))  # virtual synapses cost their target
    pmap = make_map(net / "simulation_config.json", 2, "metis_volume")
    assert list(pmap.assignment) == ["pairs"] and pmap.metrics["synapses_cut"] == 0
    path = write_map(pmap, net / "partitions" / "v2.h5")
    config = write_config_with_partition(net / "simulation_config.json", path, "sim_v2.json")
    out = tmp_path / "probe"
    out.mkdir()
    proc = mpirun(2, [str(PROBE), config.name, str(out), "27"], cwd=net)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ids, ranks = pmap.assignment["pairs"]
    for r in range(2):
        info = json.loads((out / f"rank{r}.json").read_text())
        assert info["nhost"] == 2 and info["gids"] == sorted(ids[ranks == r].tolist())  # no virtual gid built
    run_network(small_pairs.path)  # 1 rank, no virtual population, no map
    reference = _spike_array(small_pairs.path / "output" / "spikes.h5")
    assert len(reference) >= 24 and np.array_equal(_spike_array(net / "output" / "spikes.h5"), reference)
