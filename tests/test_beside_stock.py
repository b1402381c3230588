"""A network whose output folder holds stock bmtk's results runs through ``run`` and ``compare`` unedited.

The config's output folder is left byte for byte as it was; the run writes into ``output_bmtk-scaling``
beside it (said on its first and last line) with stock's spikes; ``compare`` writes into the current
folder, and keeps the variants that finished when one fails while running. Each config is read once
per command. bmtk's bio_14cells is used where ``../shared/realnets/bmtk`` holds it.
"""

from __future__ import annotations

import collections
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bmtk_scaling.sonata.spikes import read_spikes
from tests.fixtures.multicompartment import build_fixture
from tests.helpers import cli

pytestmark = pytest.mark.slow
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "realnets" / "bmtk"


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def trains(path: Path) -> np.ndarray:
    return read_spikes(path).sort_values(["timestamp", "node_id"])[["node_id", "timestamp"]].to_numpy()


def stock_into(config: Path, folder: str) -> Path:
    """Stock bionet (its own loop, synapses and cells) run by the runner into ``folder``; its spike file."""
    from bmtk_scaling.config.derive import derive_config, write_config
    from bmtk_scaling.run.launcher import run_config
    from bmtk_scaling.sonata.configs import load_config

    cfg = write_config(derive_config(load_config(config).data, output_dir=f"$BASE_DIR/{folder}", engine="neuron",
                                     neuron_loop="bmtk", synapses="bmtk", cell_build="bmtk"),
                       config, config.parent / f"{folder}.json")
    return Path(run_config(cfg, 1).spikes_file)


def users_stock_folder(net: Path, run: Path) -> Path:
    """``net/output`` as a stock bmtk user has it: stock's files, no marker of this tool, and a note of theirs."""
    out = net / "output"
    out.mkdir(exist_ok=True)
    for name in ("spikes.h5", "log.txt", "soma_report.h5"):
        if (run / name).is_file():
            shutil.copy2(run / name, out / name)
    (out / "notes.txt").write_text("my analysis\n")
    return out


def where_lines(stdout: str) -> tuple[str, str]:
    lines = [ln for ln in stdout.strip().splitlines() if "[WARNING]" not in ln]  # bmtk's own log, on import
    return lines[0], lines[-1]


@pytest.fixture(scope="module")
def net(tmp_path_factory) -> Path:
    net = build_fixture(tmp_path_factory.mktemp("beside") / "net", tstop=100.0)
    users_stock_folder(net, stock_into(net / "config.simulation.json", "stock_run").parent)
    return net


def test_run_writes_beside_stocks_folder_and_leaves_it_as_it_was(net):
    config = net / "config.simulation.json"
    before = snapshot(net / "output")
    beside = net / "output_bmtk-scaling"
    for _ in range(2):  # the second run replaces the folder the first wrote, by the gate's rules
        proc = cli("run", str(config))
        assert proc.returncode == 0, proc.stderr[-3000:]
        first, last = where_lines(proc.stdout)
        assert first.startswith(f"output: {beside} ") and str(net / "output") in first
        assert last.startswith(f"output: {beside} ")
        assert snapshot(net / "output") == before
    np.testing.assert_array_equal(trains(beside / "spikes.h5"), trains(net / "output" / "spikes.h5"))
    assert (beside / "soma_report.h5").is_file() and (beside / "log.txt").is_file()  # reports and log moved too
    assert sorted(p.name for p in net.iterdir() if p.name.startswith("output")) == ["output", "output_bmtk-scaling"]


