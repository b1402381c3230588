"""New simulation configs derived from a user's: engine, partition and synapse switches; never edited in place.

The result stays a valid SONATA simulation config: SONATA's own ``target_simulator`` selects the
engine, our options live in the ``bmtk_scaling`` section (:mod:`bmtk_scaling.config.settings`), and
libsonata still parses it (checked before anything is written). A derived config may be written to
another folder than the original: ``$BASE_DIR`` is rebased so it still names the network.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bmtk_scaling.atomic import write_text_atomic
from bmtk_scaling.config.settings import (
    NESTED_FIELDS,
    SECTION,
    SETTING_NAMES,
    Engine,
    Settings,
    options,
    read_settings,
    settings_to_config,
    validate_settings,
)
from bmtk_scaling.errors import ConfigError
from bmtk_scaling.sonata.configs import LoadedConfig, input_paths, is_path_key, load_config, network_files
from bmtk_scaling.sonata.graph import read_nodes


def derive_config(config: Mapping[str, Any], *, output_dir: str | None = None, **changes: Any) -> dict[str, Any]:
    """A copy of ``config`` (a simulation config's JSON) with the given settings changed.

    ``changes`` are settings by name (see :func:`bmtk_scaling.config.settings.options`); None leaves a
    setting as it is. ``output_dir`` sets ``output.output_dir`` (through ``$OUTPUT_DIR``). The result
    is validated as a whole: a bad value or combination raises ConfigError before anything is written.
    """
    unknown = sorted(set(changes) - set(SETTING_NAMES))
    if unknown:
        raise ConfigError(f"unknown setting(s) {unknown}; known: {', '.join(SETTING_NAMES)}")
    current = read_settings(config)
    data = current.model_dump()
    nested = {section: dict(data.pop(section)) for section in NESTED_FIELDS}
    for name, value in changes.items():
        if value is None:
            continue
        if name == "engine":
            value = Engine.parse(value)
        section = next((s for s, fields in NESTED_FIELDS.items() if name in fields), None)
        if section is not None:
            nested[section][name] = value
        else:
            data[name] = value
    return with_settings(config, validate_settings({**data, **nested}), output_dir=output_dir)


def with_settings(config: Mapping[str, Any], settings: Settings, output_dir: str | None = None) -> dict[str, Any]:
    """A copy of ``config`` whose engine and ``bmtk_scaling`` section are exactly ``settings``."""
    new = settings_to_config(copy.deepcopy(dict(config)), settings)
    if output_dir is not None:
        new.setdefault("manifest", {})["$OUTPUT_DIR"] = output_dir
        new.setdefault("output", {})["output_dir"] = "$OUTPUT_DIR"
    return new


derive_config.__signature__ = inspect.Signature(  # every setting by name, for help() and inspect
    [inspect.Parameter("config", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="Mapping[str, Any]"),
     inspect.Parameter("output_dir", inspect.Parameter.KEYWORD_ONLY, default=None, annotation="str | None")]
    + [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                         annotation=f"{o.kind.__name__} | None") for o in options()],
    return_annotation="dict[str, Any]")
derive_config.__doc__ += "\n    Settings:\n\n" + "".join(f"    - ``{o.name}``: {o.doc}\n" for o in options())


_CONFIGDIR = re.compile(r"\$\{configdir\}|\$configdir(?![A-Za-z0-9_])")


def rebase_manifest(config: dict[str, Any], source_dir: Path, dest_dir: Path) -> dict[str, Any]:
    """``config`` as it must read when written to ``dest_dir`` instead of ``source_dir``: same files named.

    Relative manifest values (``$BASE_DIR``: ".", custom variables) and bare relative paths under path
    keys (``network``, ``*_file``, ``*_dir``; the output files stay relative to ``output_dir``) are
    rewritten relative to the new folder; variables built on other variables follow by themselves.
    """
    source_dir, dest_dir = Path(source_dir).resolve(), Path(dest_dir).resolve()
    if source_dir == dest_dir:
        return config

    here = os.path.relpath(source_dir, dest_dir)

    def moved(value: str) -> str:
        if "$" in value:  # bmtk's ${configdir} is the folder of the config that says it: keep naming the old one
            return _CONFIGDIR.sub(lambda _: here, value)
        if Path(value).is_absolute() or not value:
            return value
        return os.path.relpath(source_dir / value, dest_dir)

    def walk(node: Any, key: object = None, section: object = None) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, k, section if section is not None else k) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, key, section) for v in node]
        if isinstance(node, str) and is_path_key(key) and (section != "output" or key == "output_dir"):
            return moved(node)
        if isinstance(node, str) and "$" in node:
            return moved(node)
        return node

    new = walk(copy.deepcopy(config))
    manifest = new.get("manifest")
    if isinstance(manifest, dict):
        new["manifest"] = {k: moved(v) if isinstance(v, str) else v for k, v in manifest.items()}
    elif "manifest" not in new:  # SONATA's default $BASE_DIR is the config's folder: keep naming the old one
        new["manifest"] = {"$BASE_DIR": moved(".")}
    return new


def write_config(config: dict[str, Any], source: Path, out: Path, overwrite: bool = False,
                 output_dir: str | None = None) -> Path:
    """Write a config derived from ``source`` to ``out`` (atomically), after checking it.

    Its paths are rewritten to name the same files from ``out``'s folder (:func:`rebase_manifest`);
    ``output_dir``, if given, is the new config's output folder, relative to ``out``'s folder.

    Refused: writing over ``source`` itself, an existing ``out`` without ``overwrite``, settings the
    plugin would reject at run time, and a config libsonata cannot parse (unless the source already
    could not be parsed, e.g. because of bmtk-only input modules: then it is passed through as is).
    """
    out = Path(out).expanduser().absolute()
    source = Path(source).absolute()
    if out.resolve() == source.resolve():
        raise ConfigError(f"{out} is the input config: a new config is written beside it, choose another name")
    if out.is_dir():
        raise ConfigError(f"{out} is a folder: name the new config file, e.g. {out / 'simulation_config.json'}")
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} exists: choose another name, or pass --overwrite (overwrite=True)")
    refuse_input_target(load_config(source), out, "the new config")
    read_settings(config, where=str(out))
    data = rebase_manifest(config, source.parent, out.parent)
    if output_dir is not None:
        data = with_settings(data, read_settings(data), output_dir=output_dir)
    text = json.dumps(data, indent=2) + "\n"
    problem = _libsonata_problem(text, out.parent)
    if problem and not _libsonata_problem(source.read_text(), source.parent):
        raise ConfigError(f"the new config would not be valid SONATA (libsonata: {problem})")
    write_text_atomic(out, text)
    return out


def refuse_input_target(sim: LoadedConfig, out: Path, what: str) -> None:
    """ConfigError when ``out`` is, or lies inside, an input of ``sim`` (its configs, network files, components)."""
    out = Path(out).absolute()
    files, folders = input_paths(sim)
    for path in files:
        if Path(path).absolute() == out:
            raise ConfigError(f"{what} {out} would replace {path.name}, an input of {sim.path.name}: choose another "
                              "path (inputs are never replaced, with or without --overwrite)")
    for folder in folders:
        if Path(folder).absolute() == out or Path(folder).absolute() in out.parents:
            raise ConfigError(f"{what} {out} lies inside the input folder {folder}: choose another path")


def partition_reference(map_path: str | Path, config: LoadedConfig) -> str:
    """How ``config`` should name ``map_path``: ``$BASE_DIR/<relative>`` under its base folder, else absolute."""
    map_path = Path(map_path).absolute().resolve()
    base = Path(config.variables["BASE_DIR"]).resolve()
    try:
        return "$BASE_DIR/" + map_path.relative_to(base).as_posix()
    except ValueError:
        return str(map_path)


def config_out_path(config: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Where a new config derived from simulation config ``config`` goes; ConfigError if it cannot go there.

    A bare file name is placed beside ``config``; any other path must also be in ``config``'s folder.
    """
    loaded = load_config(config)
    if not loaded.is_simulation:
        raise ConfigError(f"{loaded.path} is a circuit config; a partition goes into a simulation config "
                          "(one with 'run' and 'network')")
    out = Path(out).expanduser()
    out = (loaded.path.parent / out) if out.parent == Path(".") and not out.is_absolute() else out.absolute()
    if out.resolve() == loaded.path.resolve():
        raise ConfigError(f"the new config would replace {loaded.path} itself; choose another --config-out "
                          "(the original config is never edited)")
    if out.parent.resolve() != loaded.path.parent.resolve():
        raise ConfigError(f"write the new config beside {loaded.path.name} (in {loaded.path.parent}): its relative "
                          f"paths refer to that folder; got {out}")
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} exists: choose another --config-out, or pass --overwrite to replace it")
    return out


