"""Networks users bring: the project's multi-compartment fixture and, where present, bmtk's own examples.

The fixture (tests/fixtures/multicompartment) has what real bionet networks have: morphologies, an
Allen-style biophysical model, synapses placed by target_sections and distance_range, a weight
function, preselected locations, spike-train inputs, soma/dendrite/synapse reports, uncompiled mod
files beside the network and bare relative paths. bmtk's examples come from ../shared/realnets/bmtk
(unchanged; the tests work on a copy) and are skipped where that folder is absent.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from bmtk_scaling.sonata.spikes import read_spikes
from tests.fixtures.multicompartment import build_fixture
from tests.helpers import cli

pytestmark = [pytest.mark.slow, pytest.mark.mpi]
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "realnets" / "bmtk"
REPORTS = ("soma_report.h5", "dendrites_report.h5", "synapses_report.h5")


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def fixture_net(tmp_path_factory) -> Path:
    return build_fixture(tmp_path_factory.mktemp("real") / "fixture_net", reports=("soma", "dendrites", "synapses"))


@pytest.fixture(scope="module")
def compared(fixture_net) -> tuple[dict, dict[str, str]]:
    components = fixture_net.parent / "fixture_components"
    before = _tree(components)
    proc = cli("compare", str(fixture_net / "config.simulation.json"), "--ranks", "2", "--out",
               str(fixture_net.parent / "cmp"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((fixture_net.parent / "cmp" / "compare.json").read_text()), before


def test_fixture_runs_on_every_engine_with_stock_spikes(compared):
    report, _ = compared
    assert [v["variant"] for v in report["variants"]] == ["bmtk_neuron", "neuron_psolve", "coreneuron"]
    assert report["skipped"] == []
    assert report["variants"][0]["summary"]["spikes"] > 5
    assert all(v["spikes_vs_stock"]["identical"] for v in report["variants"])


@pytest.mark.parametrize("name", REPORTS)
def test_reports_under_psolve_equal_stock(compared, name):
    """Soma, dendrite (every basal compartment) and synapse (Exp2Syn g) reports, recorded with Vector.record
    before the run, equal bmtk's own per-step reports exactly, on NEURON and on CoreNEURON."""
    report, _ = compared
    files = {v["variant"]: Path(v["spikes_file"]).parent / name for v in report["variants"]}
    with h5py.File(files["bmtk_neuron"]) as ref:
        expected = ref["report/cortex/data"][()]
        mapping = ref["report/cortex/mapping/element_ids"][()]
    assert expected.shape[0] == 3000 and np.abs(expected).max() > 0
    for variant in ("neuron_psolve", "coreneuron"):
        with h5py.File(files[variant]) as got:
            np.testing.assert_array_equal(got["report/cortex/mapping/element_ids"][()], mapping)
            np.testing.assert_array_equal(got["report/cortex/data"][()], expected)


def test_the_users_mechanisms_folder_is_only_read(compared, fixture_net):
    _, before = compared
    components = fixture_net.parent / "fixture_components"
    assert _tree(components) == before
    assert not list(components.rglob("x86_64"))


