"""What stock bmtk accepts, the plugin accepts: bmtk's ``${configdir}``, 0 ms spike-input edges onto IntFire1
cells, an edge-types table without ``model_template``; and a rank's bug reaches the user whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bmtk_scaling.sonata.spikes import read_spikes
from tests.fixtures.multicompartment import build_fixture
from tests.helpers import cli


@pytest.mark.slow
@pytest.mark.mpi
def test_configdir_zero_delay_inputs_and_no_model_template_run_as_stock(tmp_path):
    from bmtk_scaling.config.derive import derive_config, write_config
    from bmtk_scaling.run.launcher import run_config
    from bmtk_scaling.sonata.configs import load_config

    net = build_fixture(tmp_path / "fixture_net", point_cells=3, tstop=200.0)
    config = net / "config.simulation.json"
    stock_cfg = write_config(derive_config(load_config(config).data, output_dir="$BASE_DIR/stock", engine="neuron",
                                           neuron_loop="bmtk", synapses="bmtk", cell_build="bmtk"),
                             config, net / "stock.json")
    stock = read_spikes(Path(run_config(stock_cfg, 1).spikes_file))
    assert (stock["population"] == "lif").sum() > 0  # the 0 ms inputs drive the IntFire1 cells
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = cli("configure", str(config), "--engine", "neuron", "--out", str(elsewhere / "mine.json"))
    assert proc.returncode == 0, proc.stderr
    proc = cli("run", str(elsewhere / "mine.json"), "--ranks", "2", cwd=tmp_path)  # shared synapses, the default
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    got = read_spikes(net / "output" / "spikes.h5")  # ${configdir} of the derived config still names the network's
    columns = ["population", "node_id", "timestamp"]
    assert np.array_equal(got[columns].to_numpy(), stock[columns].to_numpy())


def test_a_ranks_bug_reaches_the_user_with_its_traceback(tmp_path):
    """Two ranks failing at once: each cause on a line of its own, the first bug's traceback in full."""
    from bmtk_scaling.run.launcher import _failure_message
    from bmtk_scaling.run.rank_main import report_failure

    def lookup(table):
        return table["model_template"]

    for rank in (0, 1):
        try:
            lookup({})
        except KeyError as err:
            report_failure(rank, err, tmp_path)
    message = _failure_message(Path("config.json"), 2, 1, "", "", tmp_path)
    lines = message.splitlines()
    assert lines[1:3] == ["  rank 0: KeyError: 'model_template'", "  rank 1: KeyError: 'model_template'"]
    assert "traceback of rank 0:" in message and "in lookup" in message and 'table["model_template"]' in message
    refused = ValueError("run.dt must be positive")
    report_failure(0, refused, tmp_path / "input")
    assert "Traceback" not in _failure_message(Path("c.json"), 1, 1, "", "", tmp_path / "input")
