"""Write a NEW simulation config that names a partition map; the original is never edited.

The map goes into the plugin's implementation-specific section (SONATA allows such sections;
libsonata ignores it and still parses the config):

    "bmtk_scaling": {"partition": "$BASE_DIR/partitions/metis_2.h5"}

as a ``$BASE_DIR/...`` path when the map lives under the config's ``$BASE_DIR`` (so the network
folder can be moved as a whole), else as an absolute path. The new config sits beside the old one,
because its relative paths (``$BASE_DIR`` is ``"."``) mean that folder.
"""

from __future__ import annotations

import copy
from pathlib import Path

from bmtk_scaling.atomic import write_json
from bmtk_scaling.config.settings import SECTION, read_settings
from bmtk_scaling.partition.map_file import load_checked_map
from bmtk_scaling.sonata.configs import LoadedConfig, load_config, network_files
from bmtk_scaling.sonata.graph import read_nodes


def partition_reference(map_path: str | Path, config: LoadedConfig) -> str:
    """How ``config`` should name ``map_path``: ``$BASE_DIR/<relative>`` under its base folder, else absolute."""
    map_path = Path(map_path).absolute().resolve()
    base = Path(config.variables["BASE_DIR"]).resolve()
    try:
        return "$BASE_DIR/" + map_path.relative_to(base).as_posix()
    except ValueError:
        return str(map_path)


def config_out_path(config: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Where a new config derived from simulation config ``config`` goes; ValueError if it cannot go there.

    A bare file name is placed beside ``config``; any other path must also be in ``config``'s folder.
    """
    loaded = load_config(config)
    if not loaded.is_simulation:
        raise ValueError(f"{loaded.path} is a circuit config; a partition goes into a simulation config "
                         "(one with 'run' and 'network')")
    out = Path(out).expanduser()
    out = (loaded.path.parent / out) if out.parent == Path(".") and not out.is_absolute() else out.absolute()
    if out.resolve() == loaded.path.resolve():
        raise ValueError(f"the new config would replace {loaded.path} itself; choose another --config-out "
                         "(the original config is never edited)")
    if out.parent.resolve() != loaded.path.parent.resolve():
        raise ValueError(f"write the new config beside {loaded.path.name} (in {loaded.path.parent}): its relative "
                         f"paths refer to that folder; got {out}")
    if out.exists() and not overwrite:
        raise ValueError(f"{out} exists: choose another --config-out, or pass --overwrite to replace it")
    return out


def write_config_with_partition(config: str | Path, map_path: str | Path, out: str | Path,
                                overwrite: bool = False) -> Path:
    """Copy simulation config ``config`` to ``out`` with ``bmtk_scaling.partition.strategies`` = ``map_path``.

    ``out`` given as a bare file name is placed beside ``config``. The map is checked against the
    config's network (fingerprint, nodes) first, so a config is never written for the wrong network.
    """
    out = config_out_path(config, out, overwrite)
    loaded = load_config(config)
    files = network_files(loaded.path)
    load_checked_map(map_path, files, read_nodes(files), n_ranks=None)
    data = copy.deepcopy(loaded.data)
    section = data.get(SECTION) or {}
    if not isinstance(section, dict):
        raise ValueError(f"the {SECTION!r} section of {loaded.path} must be an object")
    data[SECTION] = {**section, "partition": partition_reference(map_path, loaded)}
    read_settings(data)  # the plugin must accept what it writes
    return write_json(out, data)
