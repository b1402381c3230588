"""Sweeps as a user runs them: real networks, real MPI runs, resumed after a stop, an interrupt or a failure."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bmtk_scaling.sweep.records import IDENTITY, MEASURED, PARTITION, PROVENANCE
from tests.helpers import interruptible
from tests.test_cli import cli

pytestmark = [pytest.mark.mpi, pytest.mark.slow]

ROOT = Path(__file__).parents[1]

TINY = """
name: tiny
networks:
  - name: pairs
    builder: pairs
    params: {tstop: 20.0}
    sizes: [{n_pairs: 50}]
    reduced_sizes: [{n_pairs: 6}]
  - name: cliques
    builder: cliques
    params: {tstop: 20.0}
    sizes: [{n_cliques: 20, clique_size: 5}]
    reduced_sizes: [{n_cliques: 2, clique_size: 3}]
ranks: [1, 2]
strategies: [by_assembly]
timeout_s: 120
figures:
  - {name: per_network, x: ranks, y: simulate_s, hue: network}
"""


def write_spec(folder: Path, text: str = TINY, name: str = "spec.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames), list(reader)


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """The reduced tiny sweep stopped after 3 of its 4 points, then resumed."""
    tmp = tmp_path_factory.mktemp("sweep")
    spec, out = write_spec(tmp), tmp / "results"
    first = cli("sweep", str(spec), "--reduced", "--out", str(out), "--max-points", "3")
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "points").glob("*.json")}
    rows_after_first = read_csv(out / "results.csv")[1]
    report_after_first = (out / "report").exists()
    second = cli("sweep", str(spec), "--reduced", "--out", str(out))
    return {"out": out, "first": first, "second": second, "stamps": stamps, "rows_after_first": rows_after_first,
            "report_after_first": report_after_first}


def test_stop_after_n_points_then_resume_runs_only_the_rest(resumed):
    first, second, out = resumed["first"], resumed["second"], resumed["out"]
    assert first.returncode == 0, first.stderr
    assert "3 point(s) run, 0 were already done" in first.stdout and "other 1" in first.stdout
    assert len(resumed["stamps"]) == 3 and len(resumed["rows_after_first"]) == 3
    assert not resumed["report_after_first"]  # stopped on purpose: no report of half a sweep
    assert second.returncode == 0, second.stderr
    assert "1 point(s) run, 3 were already done, 0 failed, 0 remain" in second.stdout
    for name, stamp in resumed["stamps"].items():  # finished points were not run again
        assert (out / "points" / name).stat().st_mtime_ns == stamp


def test_csv_schema_and_provenance(resumed):
    fields, rows = read_csv(resumed["out"] / "results.csv")
    params = sorted(f for f in fields if f.startswith("param_"))
    assert fields == IDENTITY + MEASURED + PARTITION + params + PROVENANCE
    assert {"param_n_pairs", "param_n_cliques", "param_clique_size", "param_tstop", "param_seed"} <= set(params)
    assert len(rows) == 4
    assert {(r["network"], r["ranks"]) for r in rows} == {("pairs", "1"), ("pairs", "2"), ("cliques", "1"),
                                                          ("cliques", "2")}
    for r in rows:
        assert r["spec"] == "tiny" and r["engine"] == "neuron" and r["strategy"] == "by_assembly"
        assert float(r["simulate_s"]) > 0 and float(r["total_s"]) >= float(r["simulate_s"])
        assert float(r["peak_rss_sum_mib"]) >= float(r["peak_rss_max_mib"]) > 50
        assert int(r["spikes"]) > 0 and int(r["n_cells"]) == float(r["cells_per_rank"]) * int(r["ranks"])
        assert r["version_neuron"] and r["version_bmtk"] and r["hostname"] and "sweep" in r["command"]
        assert r["git_commit"] and json.loads(r["params_json"])["seed"] == int(r["seed"]) == 0
        assert r["synapses_cut"] == "0"  # by_assembly keeps pairs and cliques whole
    pairs = [r for r in rows if r["network"] == "pairs"]
    assert pairs[0]["n_cells"] == "12" and pairs[0]["n_synapses"] == "6"
    # The same network gives the same spikes on 1 and 2 ranks.
    for net in ("pairs", "cliques"):
        assert len({r["spikes_sha256"] for r in rows if r["network"] == net}) == 1


def test_networks_built_once_and_maps_per_ranks(resumed):
    out = resumed["out"]
    networks = sorted(p.name for p in (out / "networks").iterdir())
    assert len(networks) == 2
    maps = sorted(p.name for p in (out / "networks" / networks[0] / "partitions").iterdir())
    assert maps == ["by_assembly_1.h5", "by_assembly_2.h5"]
    config = json.loads(next((out / "runs").glob("pairs-*_r2t1_*/config.json")).read_text())
    assert config["bmtk_scaling"]["partition"] == "$BASE_DIR/partitions/by_assembly_2.h5"


def test_report_from_the_sweep_and_from_the_command(resumed, tmp_path):
    out = resumed["out"]
    assert "skipped memory_scaling" in resumed["second"].stdout
    for png in ("strong_scaling.png", "load_balance.png", "per_network.png"):
        data = (out / "report" / png).read_bytes()
        assert data[:4] == b"\x89PNG" and len(data) > 5_000
    strong = read_csv(out / "report" / "strong_scaling.csv")[1]
    assert {r["ranks"] for r in strong} == {"1", "2"}
    assert all(float(r["speedup_simulate"]) == 1.0 for r in strong if r["ranks"] == "1")
    proc = cli("report", str(out / "results.csv"), "--out", str(tmp_path / "again"))
    assert proc.returncode == 0, proc.stderr
    assert "skipped weak_scaling" in proc.stdout and "skipped ranks_threads" in proc.stdout
    assert (tmp_path / "again" / "per_network.png").is_file()  # the spec beside the CSV gives its figures
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    proc = cli("report", str(bad))
    assert proc.returncode == 2 and "lacks the columns" in proc.stderr


def test_a_results_folder_belongs_to_one_sweep(resumed, tmp_path):
    other = write_spec(tmp_path, TINY.replace("name: tiny", "name: other"))
    proc = cli("sweep", str(other), "--reduced", "--out", str(resumed["out"]))
    assert proc.returncode == 2 and "holds the results of sweep 'tiny'" in proc.stderr


def test_failing_points_are_recorded_and_retried(tmp_path):
    text = TINY.replace("timeout_s: 120", "timeout_s: 0.01").replace("ranks: [1, 2]", "ranks: [1]")
    spec, out = write_spec(tmp_path, text), tmp_path / "results"
    proc = cli("sweep", str(spec), "--reduced", "--out", str(out))
    assert proc.returncode == 1
    assert "did not finish within 0.01 s" in proc.stderr and "rerun the same command" in proc.stderr
    assert len(list((out / "failed").glob("*.json"))) == 1  # stopped at the first failure
    proc = cli("sweep", str(spec), "--reduced", "--out", str(out), "--keep-going")
    assert proc.returncode == 1 and "0 point(s) run" in proc.stdout
    assert len(list((out / "failed").glob("*.json"))) == 2
    assert not list(out.glob("points/*.json"))
    write_spec(tmp_path, text.replace("timeout_s: 0.01", "timeout_s: 120"))
    proc = cli("sweep", str(spec), "--reduced", "--out", str(out), "--no-report")
    assert proc.returncode == 0, proc.stderr
    assert "2 point(s) run, 0 were already done" in proc.stdout
    assert not list((out / "failed").glob("*.json"))


def test_interrupted_sweep_keeps_what_finished(tmp_path):
    spec, out = write_spec(tmp_path), tmp_path / "results"
    exe = Path(sys.executable).parent / "bmtk-scaling"
    proc = subprocess.Popen([str(exe), "sweep", str(spec), "--out", str(out), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    deadline = time.monotonic() + 300
    while not list(out.glob("points/*.json")):
        assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended before a point finished"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    kept = {p.name for p in (out / "points").glob("*.json")}
    assert proc.returncode == 130 and "every finished point is kept" in err, (kept, err[-2000:])
    assert kept and not list((out / "points").glob(".*partial"))
    time.sleep(0.5)
    leftover = subprocess.run(["pgrep", "-f", str(out / "runs")], capture_output=True, text=True).stdout.split()
    assert [pid for pid in leftover if int(pid) != os.getpid()] == []  # the ranks were stopped too
    again = cli("sweep", str(spec), "--out", str(out), "--no-report")
    assert again.returncode == 0, again.stderr
    assert f"{4 - len(kept)} point(s) run, {len(kept)} were already done" in again.stdout


def test_shipped_experiment_reduced_end_to_end(tmp_path):
    """The memory experiment at its CI size: real runs, the power-law fit and its figure."""
    spec = ROOT / "sim_configs" / "experiments" / "pesce_memory.yaml"
    proc = cli("sweep", str(spec), "--reduced", "--out", str(tmp_path / "mem"), "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    fits = read_csv(tmp_path / "mem" / "report" / "memory_fit.csv")[1]
    total = next(f for f in fits if f["memory"] == "total" and f["against"] == "n_cells")
    assert int(total["n"]) == 3 and 0 <= float(total["b"]) < 3 and float(total["gib_at_1M_cells"]) > 0
    assert (tmp_path / "mem" / "report" / "memory_scaling.png").stat().st_size > 10_000
    assert (tmp_path / "mem" / "report" / "memory_per_rank.png").is_file()
