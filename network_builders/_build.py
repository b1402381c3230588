"""What every builder function does with its arguments: check the memory it needs, draw, write.

Kept apart from :mod:`network_builders.writer` (which imports bmtk) so that importing a builder stays
cheap, and apart from :mod:`network_builders.spec` so that neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from network_builders.spec import BuiltNetwork, NetworkSpec

BYTES_PER_EDGE = 200  # peak while drawing, building and saving (measured: 1.62 GiB for PING 2 x 5000, 9 M edges)
BYTES_PER_NODE = 2048


def build_from(spec_fn: Callable[..., NetworkSpec], arguments: Mapping[str, Any]) -> BuiltNetwork:
    """What every builder does with its arguments: check the memory it needs, draw the network, write it."""
    from network_builders.writer import build_network

    params = dict(arguments)
    out_dir, overwrite, compression = params.pop("out_dir"), params.pop("overwrite"), params.pop("compression")
    if not params.pop("force"):
        check_memory(spec_fn, params)
    return build_network(spec_fn, Path(out_dir), overwrite, compression, params)


def check_memory(spec_fn: Callable[..., NetworkSpec], params: Mapping[str, Any]) -> None:
    """BmtkScalingError when the network's estimated peak memory exceeds the memory available now."""
    import importlib

    module = importlib.import_module(spec_fn.__module__)
    try:
        edges, nodes = module.expected_edges(dict(params)), module.cell_count(dict(params))
        need = float(edges) * BYTES_PER_EDGE + float(nodes) * BYTES_PER_NODE
    except (TypeError, ValueError, KeyError, OverflowError):
        return  # parameters of the wrong kind: the builder's own checks name them
    available = available_memory()
    if available is not None and need > 0.9 * available:
        from bmtk_scaling.errors import BmtkScalingError

        raise BmtkScalingError(f"this network needs about {need / 2**30:,.1f} GiB ({edges:,.0f} edges expected, "
                               f"{nodes:,} cells) but {available / 2**30:,.1f} GiB are available: choose a smaller "
                               "size, or pass --force (force=True) to try anyway")


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now (Linux ``MemAvailable``), or None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
