"""The RTM/WB/VecStim mechanisms and cell templates, on real NEURON and CoreNEURON.

NEURON state is process-global (a mechanism library loads once per process, CoreNEURON keeps the
first library it opened), so every simulation runs in ONE child process: this file run as a script
(``python test_mechanisms.py MECH_DIR OUT.json``). The tests compare what it measured with the
equations of benchmark-networks.md, evaluated here in plain Python/SciPy.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.slow]

AREA_CM2 = math.pi * 100.0 * 500.0 * 1e-8  # L = 100 um, diam = 500 um, lateral area in cm2
DRIVE_NA = 1.4
SPIKE_THRESHOLD = -15.0
V_INIT = -75.0
GATING_VOLTAGES = [-90.0, -75.0, -67.0, -54.0, -52.0, -50.0, -35.0, -34.0, -27.0, -10.0, 0.0, 30.0]
VECSTIM_TIMES = [-1.0, 5.0, 12.25, 12.25, 40.0, 41.5, 120.0]  # the negative time must be skipped


# --------------------------------------------------------------------------------------------
# Reference model: the rate functions of benchmark-networks.md, written independently of NMODL
# --------------------------------------------------------------------------------------------
def _xexp(x: float, k: float) -> float:
    """x / (1 - exp(-x/k)), with its limit k at x = 0."""
    return k if x == 0.0 else x / -math.expm1(-x / k)


REFERENCE = {
    "rtm": {
        "template": "RTMCell",
        "g": {"na": 100.0, "k": 80.0, "l": 0.1},  # mS/cm2
        "e": {"na": 50.0, "k": -100.0, "l": -67.0},  # mV
        "am": lambda v: 0.32 * _xexp(v + 54, 4),
        "bm": lambda v: 0.28 * _xexp(-(v + 27), 5),
        "ah": lambda v: 0.128 * math.exp(-(v + 50) / 18),
        "bh": lambda v: 4 / (1 + math.exp(-(v + 27) / 5)),
        "an": lambda v: 0.032 * _xexp(v + 52, 5),
        "bn": lambda v: 0.5 * math.exp(-(v + 57) / 40),
    },
    "wb": {
        "template": "WBCell",
        "g": {"na": 35.0, "k": 9.0, "l": 0.1},
        "e": {"na": 55.0, "k": -90.0, "l": -65.0},
        "am": lambda v: 0.1 * _xexp(v + 35, 10),
        "bm": lambda v: 4 * math.exp(-(v + 60) / 18),
        "ah": lambda v: 0.35 * math.exp(-(v + 58) / 20),
        "bh": lambda v: 5 / (1 + math.exp(-(v + 28) / 10)),
        "an": lambda v: 0.05 * _xexp(v + 34, 10),
        "bn": lambda v: 0.625 * math.exp(-(v + 44) / 80),
    },
}


def _steady(cell: dict, gate: str, v: float) -> float:
    a, b = cell["a" + gate](v), cell["b" + gate](v)
    return a / (a + b)


def _ionic(cell: dict, v: float, h: float, n: float) -> float:
    """Membrane ionic current density (uA/cm2) with m = m_inf(v)."""
    g, e = cell["g"], cell["e"]
    m = _steady(cell, "m", v)
    return g["na"] * m**3 * h * (v - e["na"]) + g["k"] * n**4 * (v - e["k"]) + g["l"] * (v - e["l"])


def _resting_potential(cell: dict) -> float:
    """Lowest zero of the steady-state I-V curve (the stable rest; RTM/WB have three, type-1 cells)."""
    from scipy.optimize import brentq

    def i_ss(v: float) -> float:
        return _ionic(cell, v, _steady(cell, "h", v), _steady(cell, "n", v))

    grid = np.arange(-100.0, 0.0, 0.1)
    values = np.array([i_ss(v) for v in grid])
    k = int(np.flatnonzero(np.diff(np.sign(values)))[0])
    return brentq(i_ss, grid[k], grid[k + 1], xtol=1e-12)


def _reference_spikes(cell: dict, amp_na: float, tstop: float) -> np.ndarray:
    """Upward threshold crossings of the exact ODE (tight LSODA), drive on from t = 0."""
    from scipy.integrate import solve_ivp

    i_app = amp_na * 1e-3 / AREA_CM2  # nA -> uA/cm2

    def rhs(_t: float, y: np.ndarray) -> list[float]:
        v, h, n = y
        return [
            i_app - _ionic(cell, v, h, n),  # C = 1 uF/cm2
            cell["ah"](v) * (1 - h) - cell["bh"](v) * h,
            cell["an"](v) * (1 - n) - cell["bn"](v) * n,
        ]

    def crossing(_t: float, y: np.ndarray) -> float:
        return y[0] - SPIKE_THRESHOLD

    crossing.direction = 1.0
    y0 = [V_INIT, _steady(cell, "h", V_INIT), _steady(cell, "n", V_INIT)]
    sol = solve_ivp(rhs, (0.0, tstop), y0, method="LSODA", rtol=1e-9, atol=1e-11, events=crossing)
    return sol.t_events[0]


def _rate_hz(spikes: np.ndarray, last: int = 10) -> float:
    return 1000.0 / float(np.diff(spikes)[-last:].mean())


# --------------------------------------------------------------------------------------------
# Fixtures: one compile (cached), one NEURON child process
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mech_dir() -> Path:
    from bmtk_scaling.mechanisms import compile_mechanisms, project_components_dir

    return compile_mechanisms(project_components_dir() / "mechanisms" / "modfiles")


@pytest.fixture(scope="module")
def probe(mech_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("probe") / "probe.json"
    env = dict(os.environ, NEURON_MODULE_OPTIONS="-nogui")
    env.pop("CORENEURONLIB", None)  # the child sets it itself, after importing NEURON
    repo = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, __file__, str(mech_dir), str(out)],
        cwd=out.parent,  # no stray x86_64/ in the working directory gets auto-loaded
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"probe failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(out.read_text())


# --------------------------------------------------------------------------------------------
# Build and installation
# --------------------------------------------------------------------------------------------
def test_compile_is_cached_and_has_both_libraries(mech_dir: Path) -> None:
    from bmtk_scaling.mechanisms import compile_mechanisms, corenrn_library, project_components_dir

    start = time.perf_counter()
    again = compile_mechanisms(project_components_dir() / "mechanisms" / "modfiles")
    assert again == mech_dir
    assert time.perf_counter() - start < 2.0, "second call recompiled instead of using the cache"
    lib = corenrn_library(mech_dir)
    assert lib.name == "libcorenrnmech.so" and lib.is_file()
    assert (lib.parent / "libnrnmech.so").is_file()


def test_install_layout(mech_dir: Path, tmp_path: Path) -> None:
    from bmtk_scaling.mechanisms import install_mechanisms

    dest = install_mechanisms(tmp_path / "mechanisms")
    assert sorted(p.name for p in (dest / "modfiles").glob("*.mod")) == ["ecp_imem.mod", "intfire1_core.mod", "rtm.mod",
                                                                         "vecstim.mod", "wb.mod"]
    lib = next(dest.glob("*/libnrnmech.so"))
    assert lib.read_bytes() == next(mech_dir.glob("*/libnrnmech.so")).read_bytes()
    assert (lib.parent / "libcorenrnmech.so").is_file()
    assert install_mechanisms(dest) == dest  # idempotent


def test_corenrn_library_missing_is_explained(tmp_path: Path) -> None:
    from bmtk_scaling.mechanisms import corenrn_library

    with pytest.raises(FileNotFoundError, match="nrnivmodl -coreneuron"):
        corenrn_library(tmp_path)


def test_compile_failure_raises_with_compiler_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bmtk_scaling.mechanisms import compile_mechanisms

    monkeypatch.setenv("BMTK_SCALING_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.mod").write_text("NEURON { SUFFIX broken }\nBREAKPOINT { x = = 1 }\n")
    from bmtk_scaling.errors import BmtkScalingError

    with pytest.raises(BmtkScalingError, match="nrnivmodl -coreneuron failed") as info:
        compile_mechanisms(bad)
    assert "broken" in str(info.value)
    assert not list((tmp_path / "cache").glob("mech-*/")), "a failed build must not be cached"


# --------------------------------------------------------------------------------------------
# Cells
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["rtm", "wb"])
def test_template_geometry(probe: dict, name: str) -> None:
    geo = probe["geometry"][name]
    assert geo["secname"].endswith(".soma[0]")
    assert geo["n_all"] == 1 and geo["nseg"] == 1
    assert geo["L"] == 100.0 and geo["diam"] == 500.0 and geo["cm"] == 1.0
    assert geo["area_cm2"] == pytest.approx(AREA_CM2, rel=1e-12)
    assert geo["has_mech"] and not geo["has_hh"]
    assert geo["stim_before"] is None
    assert geo["stim_after"] == {"amp": 1.4, "del": 200.0, "dur": 300.0, "x": 0.5}


@pytest.mark.parametrize("name", ["rtm", "wb"])
def test_gating_matches_reference_formulas(probe: dict, name: str) -> None:
    """Includes the removable singularities (RTM -54/-52/-27 mV, WB -35/-34 mV) where naive code gives NaN."""
    cell = REFERENCE[name]
    for v, got in zip(GATING_VOLTAGES, probe["gating"][name], strict=True):
        want = {
            "m": _steady(cell, "m", v),
            "h": _steady(cell, "h", v),
            "n": _steady(cell, "n", v),
            "htau": 1 / (cell["ah"](v) + cell["bh"](v)),
            "ntau": 1 / (cell["an"](v) + cell["bn"](v)),
        }
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-15), (name, v, key)


@pytest.mark.parametrize(("name", "expected_rest"), [("rtm", -66.59), ("wb", -64.02)])
def test_undriven_cell_is_silent_at_rest(probe: dict, name: str, expected_rest: float) -> None:
    v_rest = _resting_potential(REFERENCE[name])
    assert v_rest == pytest.approx(expected_rest, abs=0.01)  # the numbers quoted in the docs
    rest = probe["rest"][name]
    assert rest["n_spikes"] == 0
    assert rest["v_end"] == pytest.approx(v_rest, abs=0.01)


@pytest.mark.parametrize("name", ["rtm", "wb"])
def test_driven_cell_fires_at_the_exact_ode_rate(probe: dict, name: str) -> None:
    """1.4 nA on 1.571e-3 cm2 is 0.89 uA/cm2, above both cells' rheobase (type-1 onset near 0.1-0.2).

    The exact ODE gives RTM 40.6 Hz, WB 54.3 Hz. NEURON's fixed step is first order (the
    instantaneous m lags one step), so the error shrinks with dt: within 2% at dt 0.01 and 4% at
    0.025 (WB, with its phi = 5 fast kinetics, is the harder one).
    """
    ref = _reference_spikes(REFERENCE[name], DRIVE_NA, 1000.0)
    ref_rate = _rate_hz(ref)
    assert 30.0 < ref_rate < 70.0  # gamma-range firing, what PING relies on
    errors = {}
    for dt, tol in (("0.01", 0.02), ("0.025", 0.04)):
        spikes = np.array(probe["driven"][name][dt])
        assert abs(len(spikes) - len(ref)) <= 1
        assert spikes[0] == pytest.approx(ref[0], abs=0.3)
        errors[dt] = abs(_rate_hz(spikes) / ref_rate - 1)
        assert errors[dt] < tol, (dt, _rate_hz(spikes), ref_rate)
    assert errors["0.01"] < errors["0.025"]  # converging


# --------------------------------------------------------------------------------------------
# NEURON versus CoreNEURON, VecStim
# --------------------------------------------------------------------------------------------
def test_coreneuron_spikes_identical_to_neuron(probe: dict) -> None:
    nrn, core = probe["engines"]["neuron"], probe["engines"]["coreneuron"]
    assert len(nrn["spikes"]) > 20  # driven RTM and WB, a VecStim-driven RTM, an inhibited WB
    assert {gid for gid, _ in nrn["spikes"]} >= {0, 1, 2, 3, 10}
    assert core["spikes"] == nrn["spikes"]  # bitwise: same dt, same arithmetic
    for gid in nrn["v"]:
        assert np.max(np.abs(np.array(core["v"][gid]) - np.array(nrn["v"][gid]))) < 1e-8


@pytest.mark.parametrize("engine", ["neuron", "coreneuron"])
def test_vecstim_replays_vector(probe: dict, engine: str) -> None:
    run = probe["engines"][engine]
    played = [t for gid, t in run["spikes"] if gid == 10]
    assert played == [t for t in VECSTIM_TIMES if t >= 0]
    assert not [t for gid, t in run["spikes"] if gid == 11], "a VecStim without play() must stay silent"
    # The RTM cell fed only by the VecStim (0.05 uS, delay 1 ms) spikes only just after its events.
    target = [t for gid, t in run["spikes"] if gid == 2]
    assert len(target) >= 2
    for t in target:
        assert any(1.0 < t - event < 10.0 for event in played), t


# --------------------------------------------------------------------------------------------
# The child process: every NEURON call lives below
# --------------------------------------------------------------------------------------------
def _child(mech_dir: str, out_path: str) -> None:
    import neuron
    from neuron import coreneuron, h

    from bmtk_scaling.mechanisms import export_coreneuron_library

    assert neuron.load_mechanisms(mech_dir)
    # Late on purpose: CORENEURONLIB only has to be set before the first CoreNEURON psolve.
    # Without it that psolve aborts the process ("rtm mechanism does not exist").
    export_coreneuron_library(Path(mech_dir))
    h.load_file("stdrun.hoc")
    templates = Path(__file__).resolve().parent.parent / "components" / "templates"
    for name in REFERENCE.values():
        assert h.load_file(str(templates / f"{name['template']}.hoc")) == 1
    pc = h.ParallelContext()
    result: dict = {"geometry": {}, "gating": {}, "rest": {}, "driven": {}}

    def detector(cell, record: bool = True):
        nc = h.NetCon(cell.soma[0](0.5)._ref_v, None, sec=cell.soma[0])
        nc.threshold = SPIKE_THRESHOLD
        vec = h.Vector()
        if record:
            nc.record(vec)
        return nc, vec

    for name, ref in REFERENCE.items():
        cell = getattr(h, ref["template"])()
        soma = cell.soma[0]
        geo = {
            "secname": soma.name(),
            "n_all": len(list(cell.all)),
            "nseg": soma.nseg,
            "L": soma.L,
            "diam": soma.diam,
            "cm": soma.cm,
            "area_cm2": soma(0.5).area() * 1e-8,
            "has_mech": bool(h.ismembrane(name, sec=soma)),
            "has_hh": bool(h.ismembrane("hh", sec=soma)),
            "stim_before": None if cell.stim is None else "set",
        }
        cell.set_drive(1.4, 200, 300)
        geo["stim_after"] = {
            "amp": cell.stim.amp,
            "del": cell.stim.delay,
            "dur": cell.stim.dur,
            "x": cell.stim.get_loc(),
        }
        h.pop_section()  # get_loc() pushed the IClamp's section
        result["geometry"][name] = geo
        del cell

        cell = getattr(h, ref["template"])()
        mech = getattr(cell.soma[0](0.5), name)
        rows = []
        for v in GATING_VOLTAGES:
            h.finitialize(v)
            rows.append({k: getattr(mech, k) for k in ("m", "h", "n", "htau", "ntau")})
        result["gating"][name] = rows

        _, spikes = detector(cell)
        h.dt = 0.025
        h.finitialize(V_INIT)
        h.continuerun(800)
        result["rest"][name] = {"v_end": cell.soma[0](0.5).v, "n_spikes": len(spikes)}
        del cell

        result["driven"][name] = {}
        for dt in ("0.01", "0.025"):
            cell = getattr(h, ref["template"])()
            cell.set_drive(DRIVE_NA, 0, 1e9)
            _, spikes = detector(cell)
            h.dt = float(dt)
            h.finitialize(V_INIT)
            h.continuerun(1000)
            result["driven"][name][dt] = list(spikes)
            del cell

    # A small network on gids: 0 RTM driven, 1 WB driven, 2 RTM fed by VecStim 10, 3 WB inhibited by 0
    # (and excited by 1 -> kept firing), 11 a VecStim never played.
    cells = [h.RTMCell(), h.WBCell(), h.RTMCell(), h.WBCell()]
    cells[0].set_drive(DRIVE_NA, 5, 1e9)
    cells[1].set_drive(DRIVE_NA, 0, 1e9)
    cells[3].set_drive(1.0, 0, 1e9)
    keep = []
    for gid, cell in enumerate(cells):
        pc.set_gid2node(gid, 0)
        nc, _ = detector(cell, record=False)
        pc.cell(gid, nc)
    times = h.Vector(VECSTIM_TIMES)
    stims = [h.VecStim(), h.VecStim()]
    stims[0].play(times)
    for gid, stim in zip((10, 11), stims, strict=True):
        pc.set_gid2node(gid, 0)
        pc.cell(gid, h.NetCon(stim, None))

    def synapse(pre_gid: int, post, tau2: float, erev: float, weight: float) -> None:
        syn = h.Exp2Syn(post.soma[0](0.5))
        syn.tau1, syn.tau2, syn.e = 0.5, tau2, erev
        nc = pc.gid_connect(pre_gid, syn)
        nc.weight[0], nc.delay = weight, 1.0
        keep.extend([syn, nc])

    synapse(10, cells[2], 3.0, 0.0, 0.05)
    synapse(11, cells[2], 3.0, 0.0, 0.05)
    synapse(0, cells[3], 9.0, -75.0, 0.002)
    spike_t, spike_gid = h.Vector(), h.Vector()
    pc.spike_record(-1, spike_t, spike_gid)
    traces = {str(gid): h.Vector().record(cell.soma[0](0.5)._ref_v) for gid, cell in enumerate(cells)}
    h.cvode.cache_efficient(1)
    pc.set_maxstep(10)
    h.dt = 0.025
    result["engines"] = {}
    for engine in ("neuron", "coreneuron"):
        coreneuron.enable = engine == "coreneuron"
        coreneuron.verbose = 0
        h.finitialize(V_INIT)
        pc.psolve(300)
        pairs = sorted(zip((int(g) for g in spike_gid), spike_t, strict=True))
        result["engines"][engine] = {
            "spikes": [[g, t] for g, t in pairs],
            "v": {gid: list(vec) for gid, vec in traces.items()},
        }
    coreneuron.enable = False
    Path(out_path).write_text(json.dumps(result))


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])


def test_build_flags_make_a_build_of_their_own() -> None:
    """The CoreNEURON library's compiler flags are in the cache key (with the processor for native ones); without
    flags the key is unchanged, so builds already cached stay valid."""
    from bmtk_scaling.mechanisms.build import _build_key, _mod_files, _native_target, _nrnivmodl, project_components_dir

    mods, tool = _mod_files(project_components_dir() / "mechanisms" / "modfiles"), _nrnivmodl()
    plain = _build_key(mods, tool)
    assert _build_key(mods, tool, flags=None) == plain
    keys = {plain, _build_key(mods, tool, flags="-O3"), _build_key(mods, tool, flags="-O3 -march=native"),
            _build_key(mods, tool, flags="-O3 -march=native -ffp-contract=off")}
    assert len(keys) == 4
    assert _native_target() and _native_target() == _native_target()
