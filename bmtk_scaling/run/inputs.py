"""What a run reads beyond the network's files, checked before anything is compiled or launched.

Each check here stands for a failure bionet would report only after the ranks started (a missing
``hoc:`` template, a spike input that is missing or not HDF5), or never (a population the circuit
config names but the file does not hold, Allen cells without their ``model_processing``, which run
with no channels and no spikes; more ranks than cells, which ``partition`` refuses too).
"""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from bmtk_scaling.errors import ConfigError
from bmtk_scaling.sonata.configs import LoadedConfig, NetworkFiles

ALLEN_TEMPLATE = "ctdb:Biophys1.hoc"  # builds the morphology only; model_processing applies dynamics_params
_SPIKE_HDF5_MODULES = ("sonata", "h5", "hdf5")


def check_run_inputs(sim: LoadedConfig, files: NetworkFiles, components: dict[str, Path], ranks: int) -> None:
    """ConfigError naming the first input that the run would fail on (or silently misread) after launch."""
    _check_populations(sim)
    types = [pd.read_csv(nf.node_types_file, sep=" ") for nf in files.nodes]
    _check_templates(types, files, components.get("templates_dir"))
    _check_model_processing(types, files)
    _check_spike_inputs(sim)
    _check_ascii(sim, components)
    cells = _cells(files, types)
    if cells is not None and ranks > cells:
        raise ConfigError(f"{ranks} ranks for {cells} cells: every rank needs at least one cell (bionet would leave "
                          f"{ranks - cells} rank(s) idle, and partition refuses such maps); run on at most {cells} "
                          "rank(s)")


def _check_populations(sim: LoadedConfig) -> None:
    circuit = sim if "networks" in sim.data else sim.circuit
    for entry in (circuit.data.get("networks") or {}).get("nodes", []):
        named = entry.get("populations") if isinstance(entry, dict) else None
        if not isinstance(named, dict) or not named:
            continue
        path = circuit.resolve(entry["nodes_file"])
        with h5py.File(path, "r") as h5:
            held = sorted(h5.get("nodes", {}).keys())
        unknown = sorted(set(named) - set(held))
        if unknown:
            raise ConfigError(f"{circuit.path.name} names node population(s) {unknown} for {path.name}, which holds "
                              f"{held}: correct the names in 'populations' (bmtk would ignore their settings)")


def _column(table: pd.DataFrame, name: str) -> pd.Series:
    return table[name] if name in table.columns else pd.Series([None] * len(table), index=table.index)


def _check_templates(types: list[pd.DataFrame], files: NetworkFiles, templates_dir: Path | None) -> None:
    wanted = {}
    for table, nf in zip(types, files.nodes, strict=True):
        for value in _column(table, "model_template").dropna().astype(str):
            if value.startswith("hoc:"):
                wanted.setdefault(value[4:], nf.node_types_file)
    if not wanted:
        return
    import bmtk.simulator.bionet as bionet

    folders = [Path(bionet.__file__).parent / "default_templates"] + ([templates_dir] if templates_dir else [])
    defined = set()
    for folder in folders:
        for hoc in Path(folder).glob("*.hoc") if Path(folder).is_dir() else []:
            defined |= set(re.findall(r"^\s*begintemplate\s+(\w+)", hoc.read_text(errors="replace"), re.MULTILINE))
    for name, where in wanted.items():
        if name not in defined:
            place = f"templates_dir {templates_dir}" if templates_dir else "no templates_dir (components)"
            raise ConfigError(f"{where.name} uses model_template hoc:{name}, but no .hoc file in {place} defines "
                              f"template {name} (begintemplate {name}): add the template or fix the name")


def _check_model_processing(types: list[pd.DataFrame], files: NetworkFiles) -> None:
    for table, nf in zip(types, files.nodes, strict=True):
        allen = table[(_column(table, "model_template").astype(str) == ALLEN_TEMPLATE)
                      & _column(table, "dynamics_params").notna()]
        if allen.empty or _in_nodes_file(nf.nodes_file, "model_processing"):
            continue
        missing = allen[_column(allen, "model_processing").isna()]
        if not missing.empty:
            ids = ", ".join(str(v) for v in missing["node_type_id"].tolist()[:5])
            raise ConfigError(f"{nf.node_types_file.name}: node type(s) {ids} build cells from {ALLEN_TEMPLATE} with "
                              "dynamics_params but no model_processing; that template makes the morphology only and "
                              "bmtk applies dynamics_params through model_processing, so these cells would have no "
                              "channels (and no spikes): add a model_processing column (e.g. aibs_perisomatic)")


def _in_nodes_file(path: Path, column: str) -> bool:
    with h5py.File(path, "r") as h5:
        return any(isinstance(grp, h5py.Group) and column in grp
                   for pop in h5.get("nodes", {}).values() for grp in pop.values())


def _check_spike_inputs(sim: LoadedConfig) -> None:
    for name, entry in (sim.data.get("inputs") or {}).items():
        if not isinstance(entry, dict) or entry.get("input_type") != "spikes" or not isinstance(
                entry.get("input_file"), str):
            continue
        path = sim.resolve(entry["input_file"])
        where = f"inputs.{name}.input_file {path}"
        if not path.exists():
            raise ConfigError(f"{where} not found: create it, or fix the path in {sim.path.name}")
        if not path.is_file():
            raise ConfigError(f"{where} is a folder or a special file, not a spike file: name the file itself")
        module = str(entry.get("module", "")).lower()
        if module in _SPIKE_HDF5_MODULES and not h5py.is_hdf5(path):
            raise ConfigError(f"{where} is not an HDF5 file, which module {module!r} reads: give a SONATA spike file "
                              "(.h5), or set \"module\": \"csv\" for a CSV of spikes")


def _check_ascii(sim: LoadedConfig, components: dict[str, Path]) -> None:
    """NEURON's hoc file loader fails on paths with non-ASCII characters, only after the ranks started."""
    for key in ("templates_dir", "morphologies_dir", "biophysical_neuron_models_dir"):
        path = components.get(key)
        if path is not None and not str(path).isascii():
            raise ConfigError(f"components.{key} {path} has non-ASCII characters, which NEURON cannot load files "
                              "from: move the network (or that folder) to a path of ASCII characters")


def _cells(files: NetworkFiles, types: list[pd.DataFrame]) -> int | None:
    """Non-virtual nodes: what is placed on ranks (None where model types are per node: bionet counts then)."""
    total = 0
    for table, nf in zip(types, files.nodes, strict=True):
        virtual = set(table.loc[_column(table, "model_type").astype(str) == "virtual", "node_type_id"].tolist())
        with h5py.File(nf.nodes_file, "r") as h5:
            for pop in h5.get("nodes", {}).values():
                type_ids = pop["node_type_id"][()]
                if any(isinstance(g, h5py.Group) and "model_type" in g for g in pop.values()):
                    return None
                total += int(np.count_nonzero(~np.isin(type_ids, list(virtual))))
    return total