def test_fixture_edges_are_built_lean(fixture_net):
    """Multi-compartment targets, a weight function, preselected locations and spike inputs all go through
    lean instantiation; with a synapse report the synapses are per_edge (bionet's own objects per edge)."""
    proc = cli("run", str(fixture_net / "config.simulation.json"), "--ranks", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "built by bionet" not in proc.stdout, proc.stdout
    assert "synapses: per_edge, not shared (a synapse report" in proc.stdout


@pytest.fixture(scope="module")
def lean_net(tmp_path_factory) -> Path:
    return build_fixture(tmp_path_factory.mktemp("lean") / "fixture_net", reports=("soma",), input_rate_hz=30.0)


def _run_mode(net: Path, name: str, ranks: int, **switches) -> np.ndarray:
    from bmtk_scaling.config.derive import derive_config, write_config
    from bmtk_scaling.run.launcher import run_config
    from bmtk_scaling.sonata.configs import load_config

    config = net / "config.simulation.json"
    cfg = write_config(derive_config(load_config(config).data, output_dir=f"$BASE_DIR/out_{name}", **switches),
                       config, net / f"{name}.json", overwrite=True)
    result = run_config(cfg, ranks)
    assert not [n for n in result.notes if "built by bionet" in n], result.notes
    return read_spikes(Path(result.spikes_file))[["node_id", "timestamp"]].to_numpy()


def test_lean_modes_equal_stock_on_the_fixture(lean_net):
    """per_edge and shared against stock bmtk, bitwise, on NEURON and CoreNEURON (the compare tests above add
    per_edge on 2 ranks on both engines: their synapse report makes the synapses per_edge)."""
    stock = _run_mode(lean_net, "stock", 1, engine="neuron", neuron_loop="bmtk", synapses="bmtk",
                     cell_build="bmtk")
    assert len(stock) > 20
    for name, ranks, switches in (("pe1", 1, {"engine": "neuron", "synapses": "per_edge"}),
                                  ("sh1", 1, {"engine": "neuron", "synapses": "shared"}),
                                  ("pe_cn1", 1, {"engine": "coreneuron", "synapses": "per_edge"}),
                                  ("sh_cn2", 2, {"engine": "coreneuron", "synapses": "shared"})):
        got = _run_mode(lean_net, name, ranks, **switches)
        assert np.array_equal(got, stock), name


def test_linear_initial_mechanism_and_lif_cells_run_on_coreneuron(tmp_path):
    """The fixture with a LINEAR-initial channel (kl3.mod) and IntFire1 cells: CoreNEURON on 2 ranks gives stock's
    spikes, the LIF cells fire, and the run says once what was done for each."""
    net = build_fixture(tmp_path / "net", n_lif=3, linear_channel=True)
    proc = cli("compare", str(net / "config.simulation.json"), "--ranks", "2", "--out", str(tmp_path / "cmp"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [v["variant"] for v in report["variants"]] == ["bmtk_neuron", "neuron_psolve", "coreneuron"]
    assert report["variants"][2]["summary"]["engine"] == "CoreNEURON"
    assert all(v["spikes_vs_stock"]["identical"] for v in report["variants"])
    stock = read_spikes(tmp_path / "cmp" / "bmtk_neuron" / "spikes.h5")
    assert set(stock["node_id"]) >= {12, 13, 14}  # every LIF cell fires
    notes = report["variants"][2]["notes"]
    assert sum(n.startswith("kl3.mod: NEURON translates it as not thread safe") for n in notes) == 1, notes
    assert sum(n.startswith("IntFire1 cells run as") for n in notes) == 1, notes
    assert not (tmp_path / "fixture_components" / "mechanisms" / "x86_64").exists()  # the user's folder: read only


def test_configs_derived_elsewhere_run_from_anywhere(fixture_net, tmp_path):
    """A derived config in another folder keeps naming the same files (bare relative network, $COMPONENT_DIR)."""
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    proc = cli("configure", str(fixture_net / "config.simulation.json"), "--engine", "coreneuron", "--out",
               str(elsewhere / "core.json"))
    assert proc.returncode == 0, proc.stderr
    assert "bmtk-scaling run" in proc.stdout
    proc = cli("run", str(elsewhere / "core.json"), "--ranks", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stock = read_spikes(fixture_net.parent / "cmp" / "bmtk_neuron" / "spikes.h5")
    moved = read_spikes(fixture_net / "output" / "spikes.h5")
    assert np.array_equal(stock[["node_id", "timestamp"]].to_numpy(), moved[["node_id", "timestamp"]].to_numpy())


def test_partition_of_a_network_without_assemblies(fixture_net):
    proc = cli("partition", str(fixture_net / "config.simulation.json"), "--ranks", "2", "--compare")
    assert proc.returncode == 0, proc.stderr
    assert "by_assembly" in proc.stdout and "skipped" in proc.stdout and "assembly" in proc.stdout
    assert "metis" in proc.stdout


# --- bmtk's own examples ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"bmtk's example networks are not here ({CORPUS} is absent, as in a fresh clone)")
    root = tmp_path_factory.mktemp("corpus")
    for name in ("bio_14cells", "bio_450cells", "bio_components"):
        shutil.copytree(CORPUS / name, root / name)
    for path in root.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)  # the examples are read-only where they are kept
    for name, tstop in (("bio_14cells", 1500.0), ("bio_450cells", 1000.0)):  # 450's inputs ramp up for 300 ms
        config = root / name / "config.simulation.json"
        data = json.loads(config.read_text())
        data["run"]["tstop"] = tstop  # shorter than the examples' 3 s: the build is what this tests
        config.write_text(json.dumps(data, indent=2))
    return root


def test_bio_14cells_matches_stock_on_every_engine(corpus):
    """NaV.mod (a LINEAR initial block) and IntFire1 cells run on CoreNEURON (2 ranks) with stock's spikes."""
    net = corpus / "bio_14cells"
    proc = cli("compare", str(net / "config.simulation.json"), "--ranks", "2", "--out", str(corpus / "cmp14"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((corpus / "cmp14" / "compare.json").read_text())
    assert [v["variant"] for v in report["variants"]] == ["bmtk_neuron", "neuron_psolve", "coreneuron"]
    assert report["variants"][2]["summary"]["engine"] == "CoreNEURON"
    assert report["variants"][0]["summary"]["spikes"] > 50
    assert all(v["spikes_vs_stock"]["identical"] for v in report["variants"])
    notes = report["variants"][2]["notes"]
    assert any(n.startswith("NaV.mod: NEURON translates it as not thread safe") for n in notes), notes
    assert any(n.startswith("IntFire1 cells run as BmtkScalingIntFire1") for n in notes), notes
    assert not any("NaV" in n for n in report["variants"][1]["notes"])  # NEURON runs say nothing of it
    for name in ("membrane_potential.h5", "calcium_concentration.h5", "syn_report.h5"):  # its netcon report too
        with h5py.File(corpus / "cmp14" / "bmtk_neuron" / name) as a, \
                h5py.File(corpus / "cmp14" / "neuron_psolve" / name) as b:
            np.testing.assert_array_equal(a["report/v1/data"][()], b["report/v1/data"][()])
    assert not list((corpus / "bio_components").rglob("x86_64"))  # the user's folder is only read


def test_bio_450cells_matches_stock(corpus):
    net = corpus / "bio_450cells"
    proc = cli("compare", str(net / "config.simulation.json"), "--ranks", "2", "--out", str(corpus / "cmp450"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((corpus / "cmp450" / "compare.json").read_text())
    assert report["variants"][0]["summary"]["spikes"] > 20
    assert [v["variant"] for v in report["variants"]] == ["bmtk_neuron", "neuron_psolve", "coreneuron"]
    assert report["variants"][2]["summary"]["engine"] == "CoreNEURON"  # its circuit config names NEURON
    assert all(v["spikes_vs_stock"]["identical"] for v in report["variants"])  # shared on 2 ranks, both engines
    assert not [n for n in report["variants"][1]["notes"] if "built by bionet" in n]  # all lean but point targets


def test_bio_14cells_configured_for_coreneuron_runs_on_one_rank(corpus):
    """As a user would: configure --engine coreneuron, then run --ranks 1; spikes equal the stock run above."""
    stock = corpus / "cmp14" / "bmtk_neuron" / "spikes.h5"
    if not stock.is_file():
        pytest.skip("needs the stock run of the bio_14cells compare test")
    net = corpus / "bio_14cells"
    proc = cli("configure", str(net / "config.simulation.json"), "--engine", "coreneuron", "--out",
               str(net / "cn.json"))
    assert proc.returncode == 0 and "run it:" in proc.stdout, proc.stdout + proc.stderr
    data = json.loads((net / "cn.json").read_text())
    data["output"]["output_dir"] = "$BASE_DIR/out_cn1"
    (net / "cn.json").write_text(json.dumps(data))
    proc = cli("run", str(net / "cn.json"), "--ranks", "1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "CoreNEURON" in (net / "out_cn1" / "log.txt").read_text()
    assert sum(line.strip().startswith("note: NaV.mod") for line in proc.stdout.splitlines()) == 1, proc.stdout
    got = read_spikes(net / "out_cn1" / "spikes.h5")[["node_id", "timestamp"]].to_numpy()
    assert np.array_equal(got, read_spikes(stock)[["node_id", "timestamp"]].to_numpy())

def test_bio_450cells_ecp_config_runs_through_the_plugin(corpus):
    """bmtk's config.simulation_ecp.json (tstop cut to 1000 ms like the other runs here) through ``bmtk-scaling run``:
    ecp.h5 in bmtk's layout for the 86-channel linear electrode (without its per-cell contributions), and the
    spikes of stock's run without the report (the plugin's ECP adds no extracellular mechanism: the model is unchanged;
    the values against stock's ECP are checked on the fixture in test_ecp.py and measured by bench/reports.py)."""
    net = corpus / "bio_450cells"
    config = net / "config.simulation_ecp.json"
    data = json.loads(config.read_text())
    data["run"]["tstop"] = 1000.0
    data["manifest"]["$OUTPUT_DIR"] = "$BASE_DIR/output_ecp"
    del data["reports"]["ecp"]["contributions_dir"]  # 300 files, 2 GB at 1000 ms; test_ecp.py checks them
    config.write_text(json.dumps(data, indent=2))
    proc = cli("run", str(config), "--ranks", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = net / "output_ecp"
    with h5py.File(out / "ecp.h5") as h5:
        assert h5["ecp/data"].shape == (10000, 86) and h5["ecp/data"].attrs["units"] == "mV"
        assert h5["ecp/time"][()].tolist() == [0.0, 1000.0, 0.1]
        assert h5["ecp/channel_id"][()].tolist() == list(range(86))
        assert np.isfinite(h5["ecp/data"][()]).all() and np.abs(h5["ecp/data"][()]).max() > 0
    assert not list(out.glob("tmp_*"))  # bmtk's per-rank files are gone
    stock = corpus / "cmp450" / "bmtk_neuron" / "spikes.h5"
    if stock.is_file():  # the stock run of test_bio_450cells_matches_stock, same network and tstop
        got = read_spikes(out / "spikes.h5")[["node_id", "timestamp"]].to_numpy()
        assert np.array_equal(got, read_spikes(stock)[["node_id", "timestamp"]].to_numpy())


@pytest.mark.parametrize(("name", "compared"), [("bio_14cells", "cmp14"), ("bio_450cells", "cmp450")])
def test_corpus_per_edge_equals_stock(corpus, name, compared):
    """per_edge on 1 rank against the stock run of the compare tests above (2 ranks; spikes do not depend on it)."""
    stock = corpus / compared / "bmtk_neuron" / "spikes.h5"
    if not stock.is_file():
        pytest.skip(f"needs the stock run of the {name} compare test")
    got = _run_mode(corpus / name, "per_edge", 1, engine="neuron", synapses="per_edge")
    assert np.array_equal(got, read_spikes(stock)[["node_id", "timestamp"]].to_numpy())


def test_build_flags_reach_coreneurons_compile_and_keep_the_spikes(tmp_path):
    """coreneuron.build_flags: CoreNEURON's library is compiled with them (its recorded command lines say so),
    NEURON's mechanism objects are not, the build is cached apart, and IEEE-keeping flags give the same spikes."""
    from bmtk_scaling.mechanisms.build import _arch, recorded_compile_flags
    from bmtk_scaling.mechanisms.network import prepare

    net = build_fixture(tmp_path / "net", linear_channel=True)
    config = net / "config.simulation.json"
    flags = "-O3 -march=native -ffp-contract=off"
    spikes = {}
    for name, extra in (("plain", []), ("flagged", ["--build-flags", flags])):
        out = tmp_path / f"sim_{name}.json"
        proc = cli("configure", str(config), "--engine", "coreneuron", *extra, "--out", str(out))
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        proc = cli("run", str(out), "--ranks", "1", "--output-dir", str(tmp_path / f"out_{name}"))
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        spikes[name] = read_spikes(tmp_path / f"out_{name}" / "spikes.h5")
    assert len(spikes["plain"]) > 5
    assert spikes["flagged"].equals(spikes["plain"])
    mech_dir = tmp_path / "fixture_components" / "mechanisms"
    plain, flagged = prepare(mech_dir).neuron_build, prepare(mech_dir, flags).neuron_build  # both cached by now
    assert plain != flagged
    recorded = recorded_compile_flags(flagged).split()
    assert {"-O3", "-ffp-contract=off"} <= set(recorded) and recorded.index("-O3") > recorded.index("-O2")
    assert recorded_compile_flags(plain) == ""
    neuron_objects = [o for o in (flagged / _arch()).glob("*.o") if o.name != "mod_func.o"]
    assert neuron_objects and all(".GCC.command.line" not in o.read_bytes().decode("latin-1") for o in neuron_objects)
