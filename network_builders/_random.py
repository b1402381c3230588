"""Independent, named random streams derived from one seed.

Each part of a network (one edge class, the drive noise, ...) draws from its own stream, keyed by
the seed and a name, so a network is a function of its parameters and seed alone and changing one
part never reshuffles another.
"""

from __future__ import annotations

import zlib

import numpy as np


def stream(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(name.encode())]))


def bernoulli_edges(
    rng: np.random.Generator,
    sources: np.ndarray,
    targets: np.ndarray,
    p: float,
    allow_self: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """All-pairs Bernoulli(p) connectivity from ``sources`` to ``targets`` (node-id arrays), vectorised.

    Returns (source ids, target ids) sorted by target then source. Rows are drawn per target in blocks
    so memory stays bounded for large populations; single-precision uniforms (resolution 2**-24) halve
    the cost of the draw and are exact enough for any connection probability.
    """
    sources = np.asarray(sources, dtype=np.int64)
    targets = np.asarray(targets, dtype=np.int64)
    if p <= 0.0 or sources.size == 0 or targets.size == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    block = max(1, 4_000_000 // max(1, sources.size))
    src_out, trg_out = [], []
    for start in range(0, targets.size, block):
        trg_block = targets[start : start + block]
        mask = rng.random((trg_block.size, sources.size), dtype=np.float32) < np.float32(p)
        if not allow_self:
            mask &= trg_block[:, None] != sources[None, :]
        ti, si = np.nonzero(mask)
        src_out.append(sources[si])
        trg_out.append(trg_block[ti])
    return np.concatenate(src_out), np.concatenate(trg_out)
