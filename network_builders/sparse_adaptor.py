"""A bmtk ``NetworkBuilder`` adaptor that takes edges as precomputed numpy arrays.

bmtk's ``DenseNetwork`` keeps one sources × targets count table per edge type and calls a Python rule
for every candidate pair; both grow as the square of the network. Our builders draw their
connectivity with numpy, so this adaptor stores exactly the drawn (source, target) arrays and hands
them to bmtk's own edge collator and writer: the files are what bmtk would write, the cost is linear
in the number of edges. Ordinary connection rules still go through bmtk's dense path.

Use it through bmtk's public switch: ``NetworkBuilder(name, adaptor_cls=sparse_network())`` and
``net.add_edges(source=..., target=..., connection_rule=EdgeList(src, trg), **edge_type_props)``.
The adaptor class itself touches bmtk internals, so it lives in :mod:`bmtk_scaling._bmtk_private`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bmtk_scaling.errors import BmtkScalingError


@dataclass(frozen=True)
class EdgeList:
    """Explicit edges of one edge type: ``sources[k] -> targets[k]`` (node ids), one synapse each."""

    sources: np.ndarray
    targets: np.ndarray

    def __post_init__(self) -> None:
        src = np.asarray(self.sources, dtype=np.uint64)
        trg = np.asarray(self.targets, dtype=np.uint64)
        if src.shape != trg.shape or src.ndim != 1:
            raise BmtkScalingError(f"EdgeList needs two 1-D arrays of equal length, got {src.shape} and {trg.shape}")
        object.__setattr__(self, "sources", src)
        object.__setattr__(self, "targets", trg)

    def __len__(self) -> int:
        return int(self.sources.size)


def check_ids_in(ids: np.ndarray, allowed: np.ndarray, message: str) -> None:
    """BmtkScalingError(``message``) unless every id is in ``allowed`` (linear time, non-negative ids)."""
    if not ids.size:
        return
    top = int(max(ids.max(), allowed.max(initial=0))) + 1
    member = np.zeros(top, dtype=bool)
    member[allowed] = True
    if not member[ids.astype(np.int64)].all():
        raise BmtkScalingError(message)


def sparse_network() -> type:
    """The ``adaptor_cls`` for ``NetworkBuilder`` that accepts :class:`EdgeList` rules."""
    from bmtk_scaling._bmtk_private import sparse_network_class

    return sparse_network_class(EdgeList, check_ids_in)
