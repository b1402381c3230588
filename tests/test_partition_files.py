"""The map file, the new config that names it, and ``bmtk-scaling partition`` as a user runs it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import libsonata
import numpy as np
import pytest

from bmtk_scaling.config.derive import write_config_with_partition
from bmtk_scaling.config.settings import read_settings
from bmtk_scaling.partition.map_file import check_map, default_map_path, make_map, read_map, write_map
from bmtk_scaling.partition.strategies import STRATEGIES
from bmtk_scaling.sonata.configs import network_files
from bmtk_scaling.sonata.fingerprint import network_fingerprint
from bmtk_scaling.sonata.graph import read_nodes
from tests.helpers import cli


@pytest.fixture
def pairs(tmp_path, small_pairs):
    """A private copy of the small N-Pairs network (tests here write into it)."""
    shutil.copytree(small_pairs.path, tmp_path / "net")
    return tmp_path / "net"


def _check(pmap, net, n_ranks):
    files = network_files(net / "simulation_config.json")
    check_map(pmap, read_nodes(files), network_fingerprint(files), n_ranks)


def test_map_round_trip_records_provenance(pairs):
    pmap = make_map(pairs / "simulation_config.json", 3, "random", seed=9)
    path = write_map(pmap, default_map_path(network_files(pairs / "circuit_config.json"), "random", 3, 9))
    assert path == pairs / "partitions" / "random_3_seed9.h5"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left behind
    back = read_map(path)
    assert (back.strategy, back.n_ranks, back.seed) == ("random", 3, 9)
    assert back.fingerprint == network_fingerprint(network_files(pairs / "simulation_config.json"))
    ids, ranks = back.assignment["pairs"]
    assert np.array_equal(ids, np.arange(24)) and np.array_equal(ranks, pmap.assignment["pairs"][1])
    assert back.metrics["communication_volume"] == pmap.metrics["communication_volume"]
    _check(back, pairs, 3)
    with pytest.raises(ValueError, match="exists"):
        write_map(pmap, path)


def test_check_map_names_what_is_wrong(pairs):
    pmap = make_map(pairs / "simulation_config.json", 2, "metis")
    with pytest.raises(ValueError, match="made for 2 ranks, but this run has 3 MPI ranks"):
        _check(pmap, pairs, 3)
    ids, ranks = pmap.assignment["pairs"]
    pmap.assignment["pairs"] = (ids[1:], ranks[1:])
    with pytest.raises(ValueError, match=r"misses 1 of the 24 nodes of 'pairs': node ids \[0\]"):
        _check(pmap, pairs, 2)
    pmap.assignment["pairs"] = (np.append(ids, 5), np.append(ranks, 0))
    with pytest.raises(ValueError, match=r"more than once: node ids \[5\]"):
        _check(pmap, pairs, 2)
    pmap.assignment["pairs"] = (ids, np.where(ranks == 1, 2, ranks))
    with pytest.raises(ValueError, match="outside 0..1"):
        _check(pmap, pairs, 2)
    pmap.assignment["pairs"] = (ids, ranks)
    types = pairs / "network" / "pairs_pairs_edge_types.csv"
    types.write_text(types.read_text().replace(" 1.0 ", " 2.0 ", 1))  # delay 1 -> 2 ms
    with pytest.raises(ValueError, match="another network.*pairs_pairs_edge_types.csv"):
        _check(pmap, pairs, 2)


def test_new_config_names_the_map_and_libsonata_parses_it(pairs):
    original = (pairs / "simulation_config.json").read_bytes()
    path = write_map(make_map(pairs / "simulation_config.json", 2, "metis"), pairs / "partitions" / "m2.h5")
    new = write_config_with_partition(pairs / "simulation_config.json", path, "sim_metis2.json")
    assert new == pairs / "sim_metis2.json"
    assert (pairs / "simulation_config.json").read_bytes() == original
    data = json.loads(new.read_text())
    assert data["bmtk_scaling"]["partition"] == "$BASE_DIR/partitions/m2.h5"
    assert read_settings(data).partition == "$BASE_DIR/partitions/m2.h5"
    sonata = libsonata.SimulationConfig.from_file(str(new))
    assert Path(sonata.network) == pairs / "circuit_config.json"
    expanded = json.loads(sonata.expanded_json)["bmtk_scaling"]["partition"]
    assert (Path(sonata.base_path) / expanded).resolve() == path.resolve()
    # other sections of ours are kept; a map outside the network folder is named by absolute path
    data["bmtk_scaling"]["coreneuron"] = {"nthread": 2}
    (pairs / "sim_cn.json").write_text(json.dumps(data))
    outside = write_map(read_map(path), pairs.parent / "elsewhere" / "m2.h5")
    again = json.loads(write_config_with_partition(pairs / "sim_cn.json", outside, "sim_cn_m2.json").read_text())
    assert again["bmtk_scaling"]["partition"] == str(outside.resolve())
    assert again["bmtk_scaling"]["coreneuron"]["nthread"] == 2


def test_new_config_refuses_unsafe_targets(pairs, small_cliques):
    sim = pairs / "simulation_config.json"
    path = write_map(make_map(sim, 2, "random"), pairs / "partitions" / "r2.h5")
    with pytest.raises(ValueError, match="never edited"):
        write_config_with_partition(sim, path, sim)
    with pytest.raises(ValueError, match="beside simulation_config.json"):
        write_config_with_partition(sim, path, pairs.parent / "other.json")
    with pytest.raises(ValueError, match="circuit config"):
        write_config_with_partition(pairs / "circuit_config.json", path, "x.json")
    write_config_with_partition(sim, path, "x.json")
    with pytest.raises(ValueError, match="exists"):
        write_config_with_partition(sim, path, "x.json")
    cliques_map = write_map(make_map(small_cliques.simulation_config, 2, "random"), pairs / "cliques.h5")
    with pytest.raises(ValueError, match="misses|does not have"):
        write_config_with_partition(sim, cliques_map, "y.json")
    assert not (pairs / "y.json").exists()


def test_cli_writes_map_and_config_and_prints_metrics(pairs):
    proc = cli("partition", str(pairs / "simulation_config.json"), "--ranks", "2", "--strategy", "metis",
               "--config-out", "sim_metis2.json")
    assert proc.returncode == 0, proc.stderr
    for label in ("synapses cut", "communication volume", "imbalance", "min cross-rank delay"):
        assert label in proc.stdout
    assert read_map(pairs / "partitions" / "metis_2.h5").n_ranks == 2
    assert json.loads((pairs / "sim_metis2.json").read_text())["bmtk_scaling"]["partition"] == \
        "$BASE_DIR/partitions/metis_2.h5"
    again = cli("partition", str(pairs / "circuit_config.json"), "--ranks", "2", "--strategy", "metis")
    assert again.returncode == 2 and "exists" in again.stderr and "--overwrite" in again.stderr


def test_cli_compare_prints_every_strategy(pairs):
    proc = cli("partition", str(pairs / "circuit_config.json"), "--ranks", "3", "--compare")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[2:]}
    assert list(rows) == list(STRATEGIES)
    assert rows["round_robin"][2] == "12"  # every pair split: sender 2i and receiver 2i+1 on different ranks
    assert rows["metis"][2] == "0"
    assert not (pairs / "partitions").exists()


def test_cli_unknown_strategy_exits_2_with_the_list(pairs):
    proc = cli("partition", str(pairs / "simulation_config.json"), "--ranks", "2", "--strategy", "metsi")
    assert proc.returncode == 2
    assert "'metsi' is not one of" in proc.stderr
    assert all(name in proc.stderr for name in STRATEGIES)
    assert not (pairs / "partitions").exists()
