"""What CoreNEURON cannot run is refused by ``configure --engine coreneuron`` and by ``run``'s preflight,
before anything is compiled or launched (no simulation here: the refusals come first)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fixtures.multicompartment import build_fixture
from tests.helpers import cli


@pytest.fixture(scope="module")
def extracellular_net(tmp_path_factory) -> Path:
    """The fixture with bmtk's extracellular processor on its cells, as a user adds it (model_processing)."""
    net = build_fixture(tmp_path_factory.mktemp("xc") / "net")
    types = net / "network" / "cortex_node_types.csv"
    text = types.read_text()
    assert "aibs_perisomatic" in text
    types.write_text(text.replace("aibs_perisomatic", "aibs_perisomatic,extracellular"))
    return net


def test_configure_refuses_coreneuron_for_extracellular(extracellular_net, tmp_path):
    out = tmp_path / "cn.json"
    started = time.perf_counter()
    proc = cli("configure", str(extracellular_net / "config.simulation.json"), "--engine", "coreneuron",
               "--out", str(out))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "run it:" not in proc.stdout
    assert "extracellular" in proc.stderr and "Pyr uses" in proc.stderr and "--engine neuron" in proc.stderr
    assert not out.exists()
    assert time.perf_counter() - started < 60  # refused before any mechanism is compiled


def test_configure_for_neuron_still_says_how_to_run(extracellular_net, tmp_path):
    proc = cli("configure", str(extracellular_net / "config.simulation.json"), "--engine", "neuron",
               "--out", str(tmp_path / "n.json"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "run it:" in proc.stdout


def test_run_preflight_refuses_before_compiling(extracellular_net, tmp_path, monkeypatch):
    from bmtk_scaling.config.derive import derive_config, write_config
    from bmtk_scaling.errors import BmtkScalingError
    from bmtk_scaling.mechanisms import network
    from bmtk_scaling.run.preflight import plan_run
    from bmtk_scaling.sonata.configs import load_config

    config = extracellular_net / "config.simulation.json"
    cn = write_config(derive_config(load_config(config).data, engine="coreneuron"), config,
                      extracellular_net / "cn.json", overwrite=True)

    def no_compiling(*args, **kwargs):
        raise AssertionError("the preflight compiled mechanisms before refusing")

    monkeypatch.setattr(network, "prepare", no_compiling)
    with pytest.raises(BmtkScalingError, match="extracellular"):
        plan_run(cn, 2)


def test_the_simulation_configs_engine_wins_over_the_circuit_configs(tmp_path):
    """bmtk's bio_450cells names target_simulator NEURON in its circuit config as well: the run must still use the
    engine the simulation config (the one configure wrote, the one the preflight read) names."""
    import json

    from bmtk_scaling.sonata.configs import resolved_for_bmtk

    (tmp_path / "circuit.json").write_text(json.dumps({"target_simulator": "NEURON", "networks": {"nodes": []}}))
    (tmp_path / "sim.json").write_text(json.dumps({"target_simulator": "CORENEURON", "network": "circuit.json",
                                                   "run": {"tstop": 1.0, "dt": 0.1}, "bmtk_scaling": {}}))
    resolved = resolved_for_bmtk(tmp_path / "sim.json")
    assert resolved["target_simulator"] == "CORENEURON"
    assert resolved["networks"] == {"nodes": []}  # the circuit's sections still replace the simulation's


def test_file_mode_refuses_lif_cells_before_anything_runs(tmp_path):
    """CoreNEURON file mode reads spikes back on the dt grid; IntFire1 cells spike between steps."""
    net = build_fixture(tmp_path / "net", n_lif=2)
    out = tmp_path / "fm.json"
    proc = cli("configure", str(net / "config.simulation.json"), "--engine", "coreneuron", "--file-mode",
               "--out", str(out))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "LIF use IntFire1" in proc.stderr and "--no-file-mode" in proc.stderr
    assert not out.exists() and "run it:" not in proc.stdout
