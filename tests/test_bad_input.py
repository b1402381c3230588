"""Bad input, hostile but realistic, through the real CLI: a clear line, exit 2, nothing lost, nothing left.

Each case runs ``bmtk-scaling`` in its own session in a temporary folder and checks the exit status,
a one-line message naming the problem, the files before and after (nothing a user made changed,
no ``.partial`` left), and that no process of the session is left running.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import pytest

from tests.helpers import interruptible

EXE = str(Path(sys.executable).parent / "bmtk-scaling")


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _processes_of(tmp: Path) -> list[str]:
    """Commands of the live processes that name ``tmp`` (the CLI, mpiexec, the ranks: each has a path under it).

    Matched by command line, not by session: the runner starts the ranks in a session of their own.
    """
    alive, me = [], os.getpid()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.parent.name) == me or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cmd = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        if str(tmp) in cmd:
            alive.append(cmd)
    return alive


def bmtk(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.Popen([EXE, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    out, err = proc.communicate(timeout=timeout)
    time.sleep(0.2)
    assert _processes_of(cwd) == [], "processes left behind"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def refused(tmp: Path, *args: str, needle: str, cwd: Path | None = None, code: int = 2) -> str:
    """Run a case that must be refused; check exit code, one error line naming it, and no file changed."""
    before = _snapshot(tmp)
    proc = bmtk(*args, cwd=cwd or tmp)
    assert proc.returncode == code, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0], proc.stderr[-2000:]
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr.split("error:")[0]
    after = _snapshot(tmp)
    assert after == before, f"files changed: {sorted(set(after.items()) ^ set(before.items()))[:6]}"
    assert not [p for p in tmp.rglob("*") if ".partial" in p.name]
    return lines[0]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    from network_builders import n_pairs

    return n_pairs(tmp_path_factory.mktemp("pristine") / "net", n_pairs=4, tstop=20.0).path


@pytest.fixture
def net(pristine, tmp_path) -> Path:
    """A fresh copy of a tiny network (its folder inside ``tmp_path``)."""
    dest = tmp_path / "net"
    shutil.copytree(pristine, dest, symlinks=True)
    return dest


def _edit(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path.write_text(json.dumps(data))


# --- nothing a user made is deleted or replaced ----------------------------------------------------------------


def test_a_config_without_a_network_deletes_nothing(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "c.json").write_text('{"foo": 1}')
    refused(tmp_path, "run", "c.json", needle="is not a simulation config")


def test_output_dir_that_is_the_network_folder(net, tmp_path):
    _edit(net / "simulation_config.json", output__output_dir="$BASE_DIR")
    refused(tmp_path, "run", str(net / "simulation_config.json"), needle="is the config's own folder")


def test_output_dir_that_holds_an_input(net, tmp_path):
    _edit(net / "simulation_config.json", output__output_dir="$BASE_DIR/..")
    refused(tmp_path, "run", str(net / "simulation_config.json"), needle="an input of simulation_config.json")


def test_output_dir_with_files_we_did_not_write(net, tmp_path):
    """The config's output folder and the folder a run would write beside it both hold the user's files."""
    for name in ("output", "output_bmtk-scaling"):
        (net / name).mkdir()
        (net / name / "thesis.tex").write_text("years of work")
    line = refused(tmp_path, "run", str(net / "simulation_config.json"), needle="did not write")
    assert "output_bmtk-scaling" in line and "--output-dir" in line


@pytest.mark.mpi
def test_a_map_for_other_ranks_costs_no_earlier_output(net, tmp_path):
    cfg = str(net / "simulation_config.json")
    assert bmtk("run", cfg, "--ranks", "2", cwd=tmp_path).returncode == 0
    assert bmtk("partition", cfg, "--ranks", "3", "--strategy", "random", "--config-out", "m3.json",
                cwd=tmp_path).returncode == 0
    refused(tmp_path, "run", str(net / "m3.json"), "--ranks", "2", needle="made for 3 ranks")
    assert (net / "output" / "spikes.h5").is_file()


@pytest.mark.mpi
def test_a_failing_run_keeps_the_last_good_output(net, tmp_path):
    cfg = net / "simulation_config.json"
    assert bmtk("run", str(cfg), cwd=tmp_path).returncode == 0
    before = _snapshot(net / "output")
    _edit(cfg, run={**json.loads(cfg.read_text())["run"], "tstop": 1e5})  # stopped by its time limit
    proc = bmtk("run", str(cfg), "--timeout", "3", cwd=tmp_path)
    assert proc.returncode == 1 and "error:" in proc.stderr and "Traceback" not in proc.stderr.split("error:")[0]
    assert _snapshot(net / "output") == before
    assert not [p for p in net.rglob("*") if ".partial" in p.name]


@pytest.mark.parametrize("target", ["network/pairs_nodes.h5", "circuit_config.json", "simulation_config.json"])
def test_partition_out_never_replaces_an_input(net, tmp_path, target):
    refused(tmp_path, "partition", str(net / "simulation_config.json"), "--ranks", "2", "--out", str(net / target),
            "--overwrite", needle="an input of simulation_config.json")


def test_configure_out_never_replaces_an_input(net, tmp_path):
    refused(tmp_path, "configure", str(net / "simulation_config.json"), "--engine", "coreneuron", "--out",
            str(net / "circuit_config.json"), "--overwrite", needle="an input of simulation_config.json")


def test_overwrite_never_deletes_a_users_folder(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "data.csv").write_text("1,2,3")
    refused(tmp_path, "build", "pairs", "--out", str(mine), "--overwrite", "--n-pairs", "2", needle="did not write")
    csv = tmp_path / "results.csv"
    csv.write_text("x\n1\n")
    refused(tmp_path, "report", str(csv), "--out", str(mine), needle="lacks the columns")


# --- checked before launch ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("key,value,needle", [
    ("run__dt", -0.1, "run.dt must be a positive, finite number"),
    ("run__tstop", -10, "run.tstop must be a positive, finite number"),
    ("bmtk_scaling__coreneuron__nthread", -3, "bmtk_scaling.coreneuron.nthread"),
    ("bmtk_scaling__synapses", "each", "bmtk_scaling.synapses"),
    ("bmtk_scaling__mystery", 1, "unknown key 'bmtk_scaling.mystery'"),
])
def test_bad_run_sections(net, tmp_path, key, value, needle):
    _edit(net / "simulation_config.json", **{key: value})
    refused(tmp_path, "run", str(net / "simulation_config.json"), needle=needle)


def test_a_delay_below_dt_is_refused_only_between_ranks(net, tmp_path):
    """Edges of 1 ms at dt = 2 ms: refused on 2 ranks (bionet deals the pairs' cells to both), with advice that can
    work; on 1 rank nothing crosses and the preflight lets it through, as stock bmtk runs it."""
    from bmtk_scaling.run.preflight import plan_run

    _edit(net / "simulation_config.json", run__dt=2.0)
    line = refused(tmp_path, "run", str(net / "simulation_config.json"), "--ranks", "2",
                   needle="between cells on different ranks have a delay below dt = 2 ms (smallest 1 ms)")
    assert "lower run.dt below 1 ms" in line and "place the connected cells on one rank" in line
    assert plan_run(net / "simulation_config.json", 1, check_output=False).dt == 2.0


def test_edges_pointing_outside_their_population(net, tmp_path):
    with h5py.File(net / "network" / "pairs_pairs_edges.h5", "r+") as h5:
        h5["edges/pairs_to_pairs/target_node_id"][0] = 1000
    refused(tmp_path, "run", str(net / "simulation_config.json"), needle="point outside it")


def test_a_truncated_nodes_file(net, tmp_path):
    nodes = net / "network" / "pairs_nodes.h5"
    nodes.write_bytes(nodes.read_bytes()[:1000])
    refused(tmp_path, "run", str(net / "simulation_config.json"), needle="cannot read the nodes file")


@pytest.mark.slow
def test_uncompiled_mechanisms_are_compiled_elsewhere(net, tmp_path):
    """A mechanisms folder of mod files only is the user's: compiled into the cache, the folder left as it was."""
    mechs = net / "components" / "mechanisms"
    shutil.rmtree(next(mechs.glob("x86_64*")))
    before = _snapshot(mechs)
    proc = bmtk("run", str(net / "simulation_config.json"), "--ranks", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _snapshot(mechs) == before


def test_a_mechanism_no_mod_file_defines(net, tmp_path):
    modfiles = net / "components" / "mechanisms" / "modfiles"
    shutil.rmtree(next((net / "components" / "mechanisms").glob("x86_64*")))
    for mod in modfiles.glob("*.mod"):
        mod.unlink()
    refused(tmp_path, "run", str(net / "simulation_config.json"), needle="rtm")


@pytest.mark.slow
def test_a_mod_file_that_does_not_compile(net, tmp_path, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("BMTK_SCALING_CACHE", str(tmp_path_factory.mktemp("cache")))  # a failed build is not cached
    mod = net / "components" / "mechanisms" / "modfiles" / "rtm.mod"
    mod.write_text(mod.read_text().replace("BREAKPOINT {", "BREAKPOINT { x = = 1"))
    line = refused(tmp_path, "run", str(net / "simulation_config.json"), needle="nrnivmodl -coreneuron failed")
    assert "nothing was replaced" in line


def test_a_folder_given_as_config(net, tmp_path):
    refused(tmp_path, "run", str(net), needle="is a folder, not a config file")


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_timeouts_must_be_positive_and_finite(net, tmp_path, value):
    refused(tmp_path, "run", str(net / "simulation_config.json"), "--timeout", value, needle="timeout")


def test_configure_of_a_config_that_names_no_network(tmp_path):
    (tmp_path / "c.json").write_text('{"run": {"tstop": 10, "dt": 0.1}}')
    refused(tmp_path, "configure", "c.json", "--engine", "coreneuron", "--out", "x.json", needle="names no network")


def test_round_robin_with_more_ranks_than_cells(net, tmp_path):
    refused(tmp_path, "partition", str(net / "simulation_config.json"), "--ranks", "50", "--strategy",
            "round_robin", needle="8 cells cannot fill 50 ranks")


# --- builders and sizes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args,needle", [
    (["ping", "--cross-weight", "nan"], "cross_weight must be a non-negative number"),
    (["ping", "--g-ei", "inf"], "g_ei must be a non-negative number"),
    (["pairs", "--delay", "0.01"], "delay 0.01 ms is shorter than dt"),
    (["pairs", "--n-pairs", "100000000000"], "pass --force"),
])
def test_builders_refuse_before_allocating(tmp_path, args, needle):
    refused(tmp_path, "build", *args, "--out", str(tmp_path / "out"), needle=needle)
    assert not (tmp_path / "out").exists()


def test_a_grid_of_five_million_points(tmp_path):
    spec = tmp_path / "big.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: big
        networks: [{{builder: pairs, sizes: [{{n_pairs: 2}}]}}]
        ranks: {list(range(1, 101))}
        seeds: {list(range(50_000))}
    """))
    t0 = time.perf_counter()
    refused(tmp_path, "sweep", str(spec), "--list", needle="5,000,000 points")
    assert time.perf_counter() - t0 < 30


@pytest.mark.parametrize("option", ["--slurm", "--out"])
def test_sweep_folders_that_are_files(tmp_path, option):
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nnetworks: [{builder: pairs, sizes: [{n_pairs: 2}]}]\n")
    (tmp_path / "FILE").write_text("x")
    refused(tmp_path, "sweep", str(spec), option, str(tmp_path / "FILE"), needle="is a file")


# --- reports -------------------------------------------------------------------------------------------------------

COLUMNS = ["network", "network_key", "n_cells", "n_synapses", "ranks", "threads", "cores", "strategy", "engine",
           "simulate_s", "total_s", "peak_rss_sum_mib"]


@pytest.mark.parametrize("row,needle", [
    (["p", "k", 8, 4, 1, 1, 1, "rr", "neuron", "nan", "nan", 100], "column 'simulate_s' has no finite value"),
    (["p", "k", 8, 4, 0, 1, 0, "rr", "neuron", 1.0, 2.0, 100], "column 'ranks' must hold positive integers"),
    (["p", "k", 8, 4, 1, 1, 1, "rr", "neuron", "fast", 2.0, 100], "column 'simulate_s' holds non-numbers"),
    (None, "lacks the columns ['total_s']"),
])
def test_report_checks_its_columns(tmp_path, row, needle):
    csv = tmp_path / "results.csv"
    if row is None:
        csv.write_text(",".join(c for c in COLUMNS if c != "total_s") + "\n" + ",".join(["1"] * 11) + "\n")
    else:
        csv.write_text(",".join(COLUMNS) + "\n" + ",".join(str(v) for v in row) + "\n")
    refused(tmp_path, "report", str(csv), needle=needle)
    assert not (tmp_path / "report").exists()


# --- signals, stale partial folders, two writers --------------------------------------------------------------------


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([EXE, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=interruptible)


def _wait_for(predicate, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "the command never reached the state the test waits for"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_during_build_leaves_nothing(tmp_path, signum):
    proc = _start(["build", "ping", "--out", "big", "--cells-per-assembly", "2500"], tmp_path)
    _wait_for(lambda: any(p.name.endswith(".partial") for p in tmp_path.iterdir()), proc)
    os.killpg(proc.pid, signum) if signum == signal.SIGINT else proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err[-2000:]
    assert "nothing partial left" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert _processes_of(tmp_path) == []


@pytest.mark.mpi
@pytest.mark.slow
def test_sigterm_to_run_stops_every_rank(tmp_path):
    from network_builders import ping_assembly

    net = ping_assembly(tmp_path / "ping", n_assemblies=2, cells_per_assembly=200, tstop=600_000.0).path
    proc = _start(["run", str(net / "simulation_config.json"), "--ranks", "2"], tmp_path)
    partials = lambda: [p for p in net.iterdir() if p.name.endswith(".partial")]  # noqa: E731
    _wait_for(lambda: partials() and sum("rank_main" in c for c in _processes_of(tmp_path)) >= 2, proc)
    time.sleep(2)  # the ranks are building or simulating
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    time.sleep(0.5)
    assert _processes_of(tmp_path) == []  # mpiexec and both ranks are gone
    assert not partials() and not (net / "output").exists()
    assert not list(net.glob(".*lock"))


@pytest.mark.slow
def test_a_stale_partial_is_removed_by_the_next_build(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".out.{dead.pid}-dead.partial"
    stale.mkdir()  # left by a writer that was killed with SIGKILL: its process is gone
    (stale / ".bmtk-scaling").write_text(json.dumps({"written_by": "bmtk-scaling", "kind": "network", "pid": dead.pid}))
    foreign = tmp_path / ".out.foreign.partial"
    foreign.mkdir()  # not ours: never removed
    proc = bmtk("build", "pairs", "--out", "out", "--n-pairs", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not stale.exists() and foreign.exists() and (tmp_path / "out" / "simulation_config.json").is_file()


@pytest.mark.slow
def test_two_writers_of_one_folder(tmp_path):
    first = _start(["build", "ping", "--out", "same", "--cells-per-assembly", "2500"], tmp_path)
    _wait_for(lambda: (tmp_path / ".same.lock").exists(), first)
    second = bmtk("build", "pairs", "--out", "same", "--n-pairs", "2", cwd=tmp_path)
    assert second.returncode == 2 and "being written by another bmtk-scaling process" in second.stderr
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    assert json.loads((tmp_path / "same" / "network_parameters.json").read_text())["kind"] == "ping_assembly"


# --- one gate for every write: each command's output paths against hostile targets --------------------------------
#
# In-process (click's runner): every case is refused before any work, so each takes milliseconds, not an
# interpreter start. The tree (files by content, links by target) must be unchanged afterwards.


def _tree(root: Path) -> dict[str, str]:
    """Every entry under ``root``, links not followed: a file by its hash, a link by its target, a folder by name."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            elif path.is_file():
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                out[rel] = "special"
    return out


def in_process(*args: str, env: dict | None = None):
    """The CLI in this process: (exit status, stderr)."""
    from click.testing import CliRunner

    from bmtk_scaling.cli import main

    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        result = CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    return result.exit_code, result.stderr


def refused_here(tmp: Path, *args: str, needles: tuple[str, ...], env: dict | None = None) -> str:
    before = _tree(tmp)
    code, err = in_process(*args, env=env)
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2 and len(lines) == 1, err[-2000:]
    assert any(n in lines[0] for n in needles), lines[0]
    after = _tree(tmp)
    assert after == before, f"changed: {sorted(set(after.items()) ^ set(before.items()))[:6]}"
    return lines[0]


@pytest.fixture
def read_only():
    """Make a folder read-only even for root (chattr +i; chmod where not root), undone afterwards."""
    done = []

    def make(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            folder.chmod(0o555)
            done.append(lambda: folder.chmod(0o755))
            return folder
        proc = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
        if proc.returncode != 0:
            pytest.skip(f"chattr +i does not work here: {proc.stderr.decode().strip()}")
        done.append(lambda: subprocess.run(["chattr", "-i", str(folder)], check=True))
        return folder

    yield make
    for undo in done:
        undo()


SPEC_TEXT = "name: s\nnetworks: [{builder: pairs, sizes: [{n_pairs: 2}]}]\nranks: [1]\n"
RESULTS = ",".join(COLUMNS) + "\n" + ",".join(str(v) for v in ["p", "k", 8, 4, 1, 1, 1, "rr", "neuron", 1.0, 2.0, 100])

# command -> (arguments with {P} for the output path, whether it writes a folder, whether it reads the network)
COMMANDS = {
    "build --out": (["build", "pairs", "--n-pairs", "2", "--out", "{P}", "--overwrite"], True, False),
    "partition --out": (["partition", "{CFG}", "--ranks", "2", "--strategy", "round_robin", "--out", "{P}",
                         "--overwrite"], False, True),
    "partition --config-out": (["partition", "{CFG}", "--ranks", "2", "--strategy", "round_robin", "--out",
                                "{T}/map.h5", "--config-out", "{P}", "--overwrite"], False, True),
    "configure --out": (["configure", "{CFG}", "--engine", "coreneuron", "--out", "{P}", "--overwrite"], False, True),
    "run --json": (["run", "{CFG}", "--json", "{P}"], False, True),
    "run output_dir": (["run", "{CFG}"], True, True),
    "run --output-dir": (["run", "{CFG}", "--output-dir", "{P}"], True, True),
    "compare --out": (["compare", "{CFG}", "--out", "{P}", "--overwrite"], True, True),
    "sweep --slurm": (["sweep", "{SPEC}", "--slurm", "{P}", "--overwrite"], True, False),
    "sweep --out": (["sweep", "{SPEC}", "--out", "{P}", "--max-points", "1", "--no-progress"], True, False),
    "report --out": (["report", "{CSV}", "--out", "{P}"], True, False),
    "demo --out": (["demo", "--out", "{P}", "--overwrite"], True, False),
}
TARGETS = ("input", "in components", "user's", "symlink", "symlink loop", "read-only", "folder-for-file swap")
NEEDLES = {"input": ("input",), "in components": ("input folder",),
           "user's": ("did not write", "bmtk-scaling wrote"), "symlink loop": ("symlink loop",),
           "read-only": ("not writable",),
           "folder-for-file swap": ("is a file, not a folder", "is a folder, not a file")}


def _target(kind: str, command: str, folder: bool, reads_network: bool, net: Path, tmp: Path, read_only) -> Path | None:
    """The hostile path of ``kind`` for ``command`` (None where the command has no such target)."""
    beside = command == "partition --config-out"  # a new config goes beside its source: targets in the network
    home = net if beside else tmp
    if kind == "input":
        if reads_network:
            if command.startswith("run ") and folder:
                return net / "network"  # the config's own folder has its own message (below)
            return net if folder else (net / "circuit_config.json" if beside else net / "network" / "pairs_nodes.h5")
        return {"sweep --slurm": tmp / "study", "sweep --out": tmp / "study", "report --out": tmp / "res"}.get(command)
    if kind == "in components":
        return (net / "components" / ("out" if folder else "x.json")) if reads_network else None
    mine = tmp / "mine" / ("network" if command == "demo --out" else "")  # demo writes OUT/network, OUT/compare
    if kind == "user's":
        if folder:
            mine.mkdir(parents=True, exist_ok=True)
            (mine / "data.csv").write_text("1,2,3\n")
            return tmp / "mine"
        (home / "notes.txt").write_text("my notes\n")
        return home / "notes.txt"
    if kind == "symlink":
        link = home / "link"
        if reads_network:
            link.symlink_to(net if folder else net / "circuit_config.json")
        else:
            mine.mkdir(parents=True, exist_ok=True)
            (mine / "data.csv").write_text("1,2,3\n")
            link.symlink_to(tmp / "mine")
        return link
    if kind == "symlink loop":
        (home / "loop_a").symlink_to(home / "loop_b")
        (home / "loop_b").symlink_to(home / "loop_a")
        return home / "loop_a"
    if kind == "read-only":
        if beside:
            return read_only(net) / "new_config.json"
        return read_only(tmp / "ro") / ("out" if folder else "out.json")
    if folder:  # folder-for-file swap: a file where a folder is written, or the reverse
        (tmp / "afile").write_text("x\n")
        return tmp / "afile"
    (home / "adir").mkdir()
    (home / "adir" / "keep.txt").write_text("x\n")
    return home / "adir"


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_output_path_passes_the_gate(net, tmp_path, read_only, command, target):
    args, folder, reads_network = COMMANDS[command]
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "s.yaml").write_text(SPEC_TEXT)
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "results.csv").write_text(RESULTS)
    path = _target(target, command, folder, reads_network, net, tmp_path, read_only)
    if path is None:
        pytest.skip(f"{command} reads no input that {target} could name")
    cfg = net / "simulation_config.json"
    if command == "run output_dir":
        _edit(cfg, output__output_dir=str(path))
        if target == "user's":  # refused only when the folder a run writes beside it holds the user's files too
            (tmp_path / "mine_bmtk-scaling").mkdir()
            (tmp_path / "mine_bmtk-scaling" / "notes.txt").write_text("mine\n")
    fill = {"{P}": str(path), "{CFG}": str(cfg), "{T}": str(tmp_path), "{SPEC}": str(tmp_path / "study" / "s.yaml"),
            "{CSV}": str(tmp_path / "res" / "results.csv")}
    argv = [fill.get(a, a.replace("{T}", str(tmp_path))) for a in args]
    needles = NEEDLES.get(target) or (NEEDLES["input"] if reads_network else NEEDLES["user's"])
    if command in ("run output_dir", "run --output-dir") and target == "symlink":
        needles = ("is the config's own folder",)  # a link to the network's folder, whose config it is
    if command == "partition --config-out" and target == "in components":
        needles = ("write the new config beside",)  # a new config is only ever written beside its source
    refused_here(tmp_path, *argv, needles=needles)
    assert not list(tmp_path.rglob(".bmtk-scaling-probe-*")) and not list(tmp_path.rglob("*.partial"))


