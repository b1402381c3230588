"""Write a new simulation config with the engine switches (and a partition) set; never edit in place.

The result stays a valid SONATA simulation config: SONATA's own ``target_simulator`` selects the
engine, our options live in the ``bmtk_scaling`` section, and libsonata still parses it (checked).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from bmtk_scaling.atomic import write_text_atomic
from bmtk_scaling.config.settings import ENGINES, SECTION, CoreNeuronOptions, read_settings
from bmtk_scaling.sonata import configs


def load_config(path: Path) -> dict[str, Any]:
    """The JSON of a simulation config, as written (ValueError naming the problem if unreadable)."""
    return configs.load_config(path).data


def derive_config(
    config: dict[str, Any],
    *,
    engine: str | None = None,
    gpu: bool | None = None,
    cell_permute: int | None = None,
    file_mode: bool | None = None,
    nthread: int | None = None,
    neuron_loop: str | None = None,
    synapses: str | None = None,
    partition: str | None = None,
    output_dir: str | None = None,
) -> dict[str, Any]:
    """A copy of ``config`` with the given switches set (None leaves a setting as it is)."""
    new = copy.deepcopy(config)
    if engine is not None:
        if engine.upper() not in ENGINES:
            raise ValueError(f"engine must be one of {[e.lower() for e in ENGINES]}, got {engine!r}")
        new["target_simulator"] = engine.upper()
    section = new.setdefault(SECTION, {})
    core = dict(section.get("coreneuron") or {})
    for key, value in (("gpu", gpu), ("cell_permute", cell_permute), ("file_mode", file_mode),
                       ("nthread", nthread)):
        if value is not None:
            core[key] = value
    if core.get("gpu") and "cell_permute" not in core:
        core["cell_permute"] = 2  # the layout CoreNEURON's GPU kernels want
    if core.get("cell_permute", 0) not in (0, 1, 2):
        raise ValueError(f"cell_permute must be 0, 1 or 2, got {core['cell_permute']!r}")
    if core.get("nthread", 1) < 1:
        raise ValueError(f"threads must be >= 1, got {core['nthread']!r}")
    if core:
        section["coreneuron"] = {**CoreNeuronOptions().__dict__, **core}
    if neuron_loop is not None:
        section["neuron_loop"] = neuron_loop
    if synapses is not None:
        section["synapses"] = synapses
    if partition is not None:
        section["partition"] = partition
    if not section:
        del new[SECTION]
    if output_dir is not None:
        new.setdefault("manifest", {})["$OUTPUT_DIR"] = output_dir
        new.setdefault("output", {})["output_dir"] = "$OUTPUT_DIR"
    read_settings(new)  # validates the combination (e.g. neuron_loop 'bmtk' on CoreNEURON)
    return new


def rebase_manifest(config: dict[str, Any], source_dir: Path, dest_dir: Path) -> dict[str, Any]:
    """Keep ``$BASE_DIR`` pointing at the network when the config is written to another folder."""
    base = config.get("manifest", {}).get("$BASE_DIR", ".")
    if Path(base).is_absolute() or source_dir.resolve() == dest_dir.resolve():
        return config
    new = copy.deepcopy(config)
    new["manifest"]["$BASE_DIR"] = os.path.relpath((source_dir / base).resolve(), dest_dir.resolve())
    return new


def write_config(config: dict[str, Any], source: Path, out: Path, overwrite: bool = False) -> Path:
    """Write a derived config to ``out`` (atomically), checking that libsonata parses it."""
    out = Path(out)
    if out.resolve() == Path(source).resolve():
        raise ValueError(f"--out {out} is the input config: configure writes a new config, choose another name")
    if out.exists() and not overwrite:
        raise ValueError(f"{out} exists: choose another --out, or pass --overwrite")
    data = rebase_manifest(config, Path(source).parent, out.parent)
    text = json.dumps(data, indent=2) + "\n"
    problem = _libsonata_problem(text, out.parent)
    if problem and not _libsonata_problem(Path(source).read_text(), Path(source).parent):
        raise ValueError(f"the new config would not be valid SONATA (libsonata: {problem})")
    # A source config that libsonata already rejects (e.g. bmtk-only input modules) is passed through as is.
    write_text_atomic(out, text)
    return out


def _libsonata_problem(text: str, base: Path) -> str | None:
    """libsonata's objection to a simulation config, or None if it parses."""
    import libsonata

    try:
        libsonata.SimulationConfig(text, str(Path(base).resolve()))
    except (libsonata.SonataError, RuntimeError) as err:
        return str(err)
    return None