def test_run_output_dir_and_the_api(net, tmp_path):
    from bmtk_scaling import run_simulation

    before = snapshot(net / "output")
    proc = cli("run", str(net / "config.simulation.json"), "--output-dir", str(tmp_path / "mine"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert where_lines(proc.stdout) == (f"output: {tmp_path / 'mine'}",) * 2
    result = run_simulation(net / "config.simulation.json", output_dir=tmp_path / "api")
    assert result.output_dir == str(tmp_path / "api") and result.beside is None
    for folder in ("mine", "api"):
        np.testing.assert_array_equal(trains(tmp_path / folder / "spikes.h5"), trains(net / "output" / "spikes.h5"))
    assert snapshot(net / "output") == before


def test_compare_in_the_current_folder_with_stocks_folder_in_place(net, tmp_path, monkeypatch):
    from bmtk_scaling import compare_engines

    before = snapshot(net / "output")
    monkeypatch.chdir(tmp_path)
    report = compare_engines(net / "config.simulation.json")
    assert report["out_dir"] == str(tmp_path / "compare_config.simulation_1ranks")
    assert [v["variant"] for v in report["variants"]] == ["bmtk_neuron", "neuron_psolve", "coreneuron"]
    assert not report["failed"] and all(v["spikes_vs_stock"]["identical"] for v in report["variants"])
    np.testing.assert_array_equal(trains(Path(report["variants"][2]["spikes_file"])),
                                  trains(net / "output" / "spikes.h5"))
    assert snapshot(net / "output") == before
    assert not [p for p in net.iterdir() if p.name.startswith("compare")]


def test_compare_keeps_what_finished_when_a_variant_fails(net, tmp_path):
    """CoreNEURON is stopped by its own timeout (a real failure of a real run): the others are still compared."""
    before = snapshot(net / "output")
    proc = cli("compare", str(net / "config.simulation.json"), "--timeout", "coreneuron=0.2", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "compare_config.simulation_1ranks"
    report = json.loads((out / "compare.json").read_text())
    assert [v["variant"] for v in report["variants"]] == ["bmtk_neuron", "neuron_psolve"]
    assert [f["variant"] for f in report["failed"]] == ["coreneuron"]
    assert "did not finish within 0.2 s" in report["failed"][0]["reason"]
    assert all(v["spikes_vs_stock"]["identical"] for v in report["variants"])
    assert "CoreNEURON          FAILED: " in proc.stdout and f"to {out}" in proc.stdout
    assert "error: CoreNEURON failed while running" in proc.stderr
    assert (out / "compare.csv").read_text().count("\n") == 3 and (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    assert not (out / "coreneuron").exists() and not list(tmp_path.rglob("*.partial"))
    assert snapshot(net / "output") == before


def parses(monkeypatch) -> collections.Counter:
    """How often each config file is parsed (every parse resolves its manifest once)."""
    import bmtk_scaling.sonata.configs as configs

    counts: collections.Counter = collections.Counter()
    manifest = configs._manifest

    def counted(data, path):
        counts[path.name] += 1
        return manifest(data, path)

    monkeypatch.setattr(configs, "_manifest", counted)
    return counts


def test_each_config_is_read_once_per_command(net, tmp_path, monkeypatch):
    import signal

    from bmtk_scaling.cli import main

    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGHUP)}
    counts = parses(monkeypatch)
    try:
        code = main(["run", str(net / "config.simulation.json"), "--json", str(tmp_path / "m.json")],
                    prog_name="bmtk-scaling", standalone_mode=False)
        assert code in (0, None)
        assert counts == {"config.simulation.json": 1, "config.circuit.json": 1}
        counts.clear()
        code = main(["compare", str(net / "config.simulation.json"), "--output-dir", str(tmp_path / "cmp"),
                     "--timeout", "neuron_psolve=0.2", "--timeout", "coreneuron=0.2"],
                    prog_name="bmtk-scaling", standalone_mode=False)
        assert code == 1  # two variants stopped by their timeouts: the cheapest compare that reads every config
    finally:
        for signum, handler in saved.items():  # the command installs its own handlers in this process
            signal.signal(signum, handler)
    # the user's config once; each variant's config once, by its run (each names the circuit anew)
    assert counts == {"config.simulation.json": 1, "bmtk_neuron.json": 1, "neuron_psolve.json": 1,
                      "coreneuron.json": 1, "config.circuit.json": 4}


@pytest.fixture
def bio_14cells(tmp_path) -> Path:
    """bmtk's bio_14cells copied into tmp (the examples are read-only where they are kept)."""
    if not (CORPUS / "bio_14cells").is_dir():
        pytest.skip(f"bmtk's example networks are not here ({CORPUS} is absent, as in a fresh clone)")
    for name in ("bio_14cells", "bio_components"):
        shutil.copytree(CORPUS / name, tmp_path / name)
    for path in tmp_path.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)
    config = tmp_path / "bio_14cells" / "config.simulation.json"
    data = json.loads(config.read_text())
    data["run"]["tstop"] = 250.0  # the build is what this tests
    config.write_text(json.dumps(data, indent=2))
    return tmp_path / "bio_14cells"


def test_bio_14cells_with_its_output_folder_in_place(bio_14cells):
    config = bio_14cells / "config.simulation.json"
    stock = stock_into(config, "stock_run")
    shipped = bio_14cells / "output"
    if not shipped.is_dir() or not any(shipped.iterdir()):
        users_stock_folder(bio_14cells, stock.parent)
    before = snapshot(shipped)
    proc = cli("run", str(config))
    assert proc.returncode == 0, proc.stderr[-3000:]
    beside = bio_14cells / "output_bmtk-scaling"
    assert all(line.startswith(f"output: {beside} ") for line in where_lines(proc.stdout))
    assert snapshot(shipped) == before
    ours = trains(beside / "spikes.h5")
    assert len(ours) >= 4  # biophysical and point cells both fire within 250 ms
    np.testing.assert_array_equal(ours, trains(stock))
