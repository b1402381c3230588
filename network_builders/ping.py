"""PING-Assembly: N assemblies of K cells (Börgers' pyramidal-interneuron gamma), weakly cross-linked.

Within an assembly: E (reduced Traub-Miles) and I (Wang-Buzsáki) cells, connected E->I, I->E, I->I
(and E->E if ``p_ee > 0``) with probability p_XY and weight w_XY = g_XY / (p_XY * N_X) uS, so the
total conductance a cell receives from population X does not depend on K. Between assemblies: a
``cross_fraction`` of each assembly's cells receives one excitatory synapse from a random E cell of
another assembly. E cells are driven by an IClamp of ``drive_amp * (1 + drive_noise * xi)`` nA from
``drive_start`` to the end of the run. Parameters and their sources: docs/networks.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bmtk_scaling.errors import BmtkScalingError
from network_builders import _checks, _random
from network_builders._build import build_from
from network_builders.configs import RunSettings
from network_builders.spec import DRIVE_FOREVER, BuiltNetwork, CellGroup, EdgeClass, NetworkSpec


def ping_assembly_spec(
    *,
    n_assemblies: int = 2,
    cells_per_assembly: int = 1250,
    exc_fraction: float = 0.8,
    p_ee: float = 0.0,
    p_ei: float = 0.5,
    p_ie: float = 0.5,
    p_ii: float = 0.5,
    g_ee: float = 0.0,
    g_ei: float = 0.25,
    g_ie: float = 0.25,
    g_ii: float = 0.25,
    cross_fraction: float = 0.1,
    cross_weight: float | None = None,
    delay: float = 0.5,
    drive_amp: float = 1.4,
    drive_noise: float = 0.05,
    drive_start: float = 200.0,
    tstop: float = 500.0,
    dt: float = 0.1,
    v_init: float = -75.0,
    seed: int = 0,
) -> NetworkSpec:
    """The PING-Assembly network as arrays (no files): see the module docstring."""
    params = dict(locals())
    n_asm = _checks.positive_int("n_assemblies", n_assemblies)
    k = _checks.positive_int("cells_per_assembly", cells_per_assembly)
    frac = _checks.probability("exc_fraction", exc_fraction)
    p = {xy: _checks.probability(f"p_{xy.lower()}", v) for xy, v in
         (("EE", p_ee), ("EI", p_ei), ("IE", p_ie), ("II", p_ii))}
    g = {xy: _checks.non_negative(f"g_{xy.lower()}", v) for xy, v in
         (("EE", g_ee), ("EI", g_ei), ("IE", g_ie), ("II", g_ii))}
    cross = _checks.probability("cross_fraction", cross_fraction)
    if cross_weight is not None:  # checked even where no cross link is made: it is saved with the parameters
        _checks.non_negative("cross_weight", cross_weight)
    delay = _checks.positive("delay", delay)
    drive_amp = _checks.finite("drive_amp", drive_amp)
    drive_noise = _checks.non_negative("drive_noise", drive_noise)
    drive_start = _checks.non_negative("drive_start", drive_start)
    run = RunSettings(
        tstop=_checks.positive("tstop", tstop), dt=_checks.positive("dt", dt),
        v_init=_checks.finite("v_init", v_init), seed=_checks.seed(seed),
    )
    if delay < run.dt:
        raise BmtkScalingError(f"delay {delay:g} ms is shorter than dt {run.dt:g} ms: NEURON cannot exchange spikes "
                               "between ranks in less than one step; use delay >= dt")
    n_e = int(round(frac * k))
    n_i = k - n_e
    if n_e < 1 or n_i < 1:
        raise BmtkScalingError(
            f"cells_per_assembly={k} with exc_fraction={frac} gives {n_e} E and {n_i} I cells per assembly: "
            "PING needs at least one of each"
        )

    # Node ids: all E cells (assembly by assembly), then all I cells.
    e_ids = np.arange(n_asm * n_e).reshape(n_asm, n_e)
    i_ids = n_asm * n_e + np.arange(n_asm * n_i).reshape(n_asm, n_i)
    noise = _random.stream(seed, "drive").standard_normal(n_asm * n_e)
    groups = [
        _group("RTMCell", "E", np.repeat(np.arange(n_asm), n_e), drive_amp * (1.0 + drive_noise * noise),
               drive_start),
        _group("WBCell", "I", np.repeat(np.arange(n_asm), n_i), np.zeros(n_asm * n_i), drive_start),
    ]

    pops = {"E": (e_ids, n_e, "exc"), "I": (i_ids, n_i, "inh")}
    edges = []
    for xy in ("EE", "EI", "IE", "II"):
        if p[xy] == 0.0:
            continue
        src_ids, n_src, synapse = pops[xy[0]]
        trg_ids = pops[xy[1]][0]
        rng = _random.stream(seed, f"edges:{xy}")
        pairs = [_random.bernoulli_edges(rng, src_ids[a], trg_ids[a], p[xy]) for a in range(n_asm)]
        edges.append(EdgeClass(
            name=f"{xy[0]}_to_{xy[1]}",
            sources=np.concatenate([s for s, _ in pairs]),
            targets=np.concatenate([t for _, t in pairs]),
            synapse=synapse,
            syn_weight=g[xy] / (p[xy] * n_src),
            delay=delay,
        ))

    if n_asm > 1 and cross > 0.0:
        w_ei = g["EI"] / (p["EI"] * n_e) if p["EI"] > 0 else 0.0
        w_cross = w_ei if cross_weight is None else _checks.non_negative("cross_weight", cross_weight)
        src, trg = _cross_links(_random.stream(seed, "edges:cross"), e_ids, i_ids, cross)
        edges.append(EdgeClass("cross_assembly", src, trg, "exc", w_cross, delay))

    return NetworkSpec(population="ping", kind="ping_assembly", parameters=params, groups=groups,
                       edges=edges, run=run)


def ping_assembly(
    out_dir: str | Path,
    *,
    n_assemblies: int = 2,
    cells_per_assembly: int = 1250,
    exc_fraction: float = 0.8,
    p_ee: float = 0.0,
    p_ei: float = 0.5,
    p_ie: float = 0.5,
    p_ii: float = 0.5,
    g_ee: float = 0.0,
    g_ei: float = 0.25,
    g_ie: float = 0.25,
    g_ii: float = 0.25,
    cross_fraction: float = 0.1,
    cross_weight: float | None = None,
    delay: float = 0.5,
    drive_amp: float = 1.4,
    drive_noise: float = 0.05,
    drive_start: float = 200.0,
    tstop: float = 500.0,
    dt: float = 0.1,
    v_init: float = -75.0,
    seed: int = 0,
    overwrite: bool = False,
    compression: str = "none",
    force: bool = False,
) -> BuiltNetwork:
    """Build PING-Assembly and write it as a ready-to-run BMTK/SONATA folder at ``out_dir``.

    The network parameters are those of :func:`ping_assembly_spec`; ``overwrite`` replaces a non-empty
    ``out_dir``, ``compression`` ("none" or "gzip", the latter unreadable for the libsonata wheel) is the
    HDF5 filter. A network whose estimated memory exceeds what is available is refused before
    anything is allocated, unless ``force``. Nothing is left behind on failure.
    """
    return build_from(ping_assembly_spec, locals())



def _group(template: str, role: str, assembly: np.ndarray, amp: np.ndarray, start: float) -> CellGroup:
    n = assembly.size
    return CellGroup(template, {
        "role": np.full(n, role),
        "assembly": assembly.astype(np.int64),
        "drive_amp": np.asarray(amp, dtype=np.float64),
        "drive_delay": np.full(n, start),
        "drive_dur": np.full(n, DRIVE_FOREVER),
    })


def _cross_links(rng: np.random.Generator, e_ids: np.ndarray, i_ids: np.ndarray,
                 fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Each assembly: round(fraction * K) distinct cells each get one E input from another assembly."""
    n_asm, n_e = e_ids.shape
    src, trg = [], []
    for a in range(n_asm):
        members = np.concatenate([e_ids[a], i_ids[a]])
        n_targets = int(round(fraction * members.size))
        targets = np.sort(rng.choice(members, size=n_targets, replace=False))
        others = np.delete(e_ids, a, axis=0).ravel()
        src.append(others[rng.integers(0, others.size, size=n_targets)])
        trg.append(targets)
    return np.concatenate(src), np.concatenate(trg)


def cell_count(p: dict) -> int:
    return int(p["n_assemblies"]) * int(p["cells_per_assembly"])


def expected_edges(p: dict) -> float:
    k, fe = p["cells_per_assembly"], p["exc_fraction"]
    ne, ni = fe * k, (1 - fe) * k
    return p["n_assemblies"] * (ne * ne * p["p_ee"] + ne * ni * (p["p_ei"] + p["p_ie"]) + ni * ni * p["p_ii"])


def size_label(p: dict) -> str:
    return f"{p['n_assemblies']}x{p['cells_per_assembly']}"
