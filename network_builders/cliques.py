"""N-K-Cliques: N cliques of K cells, all-to-all excitatory inside a clique (K(K-1) edges each).

The first cell of each clique is driven by an IClamp; activity spreads to the rest of its clique and
never to another. Parameters and their sources: docs/networks.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bmtk_scaling.errors import BmtkScalingError
from network_builders import _checks, _random
from network_builders._build import build_from
from network_builders.configs import RunSettings
from network_builders.spec import DRIVE_FOREVER, BuiltNetwork, CellGroup, EdgeClass, NetworkSpec


def nk_cliques_spec(
    *,
    n_cliques: int = 10,
    clique_size: int = 10,
    weight: float = 1.0,
    delay: float = 1.0,
    drive_amp: float = 10.0,
    drive_noise: float = 0.0,
    drive_start: float = 0.0,
    tstop: float = 100.0,
    dt: float = 0.025,
    v_init: float = -65.0,
    seed: int = 0,
) -> NetworkSpec:
    """The N-K-Cliques network as arrays (no files)."""
    params = dict(locals())
    n = _checks.positive_int("n_cliques", n_cliques)
    k = _checks.positive_int("clique_size", clique_size)
    weight = _checks.non_negative("weight", weight)
    delay = _checks.positive("delay", delay)
    drive_amp = _checks.finite("drive_amp", drive_amp)
    drive_noise = _checks.non_negative("drive_noise", drive_noise)
    drive_start = _checks.non_negative("drive_start", drive_start)
    run = RunSettings(tstop=_checks.positive("tstop", tstop), dt=_checks.positive("dt", dt),
                      v_init=_checks.finite("v_init", v_init), seed=_checks.seed(seed))
    if delay < run.dt:
        raise BmtkScalingError(f"delay {delay:g} ms is shorter than dt {run.dt:g} ms: NEURON cannot exchange spikes "
                               "between ranks in less than one step; use delay >= dt")

    first = k * np.arange(n)
    role = np.full(n * k, "member", dtype=object)
    role[first] = "driven"
    amp = np.zeros(n * k)
    amp[first] = drive_amp * (1.0 + drive_noise * _random.stream(seed, "drive").standard_normal(n))
    group = CellGroup("RTMCell", {
        "role": role.astype(str),
        "assembly": np.repeat(np.arange(n), k),
        "drive_amp": amp,
        "drive_delay": np.full(n * k, drive_start),
        "drive_dur": np.full(n * k, DRIVE_FOREVER),
    })
    local_src, local_trg = np.nonzero(~np.eye(k, dtype=bool))  # every ordered pair, no self-connection
    offsets = np.repeat(first, local_src.size)
    sources = offsets + np.tile(local_src, n)
    targets = offsets + np.tile(local_trg, n)
    edges = [EdgeClass("within_clique", sources, targets, "exc", weight, delay)] if k > 1 else []
    return NetworkSpec(population="cliques", kind="nk_cliques", parameters=params, groups=[group],
                       edges=edges, run=run)


def nk_cliques(
    out_dir: str | Path,
    *,
    n_cliques: int = 10,
    clique_size: int = 10,
    weight: float = 1.0,
    delay: float = 1.0,
    drive_amp: float = 10.0,
    drive_noise: float = 0.0,
    drive_start: float = 0.0,
    tstop: float = 100.0,
    dt: float = 0.025,
    v_init: float = -65.0,
    seed: int = 0,
    overwrite: bool = False,
    compression: str = "none",
    force: bool = False,
) -> BuiltNetwork:
    """Build N-K-Cliques and write it as a ready-to-run BMTK/SONATA folder at ``out_dir``.

    The network parameters are those of :func:`nk_cliques_spec`; ``overwrite`` replaces a non-empty
    ``out_dir``, ``compression`` ("none" or "gzip", the latter unreadable for the libsonata wheel) is the
    HDF5 filter. A network whose estimated memory exceeds what is available is refused before
    anything is allocated, unless ``force``. Nothing is left behind on failure.
    """
    return build_from(nk_cliques_spec, locals())


def cell_count(p: dict) -> int:
    return int(p["n_cliques"]) * int(p["clique_size"])


def expected_edges(p: dict) -> float:
    return float(p["n_cliques"] * p["clique_size"] * (p["clique_size"] - 1))


def size_label(p: dict) -> str:
    return f"{p['n_cliques']}x{p['clique_size']}"
