"""The contract with bmtk's internals: one test per helper of bmtk_scaling._bmtk_private.

When bmtk changes, the failing test names the helper to mend. The helpers run against real bionet
objects in one child process (tests/bmtk_contract_probe.py); the builder's adaptor runs here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from bmtk_scaling import _bmtk_private as bp
from bmtk_scaling.environment import configure_neuron_environment
from bmtk_scaling.errors import BmtkScalingError
from bmtk_scaling.sonata.spikes import read_spikes
from tests.helpers import add_spike_inputs

PROBE = Path(__file__).with_name("bmtk_contract_probe.py")


@pytest.fixture(scope="module")
def seen(tmp_path_factory):
    from network_builders import n_pairs

    net = n_pairs(tmp_path_factory.mktemp("contract") / "pairs", n_pairs=3, tstop=20.0)
    base = add_spike_inputs(net, {0: [5.0], 1: [6.0], 2: [7.0]})
    base["reports"] = {"soma_v": {"cells": "pairs", "variable_name": "v", "module": "membrane_report",
                                  "sections": "soma", "type": "compartment", "dt": 0.05, "start_time": 0.0,
                                  "end_time": 10.0}}
    base["node_sets"] = {"pairs": {"population": "pairs"}}
    net.simulation_config.write_text(json.dumps(base))
    out = net.path / "seen.json"
    proc = subprocess.run([sys.executable, str(PROBE), str(net.simulation_config), str(out)], capture_output=True,
                          text=True, timeout=300, env=configure_neuron_environment(dict(os.environ)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_check_bmtk_version(monkeypatch):
    assert bp.check_bmtk_version("1.2.0") == "1.2.0"
    with pytest.raises(BmtkScalingError, match=r"bmtk 1\.3\.1 is installed.*bmtk~=1\.2\.0.*BMTK_SCALING_ANY_BMTK"):
        bp.check_bmtk_version("1.3.1")
    monkeypatch.setenv(bp.OVERRIDE_ENV, "1")
    assert bp.check_bmtk_version("1.3.1") == "1.3.1"


def test_nodes_at_rows(seen):
    assert seen["nodes_at_rows"] == [1, 4, 5]


def test_rows_built_here(seen):
    assert seen["local_cells"]["pairs"] == [0, 2, 3]
    assert seen["populations_restored"]


def test_counting_cell_builds(seen):
    assert seen["cells_counted"] == 3 and seen["build_cell_restored"]


def test_local_cells(seen):
    assert seen["local_gids"] == [0, 2, 3]  # pairs come first: gid = node id
    assert seen["local_cells"]["inputs"] == []  # virtual: never built as cells


def test_virtual_populations(seen):
    assert seen["virtual_populations"] == ["inputs"]


def test_cell_synapses(seen):
    # senders 0 and 2 (pairs 0 and 1) get one input synapse each, receiver 3 one from its sender (node 2)
    assert seen["cell_synapses"] == {"0": 1, "2": 1, "3": 1}


def test_simulation_modules_and_set(seen):
    assert "SpikesMod" in seen["module_types"] and "SomaReport" in seen["module_types"]
    assert seen["modules_after_set"] == ["SpikesMod"]


def test_initialize_report(seen):
    plan = seen["report_plan"]
    assert plan["variables"] == ["v"] and plan["recorder_has_cells"]
    assert plan["elements"] == {"0": 1, "2": 1, "3": 1}  # one soma segment per local cell, in gid order
    assert (plan["start_step"], plan["end_step"], plan["dt_step"]) == (0, 400.0, 2)  # dt 0.025
    assert plan["file_name"].endswith("soma_v.h5")


def test_only_edge_populations(seen):
    assert seen["edge_populations_within"] == ["pairs_to_pairs"]
    assert seen["edge_populations_after"] == ["inputs_to_pairs", "pairs_to_pairs"]


def test_record_spike(seen):
    spikes = read_spikes(Path(seen["spikes_file"]))
    assert spikes[["population", "node_id", "timestamp"]].values.tolist() == [["pairs", 3, 12.5]]


def test_sparse_network_class(tmp_path):
    from bmtk.builder import NetworkBuilder

    from network_builders.sparse_adaptor import EdgeList, sparse_network

    net = NetworkBuilder("n", adaptor_cls=sparse_network())
    net.add_nodes(N=4, model_type="biophysical")
    net.add_edges(connection_rule=EdgeList(np.array([0, 1, 3]), np.array([2, 2, 0])), model_template="exp2syn",
                  syn_weight=1.0, delay=1.0)
    net.build()
    assert net.nedges == 3
    net.save(output_dir=str(tmp_path), compression=None)
    with h5py.File(tmp_path / "n_n_edges.h5") as h5:
        pop = h5["edges/n_to_n"]
        pairs = sorted(zip(pop["source_node_id"][()].tolist(), pop["target_node_id"][()].tolist(), strict=True))
    assert pairs == [(0, 2), (1, 2), (3, 0)]
    with pytest.raises(BmtkScalingError, match="target node ids are not in the target selection"):
        bad = NetworkBuilder("b", adaptor_cls=sparse_network())
        bad.add_nodes(N=2, model_type="biophysical")
        bad.add_edges(connection_rule=EdgeList(np.array([0]), np.array([5])), model_template="exp2syn")
        bad.build()


def test_init_connections(seen):
    assert seen["init_connections_keeps_stream"]


def test_edge_populations(seen):
    assert "pairs_to_pairs" in seen["edge_populations"] and "inputs_to_pairs" in seen["edge_populations"]


def test_edge_type_props(seen):
    assert seen["edge_type_props"] == {"dynamics_params_loaded": True, "has_template": True, "cached": True}


def test_cell_helpers_for_placement(seen):
    assert seen["is_morphological"]
    n_secs, n_segments = seen["segment_sections"]
    assert n_secs == n_segments >= 1
    assert seen["cell_node"]


def test_only_target_cells(seen):
    assert seen["only_target_cells_within"] == [2]
    assert seen["only_target_cells_after"] == [0, 2, 3]


def test_lean_cell_loading(seen):
    assert seen["lean_cell_loading"] == {"proxied": True, "restored": True, "bmtk_calls_it": True,
                                         "same_cells": True, "template": "BmtkScalingBiophys1"}


def test_is_point_process_cell(seen):
    assert seen["is_point_process_cell"] is False  # the probe's cells are BioCells


def test_returns_syn_weight(seen):
    assert seen["returns_syn_weight"] == {"wmax": True, "default_weight_fnc": True, "gaussianLL": False}


def test_is_bmtk_exp2syn_setter(seen):
    """The hoc loop of per_edge makes exactly this: an Exp2Syn with e, tau1 and tau2 and nothing else set."""
    assert seen["exp2syn_setter"] == {"is_bmtk": True, "kind": "Exp2Syn", "values": [-70.0, 0.7, 4.0],
                                      "sets": ["syn.e", "syn.tau1", "syn.tau2"]}


def test_forget_morphologies(seen):
    assert seen["forget_morphologies"] == {"kept_before": True, "forgotten": 1, "freed": True}


def test_round_robin_rows(seen):
    assert seen["round_robin_rows"] == {"pairs": [1, 3, 5], "inputs": [1]}  # 6 pair cells, 3 spike inputs


def test_use_simulator(seen):
    assert seen["use_simulator"]

def test_ecp_helpers(seen):
    """ecp_without_extracellular, ecp_cell_gids, ecp_transfer_matrix, EcpRows: bmtk's blocks, the files it made."""
    ecp = seen["ecp"]
    assert ecp["extracellular_inserted"] is False and ecp["restored"]
    # chunk rows under the block: whole chunks written with HDF5's chunk cache off; over it: HDF5's default cache
    for case, block, chunks, cached in (("aligned", 256, [200, 10], False), ("unaligned", 64, [400, 3], True)):
        got = ecp[case]
        assert got["gids"] == ecp["local_gids"] and got["shapes_fit"]
        assert got["block"] == block and got["steps"] == 800 and got["buffers_before"] == len(got["gids"])
        assert got["buffers_after"] == 0  # bmtk's block writes the sum only
        assert len(got["cache_bytes"]) == 1 and (got["cache_bytes"][0] > 0) == cached
        assert got["sum_written"]  # rows handed over in two calls, blocks as bmtk's
        assert got["files"] == [{"equal": True, "chunks": chunks, "maxshape": [None, got["channels"]],
                                 "dtype": "float64", "shape": [800, got["channels"]]}] * len(got["gids"])
    alone = ecp["no_contributions"]
    assert alone["sum_written"] and alone["files"] == [] and alone["buffers_after"] == 0
