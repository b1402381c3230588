"""The plugin's own section of a SONATA simulation config, and the engine switch SONATA already has.

SONATA allows implementation-specific sections in a simulation config; ours is ``"bmtk_scaling"``.
libsonata ignores it (and still parses the config), bmtk resolves its ``$VARIABLES`` like every
other section. The engine is SONATA's own ``target_simulator`` ("NEURON" or "CORENEURON").

    "target_simulator": "CORENEURON",
    "bmtk_scaling": {
        "partition": "$BASE_DIR/partitions/metis_2.h5",     # node -> rank map file (optional)
        "neuron_loop": "psolve",                           # or "bmtk": stock h.run with a Python call per step
        "synapses": "shared",                              # or "per_edge", or "bmtk" (see lean_edges.py)
        "coreneuron": {"gpu": false, "cell_permute": 0, "file_mode": false, "nthread": 1, "verbose": 1}
    }
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SECTION = "bmtk_scaling"
ENGINES = ("NEURON", "CORENEURON")
NEURON_LOOPS = ("psolve", "bmtk")
SYNAPSE_MODES = ("shared", "per_edge", "bmtk")


@dataclass(frozen=True)
class CoreNeuronOptions:
    gpu: bool = False
    cell_permute: int = 0  # 0 none, 1 interleave (CPU), 2 per-warp (GPU)
    file_mode: bool = False
    nthread: int = 1
    verbose: int = 1


@dataclass(frozen=True)
class PluginSettings:
    """What the plugin reads from a (bmtk-resolved) simulation config."""

    engine: str = "NEURON"
    partition: Path | None = None
    neuron_loop: str = "psolve"
    synapses: str = "shared"
    coreneuron: CoreNeuronOptions = field(default_factory=CoreNeuronOptions)


def read_settings(config: dict[str, Any]) -> PluginSettings:
    """Plugin settings from a simulation config dict (paths already resolved by bmtk, or raw)."""
    engine = str(config.get("target_simulator", "NEURON")).upper()
    if engine not in ENGINES:
        raise ValueError(f"target_simulator must be one of {ENGINES}, got {config.get('target_simulator')!r}")
    section = config.get(SECTION) or {}
    if not isinstance(section, dict):
        raise ValueError(f"the {SECTION!r} section of the simulation config must be an object")
    unknown = set(section) - {"partition", "coreneuron", "neuron_loop", "synapses"}
    if unknown:
        raise ValueError(f"unknown keys in the {SECTION!r} section: {sorted(unknown)}")
    opts = section.get("coreneuron") or {}
    known = set(CoreNeuronOptions.__dataclass_fields__)
    if set(opts) - known:
        raise ValueError(f"unknown CoreNEURON options {sorted(set(opts) - known)}; known: {sorted(known)}")
    loop = section.get("neuron_loop", "psolve")
    if loop not in NEURON_LOOPS:
        raise ValueError(f"neuron_loop must be one of {NEURON_LOOPS}, got {loop!r}")
    if loop == "bmtk" and engine == "CORENEURON":
        raise ValueError("neuron_loop 'bmtk' (stock h.run) cannot run on CoreNEURON; use 'psolve'")
    synapses = section.get("synapses", "shared")
    if synapses not in SYNAPSE_MODES:
        raise ValueError(f"synapses must be one of {SYNAPSE_MODES}, got {synapses!r}")
    partition = section.get("partition")
    return PluginSettings(engine=engine, partition=Path(partition) if partition else None, neuron_loop=loop,
                          synapses=synapses, coreneuron=CoreNeuronOptions(**opts))
