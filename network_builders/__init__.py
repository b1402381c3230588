"""The three benchmark networks of the project, built with bmtk's NetworkBuilder as SONATA folders.

Each network has a ``*_spec`` function (parameters -> arrays, no I/O) and a builder that writes a
ready-to-run folder: ``ping_assembly``, ``n_pairs``, ``nk_cliques``. ``BUILDERS`` (the registry) knows
them by their short names (``ping``, ``pairs``, ``cliques``). Names are imported on first use, so
importing the package (the CLI does) costs nothing. Modules are named as the registry names the
networks (``ping.py``, ...), so a module never hides the builder function of the same name.
"""

from __future__ import annotations

import importlib

from network_builders.registry import BUILDERS, Builder, get_builder

_LAZY = {
    "ping_assembly": "network_builders.ping", "ping_assembly_spec": "network_builders.ping",
    "n_pairs": "network_builders.pairs", "n_pairs_spec": "network_builders.pairs",
    "nk_cliques": "network_builders.cliques", "nk_cliques_spec": "network_builders.cliques",
    "BuiltNetwork": "network_builders.spec", "NetworkSpec": "network_builders.spec",
}

__all__ = ["BUILDERS", "Builder", "get_builder", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'network_builders' has no attribute {name!r}")
