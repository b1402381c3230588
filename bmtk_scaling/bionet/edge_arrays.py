"""One edge population's edges onto a rank's cells, read from the SONATA file as numpy arrays in bionet's order.

Bionet walks a target's edges through its ``target_to_source`` index; these arrays follow the same order, so
the lean builder (:mod:`bmtk_scaling.bionet.lean_edges`) can continue each cell's random stream exactly as
bionet would. Rows are gathered block by block in file order, which bounds the memory of a large file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd


@dataclass
class AfferentEdges:
    """One edge population's edges onto this rank's cells, in bionet's order (target by target, index order)."""

    name: str
    source_population: str
    target_population: str
    source_ids: np.ndarray
    target_ids: np.ndarray
    type_ids: np.ndarray
    weights: np.ndarray
    delays: np.ndarray
    nsyns: np.ndarray  # 1 for preselected edges, as bionet
    placed: np.ndarray  # bool: bionet draws the locations (``nsyns`` edges); else preselected
    sec_ids: np.ndarray  # afferent_section_id (-1 where placed)
    sec_pos: np.ndarray  # afferent_section_pos (nan where placed)
    python_weight: np.ndarray  # bool: the weight comes from a weight function called per edge
    types: pd.DataFrame  # indexed by edge_type_id: model_template, dynamics_params (file name)
    unsupported: tuple[str, ...] = ()  # what lean instantiation does not handle here (then bionet builds them)

    def cell_blocks(self) -> list[tuple[int, int, int]]:
        """(target node id, begin, end) of each target's consecutive rows."""
        t = self.target_ids
        if t.size == 0:
            return []
        starts = np.flatnonzero(np.r_[True, t[1:] != t[:-1]])
        ends = np.r_[starts[1:], t.size]
        return [(int(t[b]), int(b), int(e)) for b, e in zip(starts, ends, strict=True)]

    def select_targets(self, keep: set[int]) -> AfferentEdges:
        """The edges whose target is in ``keep``, order kept."""
        sel = np.isin(self.target_ids, np.fromiter(keep, dtype=np.int64, count=len(keep)))
        fields = {k: getattr(self, k) for k in ("name", "source_population", "target_population", "types",
                                                "unsupported")}
        arrays = {k: getattr(self, k)[sel] for k in ("source_ids", "target_ids", "type_ids", "weights", "delays",
                                                     "nsyns", "placed", "sec_ids", "sec_pos", "python_weight")}
        return AfferentEdges(**fields, **arrays)


def read_afferent_edges(edges_file: Path, edge_types_file: Path, local_targets: dict[str, np.ndarray],
                        weight_function_is_array=None, only: str | None = None) -> list[AfferentEdges]:
    """Edges of ``edges_file`` whose target is local (``local_targets``: population -> node ids, in the
    order the cells are walked). ``weight_function_is_array(name)`` says whether a weight function
    returns ``syn_weight`` (taken as an array); without it every weight function is called per edge."""
    types = pd.read_csv(edge_types_file, sep=" ").set_index("edge_type_id")
    out = []
    with h5py.File(edges_file, "r") as h5:
        for name, pop in h5["edges"].items():
            if only is not None and name != only:
                continue
            trg_pop = _attr(pop["target_node_id"], "node_population")
            src_pop = _attr(pop["source_node_id"], "node_population")
            if trg_pop not in local_targets:
                continue
            rows = _rows_in_bionet_order(pop, local_targets[trg_pop])
            cols = {c: _gather(pop[c], rows).astype(np.int64) for c in _COLUMNS}
            out.append(_afferent(name, src_pop, trg_pop, pop, types, cols, weight_function_is_array))
    return out


_READ_BLOCK = 4_000_000  # rows per read: bounds the transient memory of scanning a large edge file
_COLUMNS = ("source_node_id", "target_node_id", "edge_type_id", "edge_group_id", "edge_group_index")


