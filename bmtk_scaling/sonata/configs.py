"""Which node and edge files a SONATA simulation or circuit config names, as absolute paths.

The SONATA rules, which libsonata follows: ``$VARIABLES`` come from the config's ``manifest`` (they
may refer to each other), and a relative path is relative to the folder of the config that names it.
bmtk resolves relative paths against the working directory instead; our run script runs from the
config's folder, so both agree for the configs the builders write.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from bmtk_scaling.atomic import Protected
from bmtk_scaling.errors import ConfigError

_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


@dataclass(frozen=True)
class NodeFiles:
    nodes_file: Path
    node_types_file: Path


@dataclass(frozen=True)
class EdgeFiles:
    edges_file: Path
    edge_types_file: Path


@dataclass(frozen=True)
class NetworkFiles:
    """The files of one network; ``base_dir`` is the circuit's folder (where partitions are kept)."""

    nodes: tuple[NodeFiles, ...]
    edges: tuple[EdgeFiles, ...]
    base_dir: Path


@dataclass(frozen=True)
class LoadedConfig:
    path: Path
    data: dict[str, Any]
    variables: dict[str, str]

    @property
    def is_simulation(self) -> bool:
        """A simulation config says how to run (``run``) or points at a circuit (``network``)."""
        return "run" in self.data or isinstance(self.data.get("network"), str)

    def resolve(self, value: str) -> Path:
        """A path string of this config, variables expanded, made absolute against the config's folder."""
        return _absolute(_expand(value, self.variables, self.path), self.path.parent)

    @cached_property
    def circuit(self) -> LoadedConfig | None:
        """The circuit config named by ``network``, read once for every check that needs it; None if none."""
        network = self.data.get("network")
        return load_config(self.resolve(network)) if isinstance(network, str) else None


def loaded(config: str | Path | LoadedConfig) -> LoadedConfig:
    """``config`` as loaded: a LoadedConfig is passed on as it is, so one command reads each file once."""
    return config if isinstance(config, LoadedConfig) else load_config(config)