# --- every case of the hostile review, each ending in a clear exit 2 before any work (or the right thing) ----------


def _cfg(net: Path) -> str:
    return str(net / "simulation_config.json")


@pytest.mark.parametrize("target", ["simulation_config.json", "circuit_config.json", "network/pairs_nodes.h5",
                                    "components/templates/RTMCell.hoc", "../notes.txt"])
def test_run_json_never_replaces_an_input_or_a_users_file(net, tmp_path, target):
    (tmp_path / "notes.txt").write_text("my notes\n")
    refused_here(tmp_path, "run", _cfg(net), "--json", str(net / target),
                 needles=("an input of", "input folder", "not a run measurements"))


def test_compare_out_the_network_folder(net, tmp_path):
    (net / "mine.txt").write_text("mine\n")
    refused_here(tmp_path, "compare", _cfg(net), "--out", str(net), "--overwrite", needles=("an input of",))


def test_build_overwrite_keeps_a_users_file_in_a_built_network(net, tmp_path):
    (net / "notes.txt").write_text("mine\n")
    line = refused_here(tmp_path, "build", "pairs", "--n-pairs", "2", "--out", str(net), "--overwrite",
                        needles=("also holds notes.txt",))
    assert "nothing was deleted" in line


def test_run_keeps_a_users_file_in_an_earlier_runs_output(net, tmp_path):
    from bmtk_scaling.atomic import atomic_directory

    with atomic_directory(net / "output", kind="run output") as tmp:  # what an earlier run left, marker and all
        (tmp / "spikes.h5").write_bytes(b"earlier")
    (net / "output" / "analysis.ipynb").write_text("mine\n")
    before = _snapshot(net / "output")
    proc = bmtk("run", _cfg(net), cwd=tmp_path)  # written beside it, the notebook and the earlier run kept
    assert proc.returncode == 0, proc.stderr[-2000:]
    beside = net / "output_bmtk-scaling"
    lines = [ln for ln in proc.stdout.strip().splitlines() if "[WARNING]" not in ln]  # bmtk's own log, on import
    assert lines[0].startswith(f"output: {beside} ") and lines[-1].startswith(f"output: {beside} ")
    assert _snapshot(net / "output") == before and (beside / "spikes.h5").is_file()


