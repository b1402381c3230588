"""The public API at the package top, its signatures, and how the CLI tells bad input from a bug."""

from __future__ import annotations

import inspect
import subprocess
import sys
import typing

import pytest

import bmtk_scaling
from network_builders import BUILDERS
from tests.helpers import cli


def test_public_api_at_the_top():
    for name in ("build_network", "partition_network", "configure_simulation", "run_simulation", "compare_engines",
                 "run_sweep", "make_report", "ping_assembly", "n_pairs", "nk_cliques", "Engine", "BmtkScalingError"):
        assert callable(getattr(bmtk_scaling, name)), name
    # importing the package imports neither NEURON nor bmtk (MPI must be initialised before bmtk is imported)
    code = "import sys, bmtk_scaling; print(sorted(m for m in ('neuron', 'bmtk', 'pandas') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"


@pytest.mark.parametrize("name", list(BUILDERS))
def test_builders_show_every_parameter(name):
    builder = BUILDERS[name]
    build, spec = inspect.signature(builder.build).parameters, inspect.signature(builder.spec).parameters
    assert list(build)[0] == "out_dir" and list(build)[-3:] == ["overwrite", "compression", "force"]
    assert list(build)[1:-3] == list(spec)  # the same parameters, in the same order, with the same defaults
    hints_b, hints_s = typing.get_type_hints(builder.build), typing.get_type_hints(builder.spec)
    for par in spec:
        assert build[par].default == spec[par].default and hints_b[par] == hints_s[par], par
    assert len(spec) >= 10 and all(p.annotation is not inspect.Parameter.empty for p in spec.values())


def test_ping_assembly_signature_is_real():
    params = inspect.signature(bmtk_scaling.ping_assembly).parameters
    assert params["cells_per_assembly"].default == 1250 and params["p_ei"].default == 0.5
    assert typing.get_type_hints(bmtk_scaling.ping_assembly)["cross_weight"] == float | None


def test_configure_simulation_lists_every_setting():
    from bmtk_scaling.config.settings import SETTING_NAMES

    assert set(SETTING_NAMES) <= set(inspect.signature(bmtk_scaling.configure_simulation).parameters)


def test_bad_input_exits_2_in_one_line(tmp_path):
    proc = cli("run", str(tmp_path / "missing.json"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: config {tmp_path / 'missing.json'} not found"]


def test_a_bug_is_reported_as_a_bug():
    code = ("import sys, bmtk_scaling.sonata.configs as l\n"
            "def boom(*a, **k): raise KeyError('internal')\n"
            "l.load_config = boom\n"
            "from bmtk_scaling.cli import main\n"
            "sys.exit(main(['run', 'x.json'], prog_name='bmtk-scaling'))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "KeyError: 'internal'" in proc.stderr
    assert "this is a bug in bmtk-scaling" in proc.stderr
