"""A user's own run_bionet.py with one import line changed runs the plugin under mpiexec (and srun).

``from bmtk.simulator import bionet`` -> ``from bmtk_scaling.run import bionet``: the config's
``bmtk_scaling`` section is honoured (partition, engine), bad input is refused on rank 0 with exit 2 on
every rank, and the spikes are stock bmtk's. bmtk's own script of bio_14cells is used where
``../shared/realnets/bmtk`` holds it, the project's fixture everywhere.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bmtk_scaling.sonata.spikes import read_spikes
from tests.fixtures.multicompartment import build_fixture
from tests.helpers import cli
from tests.mpi_helpers import mpirun

pytestmark = [pytest.mark.slow, pytest.mark.mpi]
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "realnets" / "bmtk"
STOCK_LINE = "from bmtk.simulator import bionet"
PLUGIN_LINE = "from bmtk_scaling.run import bionet"
# the shape of bmtk's run scripts, for the fixture (bio_14cells brings its own)
SCRIPT = f'''import sys
{PLUGIN_LINE}


def run(config_path):
    conf = bionet.Config.from_json(config_path, validate=True)
    conf.build_env()
    graph = bionet.BioNetwork.from_config(conf)
    sim = bionet.BioSimulator.from_config(conf, network=graph)
    sim.run()
    bionet.nrn.quit_execution()


if __name__ == "__main__":
    run(sys.argv[-1])
'''


def nrniv_mpi(ranks: int, script: str, config: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``mpiexec -n R nrniv -mpi -python SCRIPT CONFIG``, as a bmtk user runs it; killed whole if it hangs."""
    return mpirun(ranks, [script, config], cwd, timeout, program=[str(Path(sys.executable).parent / "nrniv"), "-mpi",
                                                                  "-python"])


def stock_spikes(config: Path, name: str) -> np.ndarray:
    """Stock bmtk (its own loop, synapses and cells) on 1 rank, through the runner."""
    from bmtk_scaling.config.derive import derive_config, write_config
    from bmtk_scaling.run.launcher import run_config
    from bmtk_scaling.sonata.configs import load_config

    cfg = write_config(derive_config(load_config(config).data, output_dir=f"$BASE_DIR/{name}", engine="neuron",
                                     neuron_loop="bmtk", synapses="bmtk", cell_build="bmtk"),
                       config, config.parent / f"{name}.json")
    return _spikes(Path(run_config(cfg, 1).spikes_file))


def _spikes(path: Path) -> np.ndarray:
    return read_spikes(path)[["node_id", "timestamp"]].to_numpy()


@pytest.fixture(scope="module")
def fixture_net(tmp_path_factory) -> Path:
    net = build_fixture(tmp_path_factory.mktemp("own") / "fixture_net", tstop=200.0)
    (net / "run_bionet.py").write_text(SCRIPT)
    return net


def test_own_script_honours_partition_and_engine(fixture_net):
    config = fixture_net / "config.simulation.json"
    stock = stock_spikes(config, "stock")
    proc = cli("partition", str(config), "--ranks", "2", "--strategy", "random", "--config-out", "placed.json")
    assert proc.returncode == 0, proc.stderr
    proc = cli("configure", str(fixture_net / "placed.json"), "--engine", "coreneuron", "--out",
               str(fixture_net / "core.json"))
    assert proc.returncode == 0, proc.stderr
    assert f"replace its line '{STOCK_LINE}' by '{PLUGIN_LINE}'" in proc.stdout
    (fixture_net / "output").mkdir(exist_ok=True)
    (fixture_net / "output" / "spikes.h5").write_bytes(b"an earlier stock run")  # as users have: may be replaced
    proc = nrniv_mpi(2, "run_bionet.py", "core.json", fixture_net)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "numprocs=2" in proc.stdout  # NEURON's own word that it runs on 2 ranks
    # (bmtk's log: its ranks may race over it while bmtk empties the output folder, so only the engine line)
    assert "Running CoreNEURON (psolve)" in (fixture_net / "output" / "log.txt").read_text(errors="replace")
    assert np.array_equal(_spikes(fixture_net / "output" / "spikes.h5"), stock)


def test_own_script_refuses_bad_input_on_every_rank(fixture_net):
    data = json.loads((fixture_net / "config.simulation.json").read_text())
    data["bmtk_scaling"] = {"synapses": "each"}
    (fixture_net / "bad.json").write_text(json.dumps(data))
    proc = nrniv_mpi(2, "run_bionet.py", "bad.json", fixture_net, timeout=120)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    errors = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "bmtk_scaling.synapses" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_bmtk_run_script_of_bio_14cells_with_one_line_changed(tmp_path):
    if not CORPUS.is_dir():
        pytest.skip(f"bmtk's example networks are not here ({CORPUS} is absent, as in a fresh clone)")
    for name in ("bio_14cells", "bio_components"):
        shutil.copytree(CORPUS / name, tmp_path / name)
    for path in tmp_path.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)  # the examples are read-only where they are kept
    net = tmp_path / "bio_14cells"
    config = net / "config.simulation.json"
    data = json.loads(config.read_text())
    data["run"]["tstop"] = 500.0  # the build is what this tests
    config.write_text(json.dumps(data, indent=2))
    script = net / "run_bionet.py"
    text = script.read_text()
    assert text.count(STOCK_LINE) == 1
    script.write_text(text.replace(STOCK_LINE, PLUGIN_LINE))
    stock = stock_spikes(config, "stock")
    assert len(stock) > 10
    proc = nrniv_mpi(2, "run_bionet.py", "config.simulation.json", net, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(config.read_text())["output"]
    assert np.array_equal(_spikes(net / "output" / Path(out.get("spikes_file", "spikes.h5")).name), stock)