def test_sweep_slurm_keeps_a_users_scripts(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC_TEXT)
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "submit.sh").write_text("my own submit\n")
    (jobs / "spec.yaml").write_text("my own spec\n")
    refused_here(tmp_path, "sweep", str(spec), "--slurm", str(jobs), needles=("did not write",))
    refused_here(tmp_path, "sweep", str(spec), "--slurm", str(jobs), "--overwrite", needles=("did not write",))


def test_sweep_slurm_replaces_its_own_scripts_only_when_asked(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC_TEXT)
    assert in_process("sweep", str(spec), "--slurm", str(tmp_path / "jobs"))[0] == 0
    (tmp_path / "jobs" / "logs").mkdir()
    (tmp_path / "jobs" / "logs" / "job-1.out").write_text("a job's log\n")
    refused_here(tmp_path, "sweep", str(spec), "--slurm", str(tmp_path / "jobs"), needles=("pass --overwrite",))
    assert in_process("sweep", str(spec), "--slurm", str(tmp_path / "jobs"), "--overwrite")[0] == 0
    assert (tmp_path / "jobs" / "logs" / "job-1.out").read_text() == "a job's log\n"


def test_output_dir_that_is_a_symlink_to_the_network(net, tmp_path):
    (tmp_path / "outlink").symlink_to(net)
    _edit(net / "simulation_config.json", output__output_dir=str(tmp_path / "outlink"))
    refused_here(tmp_path, "run", _cfg(net), needles=("is the config's own folder",))
    assert os.readlink(tmp_path / "outlink") == str(net)