def load_config(path: str | Path) -> LoadedConfig:
    """Read a JSON config and resolve its manifest; raise ConfigError naming the problem."""
    path = Path(path).expanduser().absolute()
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.json"))
        hint = f" it holds {', '.join(found[:6])}" if found else " it holds no .json file"
        raise ConfigError(f"{path} is a folder, not a config file:{hint}; give the simulation config itself, "
                          "e.g. FOLDER/simulation_config.json")
    if not path.is_file():
        raise ConfigError(f"config {path} " + ("is not a regular file (a FIFO, socket or device): give the config file"
                                               if path.exists() else "not found"))
    try:
        data = json.loads(path.read_text(), object_pairs_hook=_no_duplicate_keys(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"config {path} is not valid JSON: {err}") from err
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror or err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must hold a JSON object")
    return LoadedConfig(path=path, data=data, variables=_manifest(data.get("manifest") or {}, path))


def _no_duplicate_keys(path: Path):
    """A JSON object hook that refuses a key given twice (json keeps the last one silently)."""
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise ConfigError(f"config {path} gives the key {key!r} twice in one object (JSON would keep the "
                                  "last silently): keep one")
            seen[key] = value
        return seen
    return hook


def network_files(config: str | Path | LoadedConfig) -> NetworkFiles:
    """The node and edge files of a simulation config (through its circuit config) or of a circuit config."""
    sim = loaded(config)
    circuit = sim
    if "networks" not in sim.data:
        if not isinstance(sim.data.get("network"), str):
            raise ConfigError(f"config {sim.path} names no network: it needs 'networks' or 'network'")
        circuit = sim.circuit
        if "networks" not in circuit.data:
            raise ConfigError(f"circuit config {circuit.path} has no 'networks' section")
    nets = circuit.data["networks"]
    try:
        nodes = tuple(NodeFiles(circuit.resolve(n["nodes_file"]), circuit.resolve(n["node_types_file"]))
                      for n in nets.get("nodes", []))
        edges = tuple(EdgeFiles(circuit.resolve(e["edges_file"]), circuit.resolve(e["edge_types_file"]))
                      for e in nets.get("edges", []) if e.get("enabled", True))
    except (KeyError, TypeError) as err:
        raise ConfigError(f"circuit config {circuit.path}: malformed 'networks' entry ({err})") from err
    if not nodes:
        raise ConfigError(f"circuit config {circuit.path} names no node files")
    for f in [*(n.nodes_file for n in nodes), *(n.node_types_file for n in nodes),
              *(e.edges_file for e in edges), *(e.edge_types_file for e in edges)]:
        if not f.is_file():
            kind = "is a folder, not a file" if f.is_dir() else "is not a regular file" if f.exists() else "not found"
            raise ConfigError(f"network file {f} (named by {circuit.path}) {kind}")
    return NetworkFiles(nodes=nodes, edges=edges, base_dir=circuit.path.parent)


def _manifest(manifest: dict[str, Any], path: Path) -> dict[str, str]:
    """The manifest's variables, resolved; with bmtk's built-in ones (``${configdir}``: the config's folder,
    ``${configfname}``: the config file, ``${workingdir}``: the current folder), which a manifest may redefine."""
    raw = {"configdir": str(path.parent), "configfname": str(path), "workingdir": os.getcwd()}
    raw.update({k.lstrip("$").strip("{}"): str(v) for k, v in manifest.items()})
    raw.setdefault("BASE_DIR", ".")
    out: dict[str, str] = {}
    for name in raw:
        out[name] = str(_absolute(_expand(raw[name], raw, path), path.parent))
    return out


def _expand(value: str, variables: dict[str, str], path: Path, depth: int = 0) -> str:
    if depth > 20:
        raise ConfigError(f"config {path}: manifest variables refer to each other in a cycle ({value!r})")

    def sub(match: re.Match) -> str:
        name = match.group(1)
        if name not in variables:
            raise ConfigError(f"config {path}: ${name} is not defined in its manifest")
        return variables[name]

    expanded = _VARIABLE.sub(sub, str(value))
    return expanded if "$" not in expanded else _expand(expanded, variables, path, depth + 1)


def _absolute(value: str, folder: Path) -> Path:
    p = Path(value).expanduser()
    return Path(os.path.normpath(p if p.is_absolute() else folder / p))


def is_path_key(key: object) -> bool:
    """A key whose value SONATA reads as a path relative to the config's folder.

    Not an ECP's ``contributions_dir``: the plugin writes it inside the run's output folder (bmtk, against
    the config's folder, where a second run fails on the files the first left).
    """
    return isinstance(key, str) and key != "contributions_dir" and (
        key == "network" or key.endswith(("_file", "_dir", "_path")))


def _substitute(node: Any, loaded, key: object = None, section: object = None) -> Any:
    """``node`` with ``$VARIABLES`` expanded and relative paths made absolute, both as SONATA reads them.

    Strings with a variable, and bare relative paths under path keys (``*_file``, ``*_dir``,
    ``*_path``, ``network``), are resolved against ``loaded``'s folder; in the ``output`` section only
    ``output_dir`` is (the other output files are relative to ``output_dir``).
    """
    if isinstance(node, dict):
        return {k: _substitute(v, loaded, k, section if section is not None else k) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, loaded, key, section) for v in node]
    if isinstance(node, str) and ("$" in node or (is_path_key(key) and node and not Path(node).is_absolute()
                                                  and (section != "output" or key == "output_dir"))):
        return str(loaded.resolve(node))
    return node


_RUN_KEYS = ("target_simulator", "bmtk_scaling")


def resolved_for_bmtk(config_path: Path, out_dir: Path | None = None, mechanisms_dir: Path | None = None
                      ) -> dict[str, Any]:
    """A simulation config with its circuit config merged in and every manifest path made absolute.

    SONATA takes relative manifest paths against each config's own folder; bmtk takes them against
    the working directory. Handing bmtk this resolved dict (``Config.from_dict``) makes both agree
    wherever the configs live, e.g. a derived config in another folder than the network's.
    """
    sim = load_config(config_path)
    resolved = _substitute({k: v for k, v in sim.data.items() if k != "manifest"}, sim)
    network = resolved.pop("network", None)
    if network:
        circuit = load_config(sim.resolve(network))
        for key, value in _substitute({k: v for k, v in circuit.data.items() if k != "manifest"}, circuit).items():
            # as bmtk merges them: a section of the circuit config replaces the simulation's, except the engine and
            # the plugin's settings, which are the simulation config's (as the preflight reads them): bmtk's
            # bio_450cells names target_simulator NEURON in its circuit config too
            if key not in _RUN_KEYS or key not in resolved:
                resolved[key] = value
    section = resolved.get("bmtk_scaling") or {}
    if isinstance(section, dict) and section.get("partition"):
        section["partition"] = str(sim.resolve(section["partition"]))
    if mechanisms_dir is not None:  # the compiled build the runner chose (a cache build for a user's mod files)
        resolved.setdefault("components", {})["mechanisms_dir"] = str(mechanisms_dir)
    if out_dir is not None:  # where this run writes (a fresh folder the runner swaps into place on success)
        configured = output_dir(sim)
        output = resolved.setdefault("output", {})
        for key, value in output.items():  # the log and other output files named through $OUTPUT_DIR too
            if isinstance(value, str) and Path(value).is_absolute() and configured in Path(value).parents:
                output[key] = str(out_dir / Path(value).relative_to(configured))
        output["output_dir"] = str(out_dir)
        output["spikes_file"] = str(spikes_path(sim, out_dir))
        for report in (resolved.get("reports") or {}).values():  # report files named through $OUTPUT_DIR too
            name = report.get("file_name") if isinstance(report, dict) else None
            if isinstance(name, str) and Path(name).is_absolute() and configured in Path(name).parents:
                report["file_name"] = str(out_dir / Path(name).relative_to(configured))
            where = report.get("contributions_dir") if isinstance(report, dict) else None
            if isinstance(where, str):  # an ECP's per-cell files: inside the output folder (bmtk: the config's)
                path = Path(where)
                if not path.is_absolute():
                    report["contributions_dir"] = str(out_dir / path)
                elif path == configured or configured in path.parents:
                    report["contributions_dir"] = str(out_dir / path.relative_to(configured))
    resolved["config_path"] = str(sim.path)
    resolved["config_dir"] = str(sim.path.parent)
    return resolved


