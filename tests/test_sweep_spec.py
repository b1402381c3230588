"""Sweep specs: every kind of bad spec is refused before anything runs, with every problem named at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bmtk_scaling.sweep.grid import expand_points, load_points
from bmtk_scaling.sweep.spec import SpecError, parse_spec
from tests.test_cli import cli

EXPERIMENTS = sorted((Path(__file__).parents[1] / "sim_configs" / "experiments").glob("*.yaml"))

GOOD = """
name: ok
networks:
  - builder: pairs
    params: {tstop: 20.0}
    sizes: {n_pairs: [4, 8]}
    reduced_sizes: [{n_pairs: 2}]
ranks: [1, 2]
strategies: [random, by_assembly]
"""


def spec_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(tmp_path: Path, text: str, local: bool = True, reduced: bool = False) -> list[str]:
    with pytest.raises(SpecError) as err:
        load_points(spec_file(tmp_path, text), reduced=reduced, local=local)
    assert "nothing was run" in str(err.value)
    return err.value.problems


def test_good_spec_expands_to_the_grid(tmp_path):
    spec, points = load_points(spec_file(tmp_path, GOOD))
    assert len(points) == 2 * 2 * 2
    assert len({p.id for p in points}) == 8
    assert len({p.network.key for p in points}) == 2  # one build per size, shared by ranks and strategies
    reduced = expand_points(spec, reduced=True)
    assert {p.network.params["n_pairs"] for p in reduced} == {2}


def test_point_ids_depend_on_what_decides_a_measurement(tmp_path):
    _, a = load_points(spec_file(tmp_path, GOOD))
    _, b = load_points(spec_file(tmp_path, GOOD.replace("tstop: 20.0", "tstop: 30.0")))
    _, c = load_points(spec_file(tmp_path, GOOD + "timeout_s: 5\n"))
    assert not {p.id for p in a} & {p.id for p in b}  # another network: new points, never old numbers
    assert [p.id for p in a] == [p.id for p in c]  # the timeout does not change what is measured


@pytest.mark.parametrize("edit,needle", [
    (("name: ok", "name: ok\ncolour: red"), "unknown key ['colour'] in the spec"),
    (("    params: {tstop: 20.0}", "    params: {tsop: 20.0}"), "pairs has no parameter 'tsop'"),
    (("    params: {tstop: 20.0}", "    params: {tstop: 20.0}\n    colour: 1"), "in networks[0]"),
    (("builder: pairs", "builder: rings"), "builder must be one of"),
    (("{n_pairs: [4, 8]}", "{n_pairs: ['4']}"), "n_pairs must be int"),
    (("    params: {tstop: 20.0}", "    params: {tstop: -1.0}"), "tstop must be positive"),
    (("    params: {tstop: 20.0}", "    params: {tstop: 20.0, seed: 3}"), "list it under seeds"),
    (("[random, by_assembly]", "[random, magic]"), "unknown strategies ['magic']"),
    (("ranks: [1, 2]", "ranks: [1, 2]\nengines: [neuron, nest]"), "unknown engines ['nest']"),
    (("ranks: [1, 2]", "ranks: [0, 2]"), "ranks must be a non-empty list of integers >= 1"),
    (("ranks: [1, 2]", "ranks: [1, 2]\nrepeats: 0"), "repeats must be a positive integer"),
    (("ranks: [1, 2]", "ranks: [1, 2]\nstatistic: mean"), "statistic must be median or min"),
    (("ranks: [1, 2]", "ranks: [1, 2]\nanalyses: [speedup]"), "analyses must be a list of some of"),
    (("ranks: [1, 2]", "ranks: [1, 2]\nfigures: [{name: f, x: nope}]"), "x 'nope' is not a results column"),
    (("ranks: [1, 2]", "ranks: [1, 2]\nslurm: {time: soon}"), "time must be [D-]HH:MM:SS"),
    (("ranks: [1, 2]", "ranks: [1, 2]\nslurm: {partition: a, gpus: 4}"), "unknown key ['gpus'] in slurm"),
    (("ranks: [1, 2]", "ranks: [1, 2]\ngrids: [{ranks: [1], cores: 2}]"), "unknown key ['cores'] in grids[0]"),
    (("    reduced_sizes", "    scale_with_ranks: [tstop]\n    reduced_sizes"), "not an integer size parameter"),
])
def test_each_bad_spec_kind_is_named(tmp_path, edit, needle):
    old, new = edit
    assert old in GOOD
    problems = problems_of(tmp_path, GOOD.replace(old, new))
    assert any(needle in p for p in problems), problems


def test_impossible_points_are_named(tmp_path):
    text = GOOD.replace("ranks: [1, 2]", "ranks: [1, 9]\nthreads: [1, 2]")
    problems = problems_of(tmp_path, text)
    assert any("8 cells on 9 ranks: more ranks than cells" in p for p in problems), problems
    assert any("threads [2] with engine neuron" in p for p in problems), problems


def test_builder_refusals_are_found_before_building(tmp_path):
    text = """
    networks:
      - builder: ping
        sizes: [{n_assemblies: 1, cells_per_assembly: 2}]
    """
    problems = problems_of(tmp_path, text)
    assert any("PING needs at least one of each" in p for p in problems), problems


def test_gpu_point_without_gpu_support(tmp_path):
    text = GOOD.replace("ranks: [1, 2]", "ranks: [1, 2]\nengines: [coreneuron, coreneuron_gpu]")
    problems = problems_of(tmp_path, text)
    assert any("use engine coreneuron_gpu" in p and "GPU support" in p for p in problems), problems
    # Scripts for a GPU cluster do not need a GPU here.
    _, points = load_points(spec_file(tmp_path, text), local=False)
    assert sum(p.gpu for p in points) == 8


def test_every_problem_in_one_error(tmp_path):
    text = GOOD.replace("name: ok", "name: ok\ncolour: red").replace("ranks: [1, 2]", "ranks: [1, 9]") \
        .replace("[random, by_assembly]", "[random, magic]")
    problems = problems_of(tmp_path, text)
    assert len(problems) == 3, problems  # structure, names and impossible points together


def test_reduced_needs_reduced_sizes_and_empty_grid(tmp_path):
    problems = problems_of(tmp_path, GOOD.replace("    reduced_sizes: [{n_pairs: 2}]\n", ""), reduced=True)
    assert any("--reduced needs reduced_sizes" in p for p in problems), problems
    problems = problems_of(tmp_path, GOOD + "total_cores: [7]\n")
    assert any("the grid is empty" in p for p in problems), problems


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(SpecError, match="not valid YAML"):
        parse_spec("networks: [")
    with pytest.raises(ValueError, match="not found"):
        load_points(tmp_path / "nope.yaml")


def test_cli_exits_2_and_creates_nothing(tmp_path):
    path = spec_file(tmp_path, GOOD.replace("ranks: [1, 2]", "ranks: [1, 9]\nengines: [coreneuron_gpu]"))
    out = tmp_path / "results"
    proc = cli("sweep", str(path), "--out", str(out))
    assert proc.returncode == 2, proc.stderr
    assert "2 problems" in proc.stderr and "more ranks than cells" in proc.stderr and "GPU" in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_shipped_experiments_are_valid(path):
    spec, points = load_points(path, local=False)
    _, reduced = load_points(path, reduced=True, local=False)
    assert spec.figures or spec.name == "pesce_strong_scaling"
    assert 0 < len(reduced) <= len(points)
    assert max(p.network.n_cells for p in reduced) <= 200  # CI-sized
