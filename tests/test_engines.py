"""Engine switches, the psolve simulator and the runner, on real NEURON/CoreNEURON under real mpiexec."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import libsonata
import numpy as np
import pytest

from bmtk_scaling.config.derive import derive_config, write_config
from bmtk_scaling.errors import RunFailed
from bmtk_scaling.run.launcher import run_config
from bmtk_scaling.sonata.configs import load_config
from bmtk_scaling.sonata.spikes import read_spikes
from tests.helpers import add_spike_inputs, cli

pytestmark = [pytest.mark.mpi, pytest.mark.slow]


@pytest.fixture(scope="module")
def ping(tmp_path_factory):
    from network_builders import ping_assembly

    return ping_assembly(tmp_path_factory.mktemp("eng") / "ping", n_assemblies=2, cells_per_assembly=40, seed=2,
                         tstop=300.0)


def _variant(net, name: str, **switches) -> Path:
    cfg = derive_config(load_config(net.simulation_config).data, output_dir=f"$BASE_DIR/out_{name}", **switches)
    return write_config(cfg, net.simulation_config, net.path / f"{name}.json", overwrite=True)


def test_configure_writes_a_new_sonata_config(ping, tmp_path):
    out = tmp_path / "elsewhere" / "core.json"
    out.parent.mkdir()
    before = ping.simulation_config.read_text()
    proc = cli("configure", str(ping.simulation_config), "--engine", "coreneuron", "--cell-permute", "1",
               "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert ping.simulation_config.read_text() == before  # the old config is untouched
    new = json.loads(out.read_text())
    assert new["target_simulator"] == "CORENEURON"
    assert new["bmtk_scaling"]["coreneuron"]["cell_permute"] == 1
    sim = libsonata.SimulationConfig.from_file(str(out))
    assert sim.target_simulator == libsonata.SimulationConfig.SimulatorType.CORENEURON
    # written in another folder, it still points at the network: run it
    result = run_config(out, 1)
    assert result.engine == "coreneuron" and result.spike_count > 0


def test_configure_refuses_bad_requests(ping, tmp_path):
    cfg = str(ping.simulation_config)
    proc = cli("configure", cfg, "--engine", "coreneuron", "--out", cfg)
    assert proc.returncode == 2 and "new config" in proc.stderr
    out = tmp_path / "gpu.json"
    proc = cli("configure", cfg, "--engine", "coreneuron_gpu", "--out", str(out))
    assert proc.returncode == 2
    assert "GPU requested but unavailable" in proc.stderr and "CORENRN_ENABLE_GPU" in proc.stderr
    assert not out.exists()
    # NEURON's rule for cell_permute (CPU 0/1, GPU 1/2) is checked when the config is written, not after the build
    proc = cli("configure", cfg, "--engine", "coreneuron", "--cell-permute", "2", "--out", str(out))
    assert proc.returncode == 2 and "cell_permute 2 is not allowed on CoreNEURON" in proc.stderr
    assert not out.exists()
    proc = cli("configure", cfg, "--engine", "coreneuron", "--threads", "0", "--out", str(out))
    assert proc.returncode == 2 and "--threads" in proc.stderr
    assert not out.exists()


def test_engines_give_identical_spikes_and_readable_files(ping):
    configs = {
        "stock": _variant(ping, "stock", engine="neuron", neuron_loop="bmtk"),
        "psolve": _variant(ping, "psolve", engine="neuron", neuron_loop="psolve"),
        "core": _variant(ping, "core", engine="coreneuron"),
    }
    results = {k: run_config(c, 2) for k, c in configs.items()}
    assert results["core"].engine == "coreneuron" and results["core"].summary["engine"] == "CoreNEURON"
    core = results["core"].summary  # CoreNEURON's own time loop, apart from the model's hand-over (rank 0's timers)
    assert 0 < core["coreneuron_solver_s"] <= core["simulate_s"] + 0.01
    assert core["coreneuron_transfer_s"] == pytest.approx(results["core"].per_rank[0]["simulate_s"]
                                                          - core["coreneuron_solver_s"])
    assert "coreneuron_solver_s" not in results["psolve"].summary
    trains = {k: read_spikes(Path(r.spikes_file))[["node_id", "timestamp"]].to_numpy() for k, r in results.items()}
    assert len(trains["stock"]) > 100
    assert np.array_equal(trains["stock"], trains["psolve"])
    assert np.array_equal(trains["stock"], trains["core"])
    for r in results.values():
        assert [m["cells"] for m in r.per_rank] == [40, 40]
        pop = libsonata.SpikeReader(r.spikes_file)["ping"]
        assert pop.sorting == "by_time" and len(pop.get()) == len(trains["stock"])


def test_soma_voltage_reports_agree_across_engines(ping):
    def with_report(name, **switches):
        cfg = derive_config(load_config(ping.simulation_config).data, output_dir=f"$BASE_DIR/out_{name}", **switches)
        cfg["reports"] = {"soma_v": {"cells": "all", "variable_name": "v", "module": "membrane_report",
                                     "sections": "soma", "type": "compartment", "dt": 0.1, "start_time": 0.0,
                                     "end_time": 300.0}}
        return write_config(cfg, ping.simulation_config, ping.path / f"{name}.json", overwrite=True)

    traces = {}
    variants = (("rep_stock", {"engine": "neuron", "neuron_loop": "bmtk"}), ("rep_core", {"engine": "coreneuron"}))
    for name, sw in variants:
        result = run_config(with_report(name, **sw), 2)
        with h5py.File(Path(result.spikes_file).parent / "soma_v.h5") as h5:
            grp = h5["report/ping"]
            order = np.argsort(grp["mapping/node_ids"][()])
            traces[name] = grp["data"][()][:, order]
    assert traces["rep_stock"].shape == (3000, 80)
    assert traces["rep_stock"].max() > 0  # spikes are in the trace
    np.testing.assert_allclose(traces["rep_core"], traces["rep_stock"], atol=1e-6)


def test_virtual_spike_inputs_through_vecstim(tmp_path):
    from network_builders import n_pairs

    net = n_pairs(tmp_path / "pairs", n_pairs=3, drive_amp=0.0, tstop=60.0)  # no drive: inputs only
    spike_times = {0: [10.0, 30.0], 1: [15.0], 2: [20.0, 40.0]}
    base = add_spike_inputs(net, spike_times)
    trains = {}
    for name, engine in (("in_neuron", "neuron"), ("in_core", "coreneuron")):
        cfg = write_config(derive_config(base, engine=engine, output_dir=f"$BASE_DIR/out_{name}"),
                           net.simulation_config, net.path / f"{name}.json")
        trains[name] = read_spikes(Path(run_config(cfg, 2).spikes_file))
    assert np.array_equal(trains["in_neuron"][["node_id", "timestamp"]].to_numpy(),
                          trains["in_core"][["node_id", "timestamp"]].to_numpy())
    spikes = trains["in_core"]
    for pair, times in spike_times.items():
        sender = spikes[spikes["node_id"] == 2 * pair]["timestamp"].to_numpy()
        for t in times:  # every input spike makes the sender fire, one synaptic delay or more later
            assert np.any((sender > t + 1.0) & (sender < t + 6.0)), (pair, t, sender)
        assert sender.min() > min(times) + 1.0  # and nothing fires without input


def test_compare_end_to_end(ping, tmp_path):
    out = tmp_path / "cmp"
    proc = cli("compare", str(ping.simulation_config), "--ranks", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "identical" in proc.stdout and "CoreNEURON" in proc.stdout
    report = json.loads((out / "compare.json").read_text())
    assert [v["variant"] for v in report["variants"]] == ["bmtk_neuron", "neuron_psolve", "coreneuron"]
    assert all(v["spikes_vs_stock"]["identical"] for v in report["variants"])
    assert all(v["summary"]["ranks"] == 2 and v["summary"]["simulate_s"] > 0 for v in report["variants"])
    assert (out / "compare.csv").read_text().count("\n") == 4
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"


def test_silent_serial_fallback_is_an_error(ping, monkeypatch):
    monkeypatch.setenv("MPI_LIB_NRN_PATH", "/nonexistent/libmpi.so.12")
    with pytest.raises(RunFailed, match="NEURON sees 1 rank"):
        run_config(ping.simulation_config, 2, timeout=120)


def _broken_network(tmp_path: Path, template_body: str):
    """PING with one extra cell (node 41: rank 1 of 2 under round-robin) whose template fails or hangs."""
    import pandas as pd

    from network_builders import ping_assembly

    net = ping_assembly(tmp_path / "broken", n_assemblies=1, cells_per_assembly=41, tstop=50.0)
    (net.path / "components" / "templates" / "BadCell.hoc").write_text(
        "begintemplate BadCell\npublic soma, all\ncreate soma[1]\nobjref all\n"
        f"proc init() {{\n{template_body}\n}}\nendtemplate BadCell\n")
    types = net.path / "network" / "ping_node_types.csv"
    table = pd.read_csv(types, sep=" ")
    table.loc[len(table)] = {**table.iloc[0].to_dict(), "node_type_id": 102, "model_template": "hoc:BadCell"}
    table.to_csv(types, sep=" ", index=False)
    with h5py.File(net.nodes_file, "r+") as h5:
        pop = h5["nodes/ping"]
        for name in ("node_type_id", "node_id", "node_group_id", "node_group_index"):
            data = pop[name][()]
            extra = {"node_type_id": 102, "node_id": data.size, "node_group_id": 0, "node_group_index": data.size}
            del pop[name]
            pop.create_dataset(name, data=np.append(data, extra[name]).astype(data.dtype))
        for name, ds in list(pop["0"].items()):
            data = ds[()]
            del pop["0"][name]
            if data.dtype.kind == "O":
                pop["0"].create_dataset(name, data=[*(v.decode() for v in data), "E"], dtype=h5py.string_dtype())
            else:
                pop["0"].create_dataset(name, data=np.append(data, 0).astype(data.dtype))
    return net


def test_a_failing_rank_is_named(tmp_path):
    net = _broken_network(tmp_path, 'execerror("BadCell cannot be built")')
    with pytest.raises(RunFailed, match=r"rank 1: .*BadCell") as err:
        run_config(net.simulation_config, 2, timeout=120)
    assert "rank 0:" not in str(err.value)
    assert not (net.path / "output" / "spikes.h5").exists()


def test_a_hanging_rank_is_stopped_and_named(tmp_path):
    net = _broken_network(tmp_path, "while (1) { }")
    with pytest.raises(RunFailed, match=r"did not finish within 20 s.*rank 1 was building"):
        run_config(net.simulation_config, 2, timeout=20)
    assert not list(net.path.glob(".bmtk-scaling-run-*"))


def test_partition_and_coreneuron_switches_together(ping, tmp_path):
    """One config names both the engine and a METIS map: cells go where the map says, spikes do not change."""
    proc = cli("partition", str(ping.simulation_config), "--ranks", "2", "--strategy", "metis", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    map_file = ping.path / "partitions" / "metis_2.h5"
    out = ping.path / "core_metis.json"
    proc = cli("configure", str(ping.simulation_config), "--engine", "coreneuron", "--partition", str(map_file),
               "--out", str(out), "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["bmtk_scaling"]["partition"] == "$BASE_DIR/partitions/metis_2.h5"
    cfg = derive_config(load_config(out).data, output_dir="$BASE_DIR/out_core_metis")
    result = run_config(write_config(cfg, out, ping.path / "core_metis_run.json", overwrite=True), 2)
    reference = run_config(_variant(ping, "ref_neuron1", engine="neuron"), 1)
    a = read_spikes(Path(result.spikes_file))[["node_id", "timestamp"]].to_numpy()
    b = read_spikes(Path(reference.spikes_file))[["node_id", "timestamp"]].to_numpy()
    assert np.array_equal(a, b)
    cells = [m["cells"] for m in result.per_rank]
    assert sum(cells) == 80 and min(cells) >= 30  # METIS balances cost (1 + in-degree), not cell counts
    bad = cli("configure", str(ping.simulation_config), "--partition", str(tmp_path / "missing.h5"),
              "--out", str(tmp_path / "x.json"))
    assert bad.returncode == 2 and "missing.h5" in bad.stderr


def test_coreneuron_file_mode_matches_neuron(ping):
    """NEURON writes the model and frees it; CoreNEURON runs from the files: same spikes as NEURON."""
    neuron = run_config(_variant(ping, "fm_neuron", engine="neuron"), 2)
    files = run_config(_variant(ping, "fm_core", engine="coreneuron", file_mode=True), 2)
    a = read_spikes(Path(neuron.spikes_file))[["node_id", "timestamp"]].to_numpy()
    b = read_spikes(Path(files.spikes_file))[["node_id", "timestamp"]].to_numpy()
    assert len(a) > 100 and np.array_equal(a, b)
    assert [m["cells"] for m in files.per_rank] == [40, 40] and files.per_rank[0]["netcons"] > 0
    assert not (Path(files.spikes_file).parent / "coreneuron_files" / "coredat").exists()  # files cleaned up


def test_file_mode_refuses_reports(ping):
    cfg = derive_config(load_config(ping.simulation_config).data, engine="coreneuron", file_mode=True,
                        output_dir="$BASE_DIR/out_fm_report")
    cfg["reports"] = {"soma_v": {"cells": "all", "variable_name": "v", "module": "membrane_report",
                                 "sections": "soma", "type": "compartment", "dt": 0.1, "start_time": 0.0,
                                 "end_time": 300.0}}
    path = write_config(cfg, ping.simulation_config, ping.path / "fm_report.json", overwrite=True)
    with pytest.raises(RunFailed, match="reports are recorded.*file mode"):
        run_config(path, 1)