@pytest.mark.parametrize("args", [
    ["partition", "{CFG}", "--ranks", "2", "--strategy", "round_robin", "--config-out", "notes.txt", "--overwrite"],
    ["configure", "{CFG}", "--engine", "coreneuron", "--out", "{NET}/notes.txt", "--overwrite"],
])
def test_overwrite_replaces_only_a_config_it_wrote(net, tmp_path, args):
    (net / "notes.txt").write_text("a thesis\n")
    argv = [a.replace("{CFG}", _cfg(net)).replace("{NET}", str(net)) for a in args]
    refused_here(tmp_path, *argv, needles=("is not a simulation config bmtk-scaling wrote",))


def test_config_out_refused_before_the_map_is_written(net, tmp_path):
    refused_here(tmp_path, "partition", _cfg(net), "--ranks", "2", "--strategy", "round_robin", "--config-out",
                 "circuit_config.json", "--overwrite", needles=("an input of",))
    assert not (net / "partitions").exists()


def test_a_name_too_long(tmp_path):
    refused_here(tmp_path, "build", "pairs", "--n-pairs", "2", "--out", str(tmp_path / ("x" * 300)),
                 needles=("choose a shorter path",))


@pytest.mark.parametrize("how", ["file", "read-only"])
def test_a_cache_folder_that_cannot_be_used(tmp_path, read_only, how):
    cache = tmp_path / "cache"
    if how == "file":
        cache.write_text("not a folder\n")
    else:
        read_only(cache)
    refused_here(tmp_path, "build", "pairs", "--n-pairs", "2", "--out", str(tmp_path / "out"),
                 needles=("the cache folder", "BMTK_SCALING_CACHE"), env={"BMTK_SCALING_CACHE": str(cache)})


