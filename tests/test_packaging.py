"""A real install: the wheel, in a fresh virtual environment, run from a folder outside the repository.

This is what a user gets from ``pip install bmtk-scaling``: no checkout beside the package, the
components (mod files, templates, synapse parameters) from inside the wheel, mechanisms compiled
into the cache from there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (found,) = out.glob("bmtk_scaling-*.whl")
    return found


def test_wheel_carries_the_components(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for part in ("bmtk_scaling/components/mechanisms/modfiles/rtm.mod", "bmtk_scaling/components/templates/RTMCell.hoc",
                 "bmtk_scaling/components/synaptic_models/exc.json", "bmtk_scaling/cli/__init__.py",
                 "network_builders/registry.py", "bmtk_scaling/_bmtk_private.py", "bmtk_scaling/sites/shim.c"):
        assert part in names, part
    assert not any(n.startswith("tests/") for n in names)


def test_installed_wheel_runs_the_demo_outside_the_repository(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)]
    proc = subprocess.run(pip, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "MPI_LIB_NRN_PATH")}
    env["BMTK_SCALING_CACHE"] = str(tmp_path / "cache")  # compiled from the wheel's own mod files
    exe = env_dir / "bin" / "bmtk-scaling"
    proc = subprocess.run([str(exe), "demo", "--out", "demo", "--cells", "20", "--tstop", "300"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "spikes: identical on every engine" in proc.stdout
    assert (work / "demo" / "compare" / "compare.png").is_file()
    where = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import bmtk_scaling; print(bmtk_scaling.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True).stdout
    assert str(env_dir) in where and str(ROOT) not in where  # the installed copy, not the checkout
