"""Checks of a network's files that bionet would otherwise fail on late, or not at all.

Read block by block (bounded memory on edge files of tens of millions of rows): every file opens
(a truncated or foreign HDF5 file becomes one line naming it), every edge's source and target node
id is a node of its population (bionet silently connects past the end), delays and weights are
finite, and the smallest delay is known for the run checks (a delay below dt fails under MPI only).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from bmtk_scaling.errors import BmtkScalingError
from bmtk_scaling.sonata.configs import NetworkFiles

_BLOCK = 4_000_000


@contextlib.contextmanager
def open_hdf5(path: Path, what: str) -> Iterator[h5py.File]:
    """``h5py.File(path, "r")`` whose failure to open is a BmtkScalingError naming the file and its role."""
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        reason = str(err).split("(")[0].strip() or "not an HDF5 file"
        raise BmtkScalingError(f"cannot read the {what} {path}: {reason} (truncated, still being written, or "
                               "not HDF5?): rebuild or restore it") from None
    with h5:
        yield h5


@dataclass(frozen=True)
class NetworkSummary:
    populations: dict[str, int]  # node population -> node count
    edges: int
    min_delay: float | None  # ms, over every edge; None without edges


def check_network(files: NetworkFiles) -> NetworkSummary:
    """Open every file of the network and check its edges; BmtkScalingError naming the first problem."""
    ids: dict[str, np.ndarray] = {}
    for nf in files.nodes:
        node_types = _read_csv(nf.node_types_file, "node types file", key="node_type_id")
        with open_hdf5(nf.nodes_file, "nodes file") as h5:
            for name, pop in h5.get("nodes", {}).items():
                where = f"node population {name!r} in {nf.nodes_file}"
                try:
                    n = pop["node_type_id"].shape[0]
                    for dataset in ("node_id", "node_type_id"):
                        if dataset in pop and pop[dataset].dtype.kind not in "iu":
                            raise BmtkScalingError(f"{where}: {dataset} is stored as {pop[dataset].dtype} numbers; "
                                                   "SONATA (and bionet) need integers: rebuild the nodes file with "
                                                   "integer ids")
                    ids[name] = pop["node_id"][()].astype(np.int64) if "node_id" in pop else np.arange(n)
                    missing = np.setdiff1d(np.unique(pop["node_type_id"][()]), node_types["node_type_id"].to_numpy())
                except (KeyError, OSError) as err:
                    raise BmtkScalingError(f"{where} is incomplete ({err}): rebuild the network") from None
                if missing.size:
                    raise BmtkScalingError(f"{where}: node_type_id {', '.join(map(str, missing[:5].tolist()))} is "
                                           f"not in the node types file {nf.node_types_file}: add the type(s) there, "
                                           "or rebuild the network")
    if not ids:
        raise BmtkScalingError("the network's node files hold no node population")
    if not any(v.size for v in ids.values()):
        raise BmtkScalingError(f"the network's node populations {sorted(ids)} hold 0 nodes: there is nothing to "
                               "simulate or place; rebuild the network")
    n_edges, min_delay = 0, math.inf
    for ef in files.edges:
        types = _read_csv(ef.edge_types_file, "edge types file", key="edge_type_id")
        with open_hdf5(ef.edges_file, "edges file") as h5:
            for name, pop in h5.get("edges", {}).items():
                where = f"edge population {name!r} in {ef.edges_file}"
                try:
                    for dataset in ("source_node_id", "target_node_id"):
                        _check_ids(pop, dataset, ids, where)
                    type_ids = np.unique(pop["edge_type_id"][()])
                    n_edges += int(pop["edge_type_id"].shape[0])
                    delay = _column_min(pop, types, type_ids, "delay", where)
                    _column_min(pop, types, type_ids, "syn_weight", where, finite_only=True)
                except (KeyError, OSError) as err:
                    raise BmtkScalingError(f"{where} is incomplete or unreadable ({err}): rebuild the "
                                           "network") from None
                if delay is not None:
                    min_delay = min(min_delay, delay)
    return NetworkSummary(populations={k: int(v.size) for k, v in ids.items()}, edges=n_edges,
                          min_delay=None if math.isinf(min_delay) else float(min_delay))


def _read_csv(path: Path, what: str, key: str | None = None) -> pd.DataFrame:
    """A SONATA types file (space-separated); one with commas or tabs, or without its ``key`` column, is refused."""
    try:
        table = pd.read_csv(path, sep=" ", na_values=["NONE", "NULL", ""], keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise BmtkScalingError(f"cannot read the {what} {path}: {err}") from None
    if key is not None and key not in table.columns:
        header = Path(path).read_text(errors="replace").splitlines()[:1]
        used = [n for s, n in ((",", "commas"), ("\t", "tabs")) if header and s in header[0]]
        if used:
            raise BmtkScalingError(f"the {what} {path} separates its columns with {used[0]}; SONATA types files "
                                   f"(and bmtk) need single spaces: rewrite it space-separated")
        raise BmtkScalingError(f"the {what} {path} has no {key} column (its columns: {list(table.columns)[:8]}): "
                               "fix its header")
    return table


def _check_ids(pop: h5py.Group, dataset: str, ids: dict[str, np.ndarray], where: str) -> None:
    ds = pop[dataset]
    name = ds.attrs.get("node_population")
    name = name.decode() if isinstance(name, bytes) else name
    if name not in ids:
        raise BmtkScalingError(f"{where}: {dataset} refers to node population {name!r}, which the circuit does not "
                               f"name (it names {sorted(ids)})")
    known = ids[name]
    contiguous = known.size == 0 or (known[0] == 0 and np.array_equal(known, np.arange(known.size)))
    for start in range(0, ds.shape[0], _BLOCK):
        block = ds[start:start + _BLOCK].astype(np.int64)
        bad = (block < 0) | (block >= known.size) if contiguous else ~np.isin(block, known)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise BmtkScalingError(f"{where}: edge {start + first} has {dataset} {int(block[first])}, but population "
                                   f"{name!r} has {known.size} nodes (ids {int(known.min(initial=0))}.."
                                   f"{int(known.max(initial=-1))}); {int(bad.sum())} edges in this block point "
                                   "outside it: rebuild the edges")


def _column_min(pop: h5py.Group, types: pd.DataFrame, type_ids: np.ndarray, column: str, where: str,
                finite_only: bool = False) -> float | None:
    """Smallest value of an edge column (group datasets and the types CSV); every value must be finite."""
    lowest, seen = math.inf, 0

    def take(values: np.ndarray) -> None:
        nonlocal lowest, seen
        if not np.isfinite(values).all():
            raise BmtkScalingError(f"{where}: {int((~np.isfinite(values)).sum())} {column} values are NaN or "
                                   "infinite: fix the network's parameters and rebuild it")
        if values.size:
            lowest, seen = min(lowest, float(values.min())), seen + values.size

    if column in types.columns and "edge_type_id" in types.columns:
        used = types[types["edge_type_id"].isin(type_ids)][column].dropna()
        take(pd.to_numeric(used, errors="coerce").to_numpy(dtype=float))
    for key, grp in pop.items():
        if isinstance(grp, h5py.Group) and key.isdigit() and isinstance(grp.get(column), h5py.Dataset):
            ds = grp[column]
            for start in range(0, ds.shape[0], _BLOCK):
                take(ds[start:start + _BLOCK].astype(float))
    return None if finite_only or not seen else lowest