@pytest.mark.parametrize("home", ["", "/"])
def test_home_unset_or_root_never_puts_the_cache_at_the_root(monkeypatch, home):
    from bmtk_scaling.environment import cache_root

    monkeypatch.delenv("BMTK_SCALING_CACHE", raising=False)
    monkeypatch.setenv("HOME", home)
    root = cache_root()
    assert root.is_absolute() and root.parent.parent != Path("/") and root.name == "bmtk-scaling"
    monkeypatch.delenv("HOME")
    assert cache_root() == root


def test_a_path_with_non_ascii_characters(pristine, tmp_path):
    net = tmp_path / "Müller" / "net"
    shutil.copytree(pristine, net, symlinks=True)
    refused_here(tmp_path, "run", _cfg(net), needles=("non-ASCII",))


def test_a_fifo_given_as_config(tmp_path):
    os.mkfifo(tmp_path / "c.json")
    refused_here(tmp_path, "run", str(tmp_path / "c.json"), needles=("is not a regular file",))


def test_a_folder_where_a_nodes_file_belongs(net, tmp_path):
    nodes = net / "network" / "pairs_nodes.h5"
    nodes.unlink()
    nodes.mkdir()
    refused_here(tmp_path, "run", _cfg(net), needles=("is a folder, not a file",))


