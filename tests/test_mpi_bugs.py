"""bmtk's open MPI bugs, on 2 ranks with the affected cell on rank 1, against 1-rank stock bmtk.

- an ``IClamp`` input on a cell not on rank 0 (AllenInstitute/bmtk #331),
- ``netcon_report`` (synapse) and membrane reports under MPI (#175),
- reports recorded as zeros under psolve (#282): the plugin records them with ``Vector.record``.

Each report and the spikes must equal what stock bmtk writes on 1 rank, on bmtk's own loop, NEURON psolve
and CoreNEURON.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from bmtk_scaling.sonata.spikes import read_spikes
from tests.fixtures.multicompartment import build_fixture

pytestmark = [pytest.mark.slow, pytest.mark.mpi]
CELL = 9  # an inhibitory cell; node 2 joins it on rank 1, every other cell is on rank 0
REPORTS = ("soma_report.h5", "synapses_report.h5")


def _run(net: Path, name: str, ranks: int, **switches) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    from bmtk_scaling.config.derive import derive_config, write_config
    from bmtk_scaling.run.launcher import run_config
    from bmtk_scaling.sonata.configs import load_config

    config = net / "config.simulation.json"
    cfg = write_config(derive_config(load_config(config).data, output_dir=f"$BASE_DIR/out_{name}", **switches),
                       config, net / f"{name}.json")
    result = run_config(cfg, ranks)
    spikes = read_spikes(Path(result.spikes_file))[["node_id", "timestamp"]].to_numpy()
    reports = {}
    for report in REPORTS:
        with h5py.File(net / f"out_{name}" / report) as h5:
            reports[report] = h5["report/cortex/data"][()]
    return spikes, reports


@pytest.fixture(scope="module")
def net(tmp_path_factory) -> Path:
    from bmtk_scaling.partition.map_file import PartitionMap, write_map
    from bmtk_scaling.sonata.configs import network_files
    from bmtk_scaling.sonata.fingerprint import network_fingerprint

    net = build_fixture(tmp_path_factory.mktemp("mpibugs") / "fixture_net", reports=("soma", "synapses"),
                        tstop=100.0)
    config = net / "config.simulation.json"
    sim = json.loads(config.read_text())
    only = {"population": "cortex", "node_id": [CELL]}
    for report in sim["reports"].values():
        report["cells"] = only
    sim["inputs"]["clamp"] = {"input_type": "current_clamp", "module": "IClamp", "node_set": only, "amp": 2.0,
                              "delay": 20.0, "duration": 50.0}
    config.write_text(json.dumps(sim, indent=2))
    ranks = np.zeros(12, dtype=np.int32)
    ranks[[2, CELL]] = 1
    files = network_files(config)
    write_map(PartitionMap(strategy="by_hand", n_ranks=2, seed=0, fingerprint=network_fingerprint(files),
                           assignment={"cortex": (np.arange(12), ranks)}), net / "cell_on_rank1.h5")
    return net


@pytest.fixture(scope="module")
def stock(net):
    spikes, reports = _run(net, "stock", 1, engine="neuron", neuron_loop="bmtk", synapses="bmtk", cell_build="bmtk")
    v = reports["soma_report.h5"][:, 0]  # 0.1 ms samples: the clamp holds the cell far above rest from 20 to 70 ms
    assert v[300:700].mean() > -50.0 > v[750:].mean(), "the clamp must act on the cell"
    for report, data in reports.items():
        assert np.abs(data).max() > 0 and np.ptp(data) > 0, report
    assert reports["synapses_report.h5"].shape[1] > 1
    return spikes, reports


@pytest.mark.parametrize("variant", ["bmtk_loop", "neuron_psolve", "coreneuron"])
def test_clamp_and_reports_of_a_cell_on_rank_1_equal_stock(net, stock, variant):
    switches = {"bmtk_loop": {"engine": "neuron", "neuron_loop": "bmtk", "synapses": "bmtk", "cell_build": "bmtk"},
                "neuron_psolve": {"engine": "neuron"}, "coreneuron": {"engine": "coreneuron"}}[variant]
    spikes, reports = _run(net, variant, 2, partition="cell_on_rank1.h5", **switches)
    assert np.array_equal(spikes, stock[0])
    for report in REPORTS:
        np.testing.assert_array_equal(reports[report], stock[1][report], err_msg=report)
