"""Every mechanism of bmtk's bio_components compiled for CoreNEURON and run in a small network on both engines.

bmtk's components come from ../shared/realnets/bmtk (skipped where absent). One cell per mechanism
(density mechanisms with hh and a current step; synapse models driven by spike trains), simulated by
NEURON psolve and by CoreNEURON in child processes from the build a user's run gets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.slow]
COMPONENTS = Path(__file__).resolve().parents[2] / "shared" / "realnets" / "bmtk" / "bio_components"
PROBE = Path(__file__).with_name("components_probe.py")


def _run(build: Path, engine: str, suffixes: list[str], points: list[str], out: Path) -> dict:
    env = dict(os.environ, NEURON_MODULE_OPTIONS="-nogui")
    proc = subprocess.run([sys.executable, str(PROBE), str(build), engine, json.dumps(suffixes), json.dumps(points),
                           str(out)], cwd=out.parent, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return dict(np.load(out))


def test_every_bio_components_mechanism_runs_on_coreneuron(tmp_path):
    if not COMPONENTS.is_dir():
        pytest.skip(f"bmtk's bio_components are not here ({COMPONENTS} is absent, as in a fresh clone)")
    from bmtk_scaling.mechanisms.network import _COMMENT, _DEFINES, prepare

    mechanisms = prepare(COMPONENTS / "mechanisms")
    assert mechanisms.coreneuron_error is None, mechanisms.coreneuron_error
    assert mechanisms.v_copies == ("NaV",) and mechanisms.mended == ("NaV",)
    suffixes, points = [], []
    for mod in mechanisms.files:
        kinds = _DEFINES.findall(_COMMENT.sub("", mod.read_text(errors="replace")))
        suffixes += [name for kind, name in kinds if kind == "SUFFIX"]
        points += [name for kind, name in kinds if kind == "POINT_PROCESS"]
    # every file of bmtk's folder, and the plugin's EcpImem (it copies an ECP's currents on both engines and receives
    # no events: the ECP tests run it)
    assert len(suffixes) == 16 and len(points) == 9 and "EcpImem" in points, (suffixes, points)
    points.remove("EcpImem")
    build = mechanisms.neuron_build
    ref = _run(build, "neuron", suffixes, points, tmp_path / "neuron.npz")
    got = _run(build, "core", suffixes, points, tmp_path / "core.npz")
    assert len(set(ref["gid"])) > 15  # most cells fire
    assert np.array_equal(ref["t"], got["t"]) and np.array_equal(ref["gid"], got["gid"])
    # NEURON's built-in hh and CoreNEURON's translation of it (and nocmodl's sparse solver against nmodl's Newton for
    # NaV's kinetic scheme) round differently: the traces agree to rounding, the spikes exactly
    assert np.abs(ref["v"] - got["v"]).max() < 1e-6
