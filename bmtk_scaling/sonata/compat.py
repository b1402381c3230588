"""Make bmtk-written SONATA files readable by other SONATA tools, without breaking bmtk.

Defects of bmtk 1.2's network writer, mended right after it saves (spike files: :mod:`spikes`):

- Edge indices are named ``node_id_to_range``; the SONATA specification and libsonata use
  ``node_id_to_ranges``. We add the spec's name as an HDF5 hard link to the same data, so both
  readers find what they expect at no storage cost.
- String node attributes (our ``role``) are written at the file root instead of inside the node
  group, where neither bmtk nor libsonata looks. We move them into the group as UTF-8 strings.
- ``node_type_id`` is written as uint64 and ``edge_type_id`` as uint32; the specification's types
  are signed (int64 and int32 here), and bluepysnap's ``validate-circuit`` flags the others. We
  rewrite both in the signed type (bmtk reads either).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from bmtk_scaling.errors import BmtkScalingError

_INDEX_GROUPS = ("indices/source_to_target", "indices/target_to_source")
_TYPE_IDS = {"nodes": ("node_type_id", np.int64), "edges": ("edge_type_id", np.int32)}


def add_spec_index_names(edges_file: Path) -> int:
    """Link ``node_id_to_ranges`` beside every ``node_id_to_range`` in ``edges_file``; return links made."""
    made = 0
    with h5py.File(edges_file, "r+") as h5:
        for pop in h5.get("edges", {}).values():
            for grp_name in _INDEX_GROUPS:
                grp = pop.get(grp_name)
                if grp is None or "node_id_to_range" not in grp or "node_id_to_ranges" in grp:
                    continue
                grp["node_id_to_ranges"] = grp["node_id_to_range"]
                made += 1
    return made


def move_root_string_attributes(nodes_file: Path) -> list[str]:
    """Move datasets bmtk left at the root of a one-population, one-group nodes file into that group."""
    moved = []
    with h5py.File(nodes_file, "r+") as h5:
        stray = [name for name, obj in h5.items() if isinstance(obj, h5py.Dataset)]
        if not stray:
            return moved
        pops = list(h5["nodes"].values())
        groups = [g for g in pops[0].values() if isinstance(g, h5py.Group)] if len(pops) == 1 else []
        if len(groups) != 1:
            raise BmtkScalingError(f"{nodes_file}: cannot tell which node group {stray} belong to")
        group = groups[0]
        n = pops[0]["node_id"].shape[0]
        for name in stray:
            values = h5[name][()]
            if values.shape != (n,):
                raise BmtkScalingError(f"{nodes_file}: root dataset {name!r} has {values.shape} values for {n} nodes")
            text = [v.decode() if isinstance(v, bytes) else str(v) for v in values]
            group.create_dataset(name, data=text, dtype=h5py.string_dtype("utf-8"))
            del h5[name]
            moved.append(name)
    return moved


def sign_type_ids(path: Path) -> list[str]:
    """Rewrite a nodes or edges file's ``node_type_id`` / ``edge_type_id`` in the specification's signed type.

    Returns the datasets rewritten (none when they are signed already). Values that do not fit the
    signed type are a BmtkScalingError, and the file is left as it was.
    """
    done = []
    with h5py.File(path, "r+") as h5:
        for kind, (name, dtype) in _TYPE_IDS.items():
            for pop_name, pop in h5.get(kind, {}).items():
                old = pop.get(name)
                if not isinstance(old, h5py.Dataset) or np.issubdtype(old.dtype, np.signedinteger):
                    continue
                values = old[()]
                if values.size and values.max() > np.iinfo(dtype).max:
                    raise BmtkScalingError(f"{path}: {kind}/{pop_name}/{name} holds {values.max()}, more than "
                                           f"{np.dtype(dtype).name} can: renumber the {name.replace('_id', '')}s")
                attrs, chunks, compression = dict(old.attrs), old.chunks, old.compression
                del pop[name]
                new = pop.create_dataset(name, data=values.astype(dtype), chunks=chunks, compression=compression)
                new.attrs.update(attrs)
                done.append(f"{kind}/{pop_name}/{name}")
    return done


def check_with_libsonata(nodes_files: list[Path], edges_files: list[Path]) -> dict[str, int]:
    """Open every population with libsonata and read its index; return population sizes.

    Raises whatever libsonata raises, so a file other SONATA tools cannot read fails loudly here.
    """
    import libsonata

    sizes: dict[str, int] = {}
    for path in nodes_files:
        storage = libsonata.NodeStorage(str(path))
        for name in storage.population_names:
            pop = storage.open_population(name)
            pop.get_attribute(sorted(pop.attribute_names)[0], libsonata.Selection([0])) if pop.size else None
            sizes[name] = pop.size
    for path in edges_files:
        storage = libsonata.EdgeStorage(str(path))
        for name in storage.population_names:
            pop = storage.open_population(name)
            if pop.size:
                pop.afferent_edges([0])
                pop.efferent_edges([0])
            sizes[name] = pop.size
    return sizes
