"""A content fingerprint of a network's files, so a partition map is never applied to another network.

Each node/edge HDF5 file is hashed by its datasets (name, shape and values in a canonical dtype,
in name order), not by its bytes: re-saving with another HDF5 layout or compression keeps the
fingerprint, while any change of an id, attribute, synapse count, delay or weight changes it.
``indices/`` groups are skipped (they are derived from the edge lists, and bmtk-written files carry
them twice). The types CSVs are hashed as text. sha256 of a 9 M-edge network takes about a second.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np

from bmtk_scaling.errors import BmtkScalingError
from bmtk_scaling.sonata.configs import NetworkFiles

_CHUNK = 1 << 24  # elements per read: bounds memory for very large datasets


def network_fingerprint(files: NetworkFiles) -> dict[str, str]:
    """``{"sha256": digest of everything, "<file name>": digest of that file, ...}``.

    Files are named by their base names, so the fingerprint does not change when the network folder
    moves, and bmtk's resolved paths at run time give the same result as the config's at map time.
    """
    per_file: dict[str, str] = {}

    def add(path: Path, digest: str) -> None:
        name, k = Path(path).name, 1
        while name in per_file or name == "sha256":
            k += 1
            name = f"{Path(path).name}#{k}"
        per_file[name] = digest

    for nf in files.nodes:
        add(nf.nodes_file, hash_hdf5(nf.nodes_file))
        add(nf.node_types_file, hash_text(nf.node_types_file))
    for ef in files.edges:
        add(ef.edges_file, hash_hdf5(ef.edges_file))
        add(ef.edge_types_file, hash_text(ef.edge_types_file))
    total = hashlib.sha256()
    for name in sorted(per_file):
        total.update(f"{name}\0{per_file[name]}\n".encode())
    return {"sha256": total.hexdigest(), **per_file}


def hash_hdf5(path: Path) -> str:
    h = hashlib.sha256()
    with h5py.File(path, "r") as h5:
        names: list[str] = []
        h5.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        for name in sorted(names):
            if "indices" in name.split("/"):
                continue
            ds = h5[name]
            h.update(f"{name}\0{ds.shape}\0".encode())
            if h5py.check_string_dtype(ds.dtype) or ds.dtype.kind in "OSU":
                for value in np.asarray(ds.asstr()[()] if h5py.check_string_dtype(ds.dtype) else ds[()]).ravel():
                    h.update(str(value).encode() + b"\0")
                continue
            canon = _canonical(ds.dtype)
            flat_len = int(np.prod(ds.shape)) if ds.shape else 1
            if ds.ndim <= 1 and flat_len > _CHUNK:
                for start in range(0, flat_len, _CHUNK):
                    h.update(np.ascontiguousarray(ds[start:start + _CHUNK], dtype=canon).tobytes())
            else:
                h.update(np.ascontiguousarray(ds[()], dtype=canon).tobytes())
    return h.hexdigest()


def hash_text(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes().replace(b"\r\n", b"\n")).hexdigest()


def _canonical(dtype: np.dtype) -> str:
    if dtype.kind in "iu":
        return "<i8"
    if dtype.kind == "f":
        return "<f8"
    if dtype.kind == "b":
        return "|u1"
    raise BmtkScalingError(f"cannot fingerprint HDF5 datasets of type {dtype}")

