"""bmtk's LIF point neurons (nrn:IntFire1) on CoreNEURON: the plugin's stand-in gives the built-in's spikes.

The built-in runs on NEURON only (CoreNEURON has no IntFire1); the stand-in runs on both, and NEURON
no longer crashes at the end of psolve with a refractory period pending at tstop (the stand-in sends
no self-event). Real NEURON and CoreNEURON in child processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]
PROBE = Path(__file__).with_name("intfire1_probe.py")


def _spikes(build: Path, kind: str, engine: str, out: Path) -> list:
    env = dict(os.environ, NEURON_MODULE_OPTIONS="-nogui")
    proc = subprocess.run([sys.executable, str(PROBE), kind, engine, str(build), str(out)], cwd=out.parent, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(out.read_text())


def test_stand_in_gives_the_builtins_spikes_on_both_engines(tmp_path):
    from bmtk_scaling.mechanisms import compile_mechanisms, project_components_dir

    build = compile_mechanisms(project_components_dir() / "mechanisms" / "modfiles")
    stock = _spikes(build, "builtin", "neuron", tmp_path / "stock.json")
    assert len(stock) > 400
    assert [11.0, 0.0] in stock and [16.0, 0.0] in stock  # an input exactly at the end of the refractory period
    assert [36.000001, 1.0] in stock and [35.999999, 0.0] not in stock  # just after counts, just before does not
    assert [54.0, 2.0] in stock
    for engine in ("neuron", "core"):
        assert _spikes(build, "stand_in", engine, tmp_path / f"{engine}.json") == stock, engine
