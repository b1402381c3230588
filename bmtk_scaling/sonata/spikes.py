"""SONATA spike files: read as a table, and mended so that libsonata's ``SpikeReader`` reads bmtk's.

bmtk 1.2 writes the ``sorting`` attribute as a string; the specification and libsonata want an HDF5
enum (none / by_id / by_time), and libsonata wants ``units`` on ``timestamps``.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd


def read_spikes(path: Path) -> pd.DataFrame:
    """All spikes of a SONATA spike file as (population, node_id, timestamp), sorted by time then id."""
    frames = []
    with h5py.File(path, "r") as h5:
        for pop, grp in h5.get("spikes", {}).items():
            frames.append(pd.DataFrame({
                "population": pop,
                "node_id": grp["node_ids"][()].astype(np.int64),
                "timestamp": grp["timestamps"][()].astype(np.float64),
            }))
    if not frames:
        return pd.DataFrame({"population": [], "node_id": np.array([], np.int64), "timestamp": []})
    df = pd.concat(frames, ignore_index=True)
    return df.sort_values(["timestamp", "node_id"], kind="stable").reset_index(drop=True)


_SORTING = {"none": 0, "by_id": 1, "by_time": 2}


def fix_spike_file(spikes_file: Path) -> None:
    """Rewrite each population's ``sorting`` attribute as the specification's HDF5 enum; ensure units."""
    enum = h5py.enum_dtype(_SORTING, basetype="u1")
    with h5py.File(spikes_file, "r+") as h5:
        for grp in h5.get("spikes", {}).values():
            raw = grp.attrs.get("sorting", "none")
            value = raw.decode() if isinstance(raw, bytes) else raw
            if isinstance(value, str):
                grp.attrs.create("sorting", _SORTING.get(value, 0), dtype=enum)
            if "timestamps" in grp and "units" not in grp["timestamps"].attrs:
                grp["timestamps"].attrs["units"] = "ms"