def _afferent(name, src_pop, trg_pop, pop, types, cols, weight_function_is_array) -> AfferentEdges:
    type_ids, group_ids, group_index = cols["edge_type_id"], cols["edge_group_id"], cols["edge_group_index"]
    n = type_ids.size
    groups = {gid: pop[str(gid)] for gid in np.unique(group_ids).tolist() if str(gid) in pop}
    placed = np.zeros(n, dtype=bool)
    sec_ids = np.full(n, -1, dtype=np.int64)
    sec_pos = np.full(n, np.nan)
    nsyns = np.ones(n, dtype=np.int64)
    problems = []
    for gid, grp in groups.items():
        sel = group_ids == gid
        sec_col = "sec_id" if "sec_id" in grp else "afferent_section_id" if "afferent_section_id" in grp else None
        if sec_col is not None:  # bionet: preselected, one synapse per edge whatever nsyns says
            sec_ids[sel] = _gather(grp[sec_col], group_index[sel])
            pos_col = "sec_x" if "sec_x" in grp else "afferent_section_pos"
            if pos_col not in grp:
                problems.append("preselected sections without a position")
            else:
                sec_pos[sel] = _gather(grp[pos_col], group_index[sel])
        elif "nsyns" in grp or "nsyns" in types.columns:
            placed[sel] = True
        if "dynamics_params" in grp:
            problems.append("edge-group dynamics parameters")
    nsyns[placed] = _column(pop, types, "nsyns", type_ids, group_ids, group_index, default=1)[placed].astype(np.int64)
    python_weight = np.zeros(n, dtype=bool)
    if "weight_function" in types.columns:
        names = types["weight_function"].reindex(type_ids)
        for fn in pd.unique(names):
            fn_name = None if (fn is None or (isinstance(fn, float) and math.isnan(fn))) else str(fn)
            if weight_function_is_array is None or not weight_function_is_array(fn_name):
                python_weight |= (names == fn).to_numpy() if fn_name is not None else names.isna().to_numpy()
    weights = _column(pop, types, "syn_weight", type_ids, group_ids, group_index, default=np.nan)
    delays = _column(pop, types, "delay", type_ids, group_ids, group_index)
    sub = types.loc[[t for t in np.unique(type_ids) if t in types.index]]
    if "is_gap_junction" in sub.columns and sub["is_gap_junction"].fillna(False).astype(bool).any():
        problems.append("gap junctions")
    return AfferentEdges(name, src_pop, trg_pop, cols["source_node_id"], cols["target_node_id"], type_ids, weights,
                         delays, nsyns, placed, sec_ids, sec_pos, python_weight, types, tuple(sorted(set(problems))))


def _concat_ranges(begins: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``concatenate([arange(b, e) for b, e in zip(begins, ends)])`` without the Python loop."""
    begins, ends = begins.astype(np.int64), ends.astype(np.int64)
    lens = np.maximum(ends - begins, 0)
    total = int(lens.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    offsets = np.repeat(np.cumsum(lens) - lens, lens)
    return np.arange(total, dtype=np.int64) - offsets + np.repeat(begins, lens)


def _rows_in_bionet_order(pop, local_ids: np.ndarray) -> np.ndarray:
    """Edge rows onto ``local_ids``, target by target, each target's rows as bionet's ``get_target`` yields them."""
    index = next((pop[g]["target_to_source"] for g in ("indices", "indicies")
                  if g in pop and "target_to_source" in pop[g]), None)
    if index is None:  # bionet itself needs this index; without it, file order per target
        targets = _gather(pop["target_node_id"], np.arange(pop["target_node_id"].shape[0])).astype(np.int64)
        order = {int(t): i for i, t in enumerate(local_ids.tolist())}
        keep = np.flatnonzero(np.isin(targets, local_ids))
        rank = np.array([order[int(t)] for t in targets[keep]], dtype=np.int64)
        return keep[np.argsort(rank, kind="stable")]
    node_to_range = index["node_id_to_range"][()].astype(np.int64)
    range_to_edge = index["range_to_edge_id"][()].astype(np.int64)
    ids = local_ids[local_ids < node_to_range.shape[0]]
    ranges = _concat_ranges(node_to_range[ids, 0], node_to_range[ids, 1])
    return _concat_ranges(range_to_edge[ranges, 0], range_to_edge[ranges, 1])


def _gather(ds, rows: np.ndarray) -> np.ndarray:
    """``ds[rows]`` for any row order, read block by block in file order (bounded memory)."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return np.empty(0, dtype=ds.dtype)
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    out = np.empty(rows.size, dtype=ds.dtype)
    first, last = int(sorted_rows[0]), int(sorted_rows[-1]) + 1
    for start in range(first, last, _READ_BLOCK):
        stop = min(start + _READ_BLOCK, last)
        a, b = np.searchsorted(sorted_rows, [start, stop])
        if a == b:
            continue
        out[order[a:b]] = ds[start:stop][sorted_rows[a:b] - start]
    return out


def _attr(ds, key: str) -> str:
    value = ds.attrs[key]
    return value.decode() if isinstance(value, bytes) else str(value)


def _column(pop, types: pd.DataFrame, name: str, type_ids, group_ids, group_index, default=None) -> np.ndarray:
    """Per-edge value: the edge group's column where it has one, else the edge type's value (bionet's lookup)."""
    values = np.full(type_ids.size, np.nan)
    if name in types.columns:
        values = types[name].reindex(type_ids).to_numpy(dtype=float)
    for gid in np.unique(group_ids):
        grp = pop.get(str(gid))
        if grp is not None and name in grp:
            sel = group_ids == gid
            values[sel] = _gather(grp[name], group_index[sel])
    if np.isnan(values).any() and not (default is not None and np.isnan(default)):
        if default is None:
            raise ValueError(f"edges without a {name!r} (neither in the edge group nor in the edge types)")
        values[np.isnan(values)] = default
    return values
