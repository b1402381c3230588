"""The benchmark networks by name: what the CLI, the sweeps and the checks know about each builder.

One entry per network; everything else (the ``build`` subcommands and their options, a sweep spec's
``builder:``, the size label of a point, the cell count checked before anything is built) is read
from here. Importing this module is cheap: a builder's module (numpy) is imported when first used.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Builder:
    """One benchmark network: its CLI name, summary and the functions of its module."""

    name: str  # ping | pairs | cliques: the CLI subcommand and a sweep spec's ``builder``
    kind: str  # ping_assembly | n_pairs | nk_cliques: the builder's name and ``kind`` in ``network_parameters.json``
    summary: str

    @property
    def module(self):
        return importlib.import_module(f"network_builders.{self.name}")

    @property
    def build(self) -> Callable[..., Any]:
        """``build(out_dir, *, <parameters>, overwrite=False, compression="none") -> BuiltNetwork``."""
        return getattr(self.module, self.kind)

    @property
    def spec(self) -> Callable[..., Any]:
        """``spec(*, <parameters>) -> NetworkSpec``: the network as arrays, no files."""
        return getattr(self.module, f"{self.kind}_spec")

    def parameters(self) -> dict[str, inspect.Parameter]:
        """Every network parameter (the spec function's), with its annotation and default."""
        return dict(inspect.signature(self.spec).parameters)

    def defaults(self) -> dict[str, Any]:
        return {name: p.default for name, p in self.parameters().items()}

    def cell_count(self, params: Mapping[str, Any]) -> int:
        """Cells of the network with ``params`` (defaults filled in), without drawing it."""
        return int(self.module.cell_count({**self.defaults(), **params}))

    def expected_edges(self, params: Mapping[str, Any]) -> float:
        """Expected synapse count from the parameters (connection probabilities), without drawing."""
        return float(self.module.expected_edges({**self.defaults(), **params}))

    def size_label(self, params: Mapping[str, Any]) -> str:
        """A short name of the network's size, e.g. ``2x1250`` (used in sweep point ids)."""
        return self.module.size_label({**self.defaults(), **params})


BUILDERS: dict[str, Builder] = {b.name: b for b in (
    Builder("ping", "ping_assembly", "PING-Assembly: N assemblies of K E/I cells with a gamma rhythm."),
    Builder("pairs", "n_pairs", "N-Pairs: N independent sender -> receiver pairs."),
    Builder("cliques", "nk_cliques", "N-K-Cliques: N all-to-all cliques of K cells."),
)}


def get_builder(name: str) -> Builder:
    from bmtk_scaling.errors import BmtkScalingError

    if name not in BUILDERS:
        raise BmtkScalingError(f"unknown network {name!r}; choose one of: {', '.join(BUILDERS)}")
    return BUILDERS[name]