def test_node_ids_stored_as_floats(net, tmp_path):
    with h5py.File(net / "network" / "pairs_nodes.h5", "r+") as h5:
        pop = h5["nodes/pairs"]
        ids = pop["node_id"][()]
        del pop["node_id"]
        pop.create_dataset("node_id", data=ids.astype(float))
    for command in (["run", _cfg(net)], ["partition", _cfg(net), "--ranks", "2"]):
        refused_here(tmp_path, *command, needles=("stored as float64",))


@pytest.mark.parametrize("sep,word", [(",", "commas"), ("\t", "tabs")])
def test_node_types_with_commas_or_tabs(net, tmp_path, sep, word):
    csv = net / "network" / "pairs_node_types.csv"
    csv.write_text(csv.read_text().replace(" ", sep))
    refused_here(tmp_path, "run", _cfg(net), needles=(f"separates its columns with {word}",))


def _node_types(net: Path, text: str) -> None:
    (net / "network" / "pairs_node_types.csv").write_text(text)


@pytest.mark.parametrize("types,needle", [
    ("node_type_id model_type model_template model_processing\n100 biophysical hoc:NoSuchCell attach_drive\n",
     "defines template NoSuchCell"),
    ("node_type_id model_type model_template model_processing\n101 biophysical hoc:RTMCell attach_drive\n",
     "node_type_id 100 is not in the node types file"),
    ("node_type_id model_type model_template dynamics_params\n100 biophysical ctdb:Biophys1.hoc cell.json\n",
     "no model_processing"),
])
def test_node_types_bionet_would_fail_on_late_or_never(net, tmp_path, types, needle):
    _node_types(net, types)
    refused_here(tmp_path, "run", _cfg(net), needles=(needle,))


