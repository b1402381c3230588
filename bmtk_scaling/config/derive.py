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

from bmtk_scaling.atomic import claim, write_file
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
from bmtk_scaling.sonata.configs import (
    LoadedConfig,
    is_path_key,
    load_config,
    network_files,
    protected_inputs,
)
from bmtk_scaling.sonata.configs import loaded as as_loaded
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


CONFIG_KIND = "simulation config"


def is_derived_config(path: Path) -> bool:
    """Whether ``path`` is a simulation config this tool wrote (one with a ``bmtk_scaling`` section)."""
    data = json.loads(Path(path).read_text())
    return isinstance(data, dict) and isinstance(data.get(SECTION), dict) and ("run" in data or "network" in data)


def claim_config_out(source: LoadedConfig, out: Path, overwrite: bool, option: str) -> Path:
    """The gate for a new config derived from ``source``: never ``source`` or another input, never a file
    that is not a config this tool wrote (even with ``overwrite``), never a folder."""
    out = Path(out).expanduser().absolute()
    if out.is_dir() and not out.is_symlink():
        raise ConfigError(f"{option} {out} is a folder, not a file: name the new config file, e.g. "
                          f"{out / 'simulation_config.json'}")
    if os.path.realpath(out) == os.path.realpath(source.path):
        raise ConfigError(f"{option} {out} is the input config: a new config is written beside it, choose another "
                          "name (the original config is never edited)")
    return claim(out, CONFIG_KIND, folder=False, overwrite=overwrite, option=option,
                 protected=protected_inputs(source), recognise=is_derived_config)


def write_config(config: dict[str, Any], source: Path | LoadedConfig, out: Path, overwrite: bool = False,
                 output_dir: str | None = None, option: str = "--out") -> Path:
    """Write a config derived from ``source`` to ``out`` (atomically, through the gate), after checking it.

    Its paths are rewritten to name the same files from ``out``'s folder (:func:`rebase_manifest`);
    ``output_dir``, if given, is the new config's output folder, relative to ``out``'s folder.

    Refused: writing over ``source`` or any other input, an existing ``out`` without ``overwrite`` (and
    with it, anything but a config this tool wrote), settings the plugin would reject at run time,
    and a config libsonata cannot parse (unless the source already could not be parsed, e.g. because
    of bmtk-only input modules: then it is passed through as is).
    """
    loaded = as_loaded(source)  # a LoadedConfig is taken as read
    target = claim_config_out(loaded, out, overwrite, option)
    out = Path(out).expanduser().absolute()
    read_settings(config, where=str(out))
    data = rebase_manifest(config, loaded.path.parent, out.parent)
    if output_dir is not None:
        data = with_settings(data, read_settings(data), output_dir=output_dir)
    text = json.dumps(data, indent=2) + "\n"
    problem = _libsonata_problem(text, out.parent)
    if problem and not _libsonata_problem(loaded.path.read_text(), loaded.path.parent):
        raise ConfigError(f"the new config would not be valid SONATA (libsonata: {problem})")
    write_file(target, text, CONFIG_KIND, overwrite=overwrite, option=option, protected=protected_inputs(loaded),
               recognise=is_derived_config)
    return out


def refuse_input_target(sim: LoadedConfig, out: Path, what: str) -> None:
    """Refused when ``out`` is, holds, or lies inside an input of ``sim`` (its configs, network, components)."""
    protected_inputs(sim).check(Path(os.path.realpath(Path(out).absolute())), what, folder=False)


def partition_reference(map_path: str | Path, config: LoadedConfig) -> str:
    """How ``config`` should name ``map_path``: ``$BASE_DIR/<relative>`` under its base folder, else absolute."""
    map_path = Path(map_path).absolute().resolve()
    base = Path(config.variables["BASE_DIR"]).resolve()
    try:
        return "$BASE_DIR/" + map_path.relative_to(base).as_posix()
    except ValueError:
        return str(map_path)


def config_out_path(config: str | Path, out: str | Path, overwrite: bool = False,
                    option: str = "--config-out") -> Path:
    """Where a new config derived from simulation config ``config`` goes, after the gate; ConfigError if it cannot.

    A bare file name is placed beside ``config``; any other path must also be in ``config``'s folder.
    """
    loaded = load_config(config)
    if not loaded.is_simulation:
        raise ConfigError(f"{loaded.path} is a circuit config; a partition goes into a simulation config "
                          "(one with 'run' and 'network')")
    out = Path(out).expanduser()
    out = (loaded.path.parent / out) if out.parent == Path(".") and not out.is_absolute() else out.absolute()
    if os.path.realpath(out) == os.path.realpath(loaded.path):
        raise ConfigError(f"the new config would replace {loaded.path} itself; choose another {option} "
                          "(the original config is never edited)")
    if Path(os.path.realpath(out)).parent != Path(os.path.realpath(loaded.path)).parent:
        raise ConfigError(f"write the new config beside {loaded.path.name} (in {loaded.path.parent}): its relative "
                          f"paths refer to that folder; got {out}")
    claim_config_out(loaded, out, overwrite, option)
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
    return write_config(derive_config(loaded.data, partition=reference), loaded.path, out, overwrite=overwrite,
                        option="--config-out")


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