def output_dir(sim: LoadedConfig) -> Path:
    """Where a simulation config's outputs go (``output.output_dir``; ``output/`` beside the config by default)."""
    output = sim.data.get("output") or {}
    if not isinstance(output, dict):
        raise ConfigError(f"config {sim.path}: 'output' must be an object")
    return sim.resolve(str(output.get("output_dir", "output")))


def spikes_path(config_path: Path | LoadedConfig, out_dir: Path | None = None) -> Path:
    """The spike file a simulation config writes (``output.spikes_file`` in ``output.output_dir``)."""
    sim = config_path if isinstance(config_path, LoadedConfig) else load_config(config_path)
    spikes = str((sim.data.get("output") or {}).get("spikes_file", "spikes.h5"))
    if "$" in spikes or Path(spikes).is_absolute():
        path = sim.resolve(spikes)
        base = output_dir(sim)
        if base not in path.parents:
            raise ConfigError(f"config {sim.path}: output.spikes_file {path} lies outside output.output_dir {base}; "
                              "name it relative to output_dir (e.g. spikes.h5)")
        return (out_dir / path.relative_to(base)) if out_dir else path
    return (out_dir or output_dir(sim)) / spikes


def input_paths(sim: LoadedConfig) -> tuple[list[Path], list[Path]]:
    """(input files, input folders) a simulation config reads: what an output folder must never hold or replace.

    Files: the config, its circuit config, node and edge files, the partition map, spike inputs, node
    sets. Folders: the components (mechanisms, templates, morphologies, ...).
    """
    files = [sim.path]
    configs = [sim]
    if sim.circuit is not None:
        files.append(sim.circuit.path)
        configs.append(sim.circuit)
    folders = []
    for cfg in configs:
        for value in (cfg.data.get("components") or {}).values():
            if isinstance(value, str):
                folders.append(cfg.resolve(value))
        if isinstance(cfg.data.get("node_sets_file"), str):
            files.append(cfg.resolve(cfg.data["node_sets_file"]))
    with contextlib.suppress(ConfigError):
        net = network_files(sim)
        files += [f for n in net.nodes for f in (n.nodes_file, n.node_types_file)]
        files += [f for e in net.edges for f in (e.edges_file, e.edge_types_file)]
    for entry in (sim.data.get("inputs") or {}).values():
        if isinstance(entry, dict):
            files += [sim.resolve(v) for k, v in entry.items() if k.endswith("_file") and isinstance(v, str)]
    section = sim.data.get("bmtk_scaling") or {}
    if isinstance(section, dict) and isinstance(section.get("partition"), str):
        files.append(sim.resolve(section["partition"]))
    return files, folders


def protected_inputs(sim: LoadedConfig) -> Protected:
    """What no output of ``sim`` may be, hold or lie in (see :class:`bmtk_scaling.atomic.Protected`).

    The input files of :func:`input_paths`; its input folders (the components); and the folders that
    hold the network's files or the component folders (``network/``, ``components/``), unless that is
    the config's own folder or one above it, where outputs belong.
    """
    files, folders = input_paths(sim)
    home = Path(os.path.realpath(sim.path.parent))
    network: list[Path] = []
    with contextlib.suppress(ConfigError):
        net = network_files(sim)
        network = [f for n in net.nodes for f in (n.nodes_file, n.node_types_file)]
        network += [f for e in net.edges for f in (e.edges_file, e.edge_types_file)]
    around = []
    for path in [*network, *folders]:
        parent = Path(os.path.realpath(path)).parent
        if parent != home and parent not in home.parents:
            around.append(parent)
    return Protected.of(files, [*folders, *around], owner=sim.path.name)