@pytest.mark.parametrize("content,needle", [(None, "not found"), ("node_ids,timestamps\n0,1.0\n", "not an HDF5 file")])
def test_spike_inputs(net, tmp_path, content, needle):
    if content is not None:
        (net / "spikes.csv").write_text(content)
    _edit(net / "simulation_config.json", inputs={"drive": {"input_type": "spikes", "module": "sonata",
                                                            "input_file": "$BASE_DIR/spikes.csv", "node_set": "all"}})
    line = refused_here(tmp_path, "run", _cfg(net), needles=(needle,))
    assert "spikes.csv" in line


def test_a_duplicate_json_key(net, tmp_path):
    cfg = net / "simulation_config.json"
    cfg.write_text(cfg.read_text().replace('{', '{"run": {"tstop": 5.0, "dt": 0.1}, ', 1))
    refused_here(tmp_path, "run", str(cfg), needles=("gives the key 'run' twice",))


def test_output_dir_inside_components(net, tmp_path):
    _edit(net / "simulation_config.json", output__output_dir="$BASE_DIR/components/output")
    refused_here(tmp_path, "run", _cfg(net), needles=("input folder",))


def test_a_population_name_the_file_does_not_hold(net, tmp_path):
    circuit = net / "circuit_config.json"
    data = json.loads(circuit.read_text())
    data["networks"]["nodes"][0]["populations"] = {"pairz": {"type": "biophysical"}}
    circuit.write_text(json.dumps(data))
    refused_here(tmp_path, "run", _cfg(net), needles=("names node population(s) ['pairz']",))


def test_a_nan_syn_weight_in_the_edge_types(net, tmp_path):
    csv = net / "network" / "pairs_pairs_edge_types.csv"
    import pandas as pd

    types = pd.read_csv(csv, sep=" ")
    types["syn_weight"] = float("nan")
    types.to_csv(csv, sep=" ", index=False, na_rep="NaN")
    refused_here(tmp_path, "run", _cfg(net), needles=("syn_weight values are NaN",))


def test_more_ranks_than_cells(net, tmp_path):
    refused_here(tmp_path, "run", _cfg(net), "--ranks", "9", needles=("9 ranks for 8 cells",))


@pytest.mark.parametrize("option", [["--threads", "2"], ["--cell-permute", "1"], ["--file-mode"]])
def test_configure_refuses_what_the_engine_ignores(net, tmp_path, option):
    refused_here(tmp_path, "configure", _cfg(net), "--engine", "neuron", *option, "--out", str(tmp_path / "x.json"),
                 needles=(f"{option[0]}: CoreNEURON option(s) that the engine neuron ignores",))


@pytest.mark.parametrize("what", ["nodes", "edges"])
def test_partition_of_an_empty_network(net, tmp_path, what):
    path = net / "network" / ("pairs_nodes.h5" if what == "nodes" else "pairs_pairs_edges.h5")
    with h5py.File(path, "r+") as h5:
        group = h5[f"{what}/pairs" if what == "nodes" else "edges/pairs_to_pairs"]
        for name, ds in list(group.items()):
            if isinstance(ds, h5py.Dataset):
                data, attrs = ds[()][:0], dict(ds.attrs)
                del group[name]
                group.create_dataset(name, data=data).attrs.update(attrs)
    if what == "nodes":
        refused_here(tmp_path, "partition", _cfg(net), "--ranks", "2", needles=("hold 0 nodes",))
    else:  # no edges: every cell placed, nothing cut
        code, err = in_process("partition", _cfg(net), "--ranks", "2", "--strategy", "metis")
        assert code == 0, err


# --- what happens after the work: results kept, stale staging removed, no process left ------------------------------