def checked_partition_reference(config: str | Path, map_path: str | Path) -> str:
    """The reference to ``map_path`` for ``config``'s section, after checking the map against its network."""
    from bmtk_scaling.partition.map_file import load_checked_map

    loaded = load_config(config)
    files = network_files(loaded.path)
    load_checked_map(map_path, files, read_nodes(files), n_ranks=None)
    return partition_reference(map_path, loaded)


def write_config_with_partition(config: str | Path, map_path: str | Path, out: str | Path,
                                overwrite: bool = False) -> Path:
    """Copy simulation config ``config`` to ``out`` with ``bmtk_scaling.partition`` = ``map_path``.

    ``out`` given as a bare file name is placed beside ``config``. The map is checked against the
    config's network (fingerprint, nodes) first, so a config is never written for the wrong network.
    """
    out = config_out_path(config, out, overwrite)
    reference = checked_partition_reference(config, map_path)
    loaded = load_config(config)
    return write_config(derive_config(loaded.data, partition=reference), loaded.path, out, overwrite=overwrite)


def _libsonata_problem(text: str, base: Path) -> str | None:
    """libsonata's objection to a simulation config, or None if it parses."""
    import libsonata

    try:
        libsonata.SimulationConfig(text, str(Path(base).resolve()))
    except (libsonata.SonataError, RuntimeError) as err:
        return str(err)
    return None


__all__ = ["SECTION", "checked_partition_reference", "config_out_path", "derive_config", "partition_reference",
           "rebase_manifest", "with_settings", "write_config", "write_config_with_partition"]
