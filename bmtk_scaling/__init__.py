"""bmtk-scaling: benchmark networks, rank partitions and engine switches for BMTK's bionet.

The public API, one function per step (see :mod:`bmtk_scaling.api`)::

    from bmtk_scaling import (build_network, partition_network, configure_simulation, run_simulation,
                              compare_engines, run_sweep, make_report, ping_assembly, Engine)

Importing the package only prepares the process environment (the MPI library NEURON must load);
names are imported on first use, never NEURON or bmtk up front, so the CLI starts fast and MPI can
still be initialised before bmtk reads the rank count.
"""

from __future__ import annotations

import importlib
from importlib import metadata

from bmtk_scaling.environment import configure_neuron_environment

try:
    __version__ = metadata.version("bmtk-scaling")
except metadata.PackageNotFoundError:  # a checkout on sys.path, not installed
    __version__ = "0+unknown"

configure_neuron_environment()

_API = {
    **{name: "bmtk_scaling.api" for name in ("build_network", "partition_network", "configure_simulation",
                                             "run_simulation", "compare_engines", "run_sweep", "make_report",
                                             "PartitionResult")},
    **{name: "network_builders" for name in ("ping_assembly", "n_pairs", "nk_cliques", "ping_assembly_spec",
                                             "n_pairs_spec", "nk_cliques_spec", "BuiltNetwork")},
    "Engine": "bmtk_scaling.config.settings", "Settings": "bmtk_scaling.config.settings",
    **{name: "bmtk_scaling.errors" for name in ("BmtkScalingError", "ConfigError", "PartitionError", "SpecError",
                                                "GpuUnavailableError", "RunError", "RunFailed", "SweepStopped")},
}

__all__ = ["__version__", "configure_neuron_environment", *_API]


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'bmtk_scaling' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