def test_a_final_rename_that_fails_keeps_the_results(tmp_path, read_only):
    from bmtk_scaling.atomic import begin_staging, read_marker, remove_abandoned
    from bmtk_scaling.errors import RunError

    place = tmp_path / "place"
    place.mkdir()
    staging = begin_staging(place / "output", kind="run output")
    (staging.folder / "spikes.h5").write_bytes(b"results")
    read_only(place)
    with pytest.raises(RunError, match=f"kept in {staging.folder}"):
        staging.commit()
    assert (staging.folder / "spikes.h5").read_bytes() == b"results"
    assert read_marker(staging.folder)["kept"] is True
    subprocess.run(["chattr", "-i", str(place)], capture_output=True)
    place.chmod(0o755)
    assert remove_abandoned(place / "output") == []  # kept results are the user's to move


def test_stale_staging_is_removed_only_when_its_writer_is_gone(tmp_path):
    from bmtk_scaling.atomic import remove_abandoned

    dead = subprocess.Popen(["true"])
    dead.wait()
    gone = tmp_path / f".output.{dead.pid}-abcd.partial"  # a killed run's folder: bmtk emptied it, marker gone
    gone.mkdir()
    (gone / "spikes.h5").write_bytes(b"half")
    alive = tmp_path / f".output.{os.getppid()}-efgh.partial"  # a writer that is still running
    alive.mkdir()
    foreign = tmp_path / ".output.notes.partial"  # no pid, no marker: not provably ours
    foreign.mkdir()
    assert remove_abandoned(tmp_path / "output") == [gone]
    assert alive.exists() and foreign.exists()


@pytest.mark.mpi
@pytest.mark.slow
def test_sigkill_to_run_leaves_no_process_and_the_next_run_cleans_up(tmp_path):
    from network_builders import ping_assembly

    net = ping_assembly(tmp_path / "ping", n_assemblies=2, cells_per_assembly=100, tstop=600_000.0).path
    _edit(net / "simulation_config.json", run__nsteps_block=10**9)  # quiet ranks: no write to a dead pipe ends them
    log = open(tmp_path / "log.txt", "w")  # a file, as a terminal: no broken pipe ends the ranks by chance
    proc = subprocess.Popen([EXE, "run", str(net / "simulation_config.json"), "--ranks", "2"], cwd=tmp_path,
                            stdout=log, stderr=log, start_new_session=True)
    partials = lambda: [p for p in net.iterdir() if p.name.endswith(".partial")]  # noqa: E731
    _wait_for(lambda: partials() and sum("rank_main" in c for c in _processes_of(tmp_path)) >= 2, proc)
    time.sleep(2)  # the ranks are building or simulating
    proc.kill()  # SIGKILL: no handler runs in the command
    proc.wait(timeout=60)
    log.close()
    t0 = time.monotonic()
    while _processes_of(tmp_path) and time.monotonic() < t0 + 3:
        time.sleep(0.1)
    assert _processes_of(tmp_path) == []  # mpiexec and both ranks ended with the command
    print(f"every process gone {time.monotonic() - t0:.1f} s after SIGKILL")
    assert len(partials()) == 1  # left by the killed command ...
    _edit(net / "simulation_config.json", run__tstop=20.0)
    again = bmtk("run", str(net / "simulation_config.json"), "--ranks", "2", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert partials() == [] and (net / "output" / "spikes.h5").is_file()  # ... and removed by the next run


def test_a_truncated_library_is_rebuilt_not_loaded(pristine, tmp_path):
    """A compiled library cut short (a full disk, a killed copy) would load and crash a rank with "Bus error":
    a build folder holding one counts as incomplete, so the cache rebuilds it and a network reinstalls it."""
    from bmtk_scaling.environment import is_whole_library
    from bmtk_scaling.mechanisms.build import _arch, _is_complete

    build = tmp_path / "mech"
    shutil.copytree(pristine / "components" / "mechanisms", build)
    assert _is_complete(build) and all(is_whole_library(p) for p in (build / _arch()).glob("lib*.so"))
    lib = build / _arch() / "libcorenrnmech.so"
    lib.write_bytes(lib.read_bytes()[: lib.stat().st_size // 2])
    assert not is_whole_library(lib) and not _is_complete(build)


def test_overwrite_replaces_what_the_tool_wrote_there_later(net, tmp_path):
    """Maps, configs and outputs the tool added to a network it built are its own: --overwrite may replace them."""
    from bmtk_scaling.atomic import atomic_directory

    assert in_process("partition", _cfg(net), "--ranks", "2", "--strategy", "round_robin", "--config-out",
                      "sim_rr2.json")[0] == 0
    assert in_process("configure", _cfg(net), "--engine", "coreneuron", "--out", str(net / "sim_core.json"))[0] == 0
    with atomic_directory(net / "output", kind="run output") as tmp:
        (tmp / "spikes.h5").write_bytes(b"an earlier run")
    code, err = in_process("build", "pairs", "--n-pairs", "2", "--out", str(net), "--overwrite")
    assert code == 0, err
    assert not (net / "sim_core.json").exists() and not (net / "partitions").exists()
