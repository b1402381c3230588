"""The ``bmtk-scaling`` command as a user runs it: outputs, exit codes, messages, no partial files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import cli


@pytest.mark.slow
def test_build_each_network(tmp_path):
    for net, extra in (("ping", ["--n-assemblies", "2", "--cells-per-assembly", "40"]),
                       ("pairs", ["--n-pairs", "5"]), ("cliques", ["--n-cliques", "2", "--clique-size", "3"])):
        out = tmp_path / net
        proc = cli("build", net, "--out", str(out), "--seed", "4", *extra)
        assert proc.returncode == 0, proc.stderr
        params = json.loads((out / "network_parameters.json").read_text())
        assert params["parameters"]["seed"] == 4
        assert (out / "simulation_config.json").is_file() and (out / "run_bionet.py").is_file()
    assert json.loads((tmp_path / "cliques" / "network_parameters.json").read_text())["n_edges"] == 2 * 3 * 2


@pytest.mark.parametrize("args,needle", [
    (["ping", "--cells-per-assembly", "0"], "cells_per_assembly must be a positive integer"),
    (["ping", "--n-assemblies", "-3"], "n_assemblies must be a positive integer"),
    (["ping", "--p-ie", "1.01"], "p_ie must be a probability"),
    (["pairs", "--delay", "0"], "delay must be a positive number"),
    (["cliques", "--delay", "-1"], "delay must be a positive number"),
])
def test_bad_parameters_exit_2_without_output(tmp_path, args, needle):
    out = tmp_path / "out"
    proc = cli("build", args[0], "--out", str(out), *args[1:])
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_non_empty_output_needs_overwrite(tmp_path):
    out = tmp_path / "net"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    proc = cli("build", "pairs", "--out", str(out), "--n-pairs", "2")
    assert proc.returncode == 2 and "did not write" in proc.stderr  # not ours: no --overwrite would help
    assert (out / "notes.txt").read_text() == "mine"
    proc = cli("build", "pairs", "--out", str(out), "--n-pairs", "2", "--overwrite")  # not ours: never replaced
    assert proc.returncode == 2 and "did not write" in proc.stderr and (out / "notes.txt").read_text() == "mine"
    built = tmp_path / "built"
    assert cli("build", "pairs", "--out", str(built), "--n-pairs", "2").returncode == 0
    proc = cli("build", "pairs", "--out", str(built), "--n-pairs", "3", "--overwrite")  # ours: replaced
    assert proc.returncode == 0 and "6 cells" in proc.stdout


@pytest.mark.parametrize("target", ["/proc/bmtk-scaling-test/out", "FILE/out"])
def test_unwritable_output_exit_2(tmp_path, target):
    blocker = tmp_path / "FILE"
    blocker.write_text("")
    out = target.replace("FILE", str(blocker))
    proc = cli("build", "pairs", "--out", out, "--n-pairs", "2")
    assert proc.returncode == 2, proc.stderr
    assert "error: cannot" in proc.stderr and "--out" in proc.stderr


@pytest.mark.mpi
@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    proc = cli("demo", "--out", str(out), "--cells", "100", "--tstop", "500")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "spikes: identical on every engine" in proc.stdout
    assert "gamma check: population peak" in proc.stdout and "inside the 30-40 Hz band" in proc.stdout
    for label in ("stock BMTK-NEURON", "NEURON psolve", "CoreNEURON"):
        assert label in proc.stdout
    for png in (out / "raster.png", out / "compare" / "compare.png"):
        assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    report = json.loads((out / "compare" / "compare.json").read_text())
    assert [v["summary"]["ranks"] for v in report["variants"]] == [2, 2, 2]
    assert all(Path(v["spikes_file"]).is_file() for v in report["variants"])  # paths name the final folder
    assert (out / "network" / "partitions" / "metis_2_seed1.h5").is_file()
    again = cli("demo", "--out", str(out), "--cells", "100", "--tstop", "500")
    assert again.returncode == 2 and "--overwrite" in again.stderr  # an earlier demo is never replaced silently
