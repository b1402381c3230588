"""The ECP (bmtk's ``extracellular`` report) under psolve and CoreNEURON, and the modules psolve cannot run.

The project's multi-compartment fixture carries an ECP report (a 6-channel linear electrode, per-cell
contributions): stock bmtk's ``ecp.h5`` and contribution files against the plugin's on NEURON psolve
and CoreNEURON, 2 ranks under a random partition (psolve under other maps too), and 1 rank in several
psolve chunks. Stock inserts NEURON's extracellular mechanism for the ECP, the plugin does not (see
docs/real-networks.md), so the values agree within 1e-9 of each channel's largest value rather than bitwise.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from bmtk_scaling.errors import ConfigError
from bmtk_scaling.run.preflight import plan_run
from tests.fixtures.multicompartment import build_fixture
from tests.helpers import cli

TOLERANCE = 1e-9  # of each channel's largest |value|


@pytest.fixture(scope="module")
def ecp_net(tmp_path_factory) -> Path:
    return build_fixture(tmp_path_factory.mktemp("ecp") / "fixture_net", reports=("ecp",), tstop=200.0)


def _derived(net: Path, name: str, **changes) -> Path:
    data = json.loads((net / "config.simulation.json").read_text())
    for key, value in changes.items():
        data[key] = value
    path = net / f"{name}.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def _ecp(folder: Path) -> tuple[np.ndarray, dict]:
    with h5py.File(folder / "ecp.h5") as h5:
        layout = {"root": {k: np.asarray(v).tolist() for k, v in h5.attrs.items()},
                  "datasets": sorted(h5["ecp"].keys()),
                  "attrs": {k: dict(h5["ecp"][k].attrs) for k in h5["ecp"]},
                  "shapes": {k: (h5["ecp"][k].shape, h5["ecp"][k].dtype.str, h5["ecp"][k].maxshape) for k in h5["ecp"]},
                  "time": h5["ecp/time"][()].tolist(), "channels": h5["ecp/channel_id"][()].tolist()}
        return h5["ecp/data"][()], layout


def _worst(expected: np.ndarray, got: np.ndarray) -> float:
    assert expected.shape == got.shape
    scale = np.abs(expected).max(axis=0)
    assert scale.min() > 0
    return float((np.abs(expected - got) / scale).max())


# --- refused before launch ------------------------------------------------------------------------------------


REFUSED = [
    ("inputs", {"module": "xstim", "input_type": "lfp", "positions_file": "x.csv", "waveform": {}},
     ("xstim", "e_extracellular", "neuron_loop")),
    ("inputs", {"module": "SEClamp", "input_type": "voltage_clamp", "node_set": "cortex", "amp": 10.0,
                "delay": 1.0, "duration": 5.0}, ("SEClamp", "series resistance", "IClamp")),
    ("reports", {"module": "clamp_report", "variable_name": "ic", "file_name": "c.h5"},
     ("clamp_report", "clamp's current", "neuron_loop")),
    ("reports", {"module": "save_synapses", "network_dir": "saved"}, ("save_synapses", "NetCon", "synapses")),
    ("reports", {"module": "membrane_report", "cells": "cortex", "variable_name": "v", "sections": "soma",
                 "transform": {"v": "first_element"}}, ("transform", "first_element", "afterwards")),
    ("reports", {"module": "extracellular", "electrode_positions": "e.csv", "file_name": "ecp.h5",
                 "contributions_dir": "/tmp/somewhere_else"}, ("contributions_dir", "outside", "relative")),
    ("reports", {"module": "extracellular", "electrode_positions": "$BASE_DIR/none.csv", "file_name": "ecp.h5"},
     ("electrode_positions", "not a file", "electrode file")),
]


@pytest.mark.parametrize(("section", "entry", "needles"), REFUSED, ids=[r[1]["module"] for r in REFUSED])
def test_modules_psolve_cannot_run_are_refused_before_launch(ecp_net, section, entry, needles):
    config = json.loads((ecp_net / "config.simulation.json").read_text())
    config[section] = {**config.get(section, {}), "extra": entry}
    path = _derived(ecp_net, f"refused_{entry['module']}", **config)
    with pytest.raises(ConfigError) as err:
        plan_run(path, 1, check_output=False)
    assert "extra" in str(err.value)
    for needle in needles:
        assert needle in str(err.value), str(err.value)


def test_ecp_in_file_mode_is_refused_before_launch(ecp_net, tmp_path):
    config = json.loads((ecp_net / "config.simulation.json").read_text())
    config["target_simulator"] = "CORENEURON"
    config["bmtk_scaling"] = {"coreneuron": {"file_mode": True}}
    path = _derived(ecp_net, "file_mode", **config)
    proc = cli("run", str(path), "--ranks", "1", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "file mode frees" in proc.stderr and "file_mode false" in proc.stderr
    assert not (ecp_net / "output").exists()


# --- the ECP against stock ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ecp_compared(ecp_net) -> dict:
    config = ecp_net / "config.simulation.json"
    proc = cli("partition", str(config), "--ranks", "2", "--strategy", "random", "--config-out",
               str(ecp_net / "random2.json"))
    assert proc.returncode == 0, proc.stderr
    proc = cli("compare", str(ecp_net / "random2.json"), "--ranks", "2", "--out", str(ecp_net.parent / "cmp"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((ecp_net.parent / "cmp" / "compare.json").read_text())
    return {v["variant"]: Path(v["spikes_file"]).parent for v in report["variants"]} | {"report": report}


@pytest.mark.slow
@pytest.mark.mpi
def test_ecp_equals_stock_on_both_engines(ecp_compared, ecp_net):
    """ecp.h5 (layout, datasets, attributes, values) and every per-cell contribution file, 2 ranks, random partition."""
    report = ecp_compared["report"]
    assert [v["variant"] for v in report["variants"]] == ["bmtk_neuron", "neuron_psolve", "coreneuron"]
    assert all(v["spikes_vs_stock"]["identical"] for v in report["variants"])
    stock, layout = _ecp(ecp_compared["bmtk_neuron"])
    assert stock.shape == (2000, 6) and layout["time"] == [0.0, 200.0, 0.1]
    cells = sorted(p.name for p in (ecp_compared["bmtk_neuron"] / "ecp_contributions").iterdir())
    assert len(cells) == 12
    for variant in ("neuron_psolve", "coreneuron"):
        folder = ecp_compared[variant]
        got, got_layout = _ecp(folder)
        assert got_layout == layout
        assert _worst(stock, got) < TOLERANCE, variant
        assert sorted(p.name for p in (folder / "ecp_contributions").iterdir()) == cells
        for name in cells:
            with h5py.File(ecp_compared["bmtk_neuron"] / "ecp_contributions" / name) as a, \
                    h5py.File(folder / "ecp_contributions" / name) as b:
                assert list(b) == list(a) == ["ecp"]
                made = [(h["ecp/data"].shape, h["ecp/data"].dtype.str, h["ecp/data"].chunks, h["ecp/data"].maxshape,
                           dict(h["ecp/data"].attrs), dict(h.attrs)) for h in (a, b)]
                assert made[1] == made[0]  # the plugin writes the files bmtk created: bmtk's chunks and all
                assert _worst(a["ecp/data"][()], b["ecp/data"][()]) < TOLERANCE, (variant, name)
        assert not list(folder.glob("tmp_*"))  # bmtk's per-rank files are gone
        assert "copied by EcpImem" in (folder / "log.txt").read_text(errors="replace")  # the mechanism on both
    assert not (ecp_net / "ecp_contributions").exists()  # inside the output folder, not the network's
    # the same currents, copied from NEURON's arrays and from CoreNEURON's: far closer than to stock
    assert _worst(_ecp(ecp_compared["neuron_psolve"])[0], _ecp(ecp_compared["coreneuron"])[0]) < 1e-12


@pytest.mark.slow
@pytest.mark.mpi
def test_ecp_in_chunks_with_bmtks_model(ecp_compared, ecp_net):
    """1 rank, the currents copied by EcpImem and folded in several psolve chunks, bmtk's extracellular mechanism
    kept: the same model as stock, so only the rounding of one matrix product per chunk (against one per step)
    remains."""
    from bmtk_scaling.config.derive import derive_config, write_config
    from bmtk_scaling.sonata.configs import load_config

    config = ecp_net / "config.simulation.json"
    cfg = write_config(derive_config(load_config(config).data, output_dir="$BASE_DIR/out_chunks",
                                     ecp_buffer_mib=1, ecp_extracellular=True, synapses="per_edge"),
                       config, ecp_net / "chunks.json", overwrite=True)
    proc = cli("run", str(cfg), "--ranks", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (ecp_net / "out_chunks" / "log.txt").read_text(errors="replace")
    chunks = int(re.search(r"ECP: (\d+) psolve chunk", log).group(1))
    assert chunks > 1
    assert "copied by EcpImem" in log  # the mechanism reads i_membrane_ under NEURON's extracellular as well
    stock, _ = _ecp(ecp_compared["bmtk_neuron"])
    got, _ = _ecp(ecp_net / "out_chunks")
    assert _worst(stock, got) < TOLERANCE  # stock ran on 2 ranks: its sum over ranks rounds differently


@pytest.mark.slow
@pytest.mark.mpi
@pytest.mark.parametrize("strategy", ["round_robin", "metis_volume"])
def test_ecp_under_other_partitions(ecp_compared, ecp_net, strategy):
    """The ECP does not depend on where cells are placed: another strategy's map, psolve on 2 ranks, equals
    the random map's run (which equals stock, above) to rounding, and stock within the tolerance."""
    config = ecp_net / f"{strategy}2.json"
    proc = cli("partition", str(ecp_net / "config.simulation.json"), "--ranks", "2", "--strategy", strategy,
               "--config-out", str(config))
    assert proc.returncode == 0, proc.stderr
    out = ecp_net.parent / f"out_{strategy}"
    proc = cli("run", str(config), "--ranks", "2", "--output-dir", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    got, layout = _ecp(out)
    random_map, random_layout = _ecp(ecp_compared["neuron_psolve"])
    assert layout == random_layout
    assert _worst(random_map, got) < 1e-12
    assert _worst(_ecp(ecp_compared["bmtk_neuron"])[0], got) < TOLERANCE


@pytest.mark.slow
@pytest.mark.mpi
def test_coreneuron_copy_in_chunks_equals_its_recording(ecp_compared, ecp_net):
    """CoreNEURON, 1 rank, several psolve chunks: the currents copied by EcpImem from CoreNEURON's own arrays (its
    nodes in NEURON's order) against the same run recorded by Vector.record (``cell_permute`` 1 reorders the nodes,
    where the copy would read the wrong ones, so the plugin records there)."""
    from bmtk_scaling.config.derive import derive_config, write_config
    from bmtk_scaling.sonata.configs import load_config

    runs = {}
    for permute in (0, 1):
        out = f"core_permute{permute}"
        data = derive_config(load_config(ecp_net / "config.simulation.json").data, output_dir=f"$BASE_DIR/{out}",
                             ecp_buffer_mib=1, engine="coreneuron")
        data["bmtk_scaling"]["coreneuron"] = {**data["bmtk_scaling"].get("coreneuron", {}), "cell_permute": permute}
        cfg = write_config(data, ecp_net / "config.simulation.json", ecp_net / f"{out}.json", overwrite=True)
        proc = cli("run", str(cfg), "--ranks", "1")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        log = (ecp_net / out / "log.txt").read_text(errors="replace")
        assert int(re.search(r"ECP: (\d+) psolve chunk", log).group(1)) > 1
        assert ("copied by EcpImem" if permute == 0 else "recorded by Vector.record") in log
        runs[permute] = _ecp(ecp_net / out)
    assert runs[0][1] == runs[1][1]
    # cell_permute 1 solves the cells' matrices in another order, so the voltages round differently (2e-12 here);
    # a segment read from another node's current would be off by that current's whole size
    assert _worst(runs[1][0], runs[0][0]) < 1e-10
    assert _worst(_ecp(ecp_compared["bmtk_neuron"])[0], runs[0][0]) < TOLERANCE


@pytest.mark.parametrize(("settings", "copies"), [
    ({"engine": "neuron"}, True),
    ({"engine": "coreneuron"}, True),
    ({"engine": "coreneuron", "coreneuron": {"cell_permute": 0}}, True),
    ({"engine": "coreneuron", "coreneuron": {"cell_permute": 1}}, False),  # nodes reordered: NEURON's indices wrong
    ({"engine": "coreneuron", "coreneuron": {"nthread": 2}}, False),  # the copy reads one thread's nodes
    ({"engine": "coreneuron_gpu"}, False),  # the currents live in the GPU's memory
])
def test_where_the_copy_serves(monkeypatch, settings, copies):
    """Which runs copy the currents with EcpImem and which record them (the GPU rows cannot run here)."""
    from types import SimpleNamespace

    from bmtk_scaling.bionet import simulator
    from bmtk_scaling.config.settings import Settings

    monkeypatch.setattr(simulator, "mechanism_loaded", lambda: True)  # as in a run, whose build carries it
    sim = SimpleNamespace(settings=Settings(**settings))
    assert simulator.ScalingBioSimulator._ecp_can_copy(sim) is copies
    monkeypatch.setattr(simulator, "mechanism_loaded", lambda: False)
    assert simulator.ScalingBioSimulator._ecp_can_copy(sim) is False


@pytest.mark.slow
@pytest.mark.mpi
def test_a_rank_without_ecp_cells(ecp_compared, ecp_net):
    """One ECP cell on 2 ranks: the other rank copies nothing and folds nothing, and the ECP is that cell's
    contribution file."""
    data = json.loads((ecp_net / "random2.json").read_text())
    data["reports"]["ecp"]["cells"] = {"population": "cortex", "node_id": [0]}
    config = ecp_net / "one_cell.json"
    config.write_text(json.dumps(data, indent=2))
    out = ecp_net.parent / "out_one_cell"
    proc = cli("run", str(config), "--ranks", "2", "--output-dir", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "copied by EcpImem" in (out / "log.txt").read_text(errors="replace")
    got, _ = _ecp(out)
    files = list((out / "ecp_contributions").iterdir())
    assert len(files) == 1 and np.abs(got).max() > 0
    with h5py.File(files[0]) as h5:
        assert np.array_equal(h5["ecp/data"][()], got)
