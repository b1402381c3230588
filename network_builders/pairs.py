"""N-Pairs: N independent sender -> receiver pairs, one excitatory synapse each.

The sender is driven by an IClamp; its spikes make the receiver fire one delay later. Node 2i is the
sender of pair i and node 2i+1 its receiver. Parameters and their sources: docs/networks.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bmtk_scaling.errors import BmtkScalingError
from network_builders import _checks, _random
from network_builders._build import build_from
from network_builders.configs import RunSettings
from network_builders.spec import DRIVE_FOREVER, BuiltNetwork, CellGroup, EdgeClass, NetworkSpec


def n_pairs_spec(
    *,
    n_pairs: int = 625,
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
    """The N-Pairs network as arrays (no files)."""
    params = dict(locals())
    n = _checks.positive_int("n_pairs", n_pairs)
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

    senders = 2 * np.arange(n)
    amp = np.zeros(2 * n)
    amp[senders] = drive_amp * (1.0 + drive_noise * _random.stream(seed, "drive").standard_normal(n))
    group = CellGroup("RTMCell", {
        "role": np.tile(np.array(["sender", "receiver"]), n),
        "assembly": np.repeat(np.arange(n), 2),
        "drive_amp": amp,
        "drive_delay": np.full(2 * n, drive_start),
        "drive_dur": np.full(2 * n, DRIVE_FOREVER),
    })
    edges = [EdgeClass("sender_to_receiver", senders, senders + 1, "exc", weight, delay)]
    return NetworkSpec(population="pairs", kind="n_pairs", parameters=params, groups=[group],
                       edges=edges, run=run)


def n_pairs(
    out_dir: str | Path,
    *,
    n_pairs: int = 625,
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
    """Build N-Pairs and write it as a ready-to-run BMTK/SONATA folder at ``out_dir``.

    The network parameters are those of :func:`n_pairs_spec`; ``overwrite`` replaces a non-empty
    ``out_dir``, ``compression`` ("none" or "gzip", the latter unreadable for the libsonata wheel) is the
    HDF5 filter. A network whose estimated memory exceeds what is available is refused before
    anything is allocated, unless ``force``. Nothing is left behind on failure.
    """
    return build_from(n_pairs_spec, locals())


def cell_count(p: dict) -> int:
    return 2 * int(p["n_pairs"])


def expected_edges(p: dict) -> float:
    return float(p["n_pairs"])


def size_label(p: dict) -> str:
    return f"{p['n_pairs']}pairs"
