"""Circuit and simulation configs in BMTK's conventions that libsonata also parses.

Paths go through the manifest with ``$BASE_DIR = "."``: the SONATA specification (and libsonata)
resolve it against the config's own folder, bmtk against the working directory; our run script runs
from the config's folder, so both agree and a network folder can be moved or shared as a whole.
libsonata only lists populations named in ``populations`` and wants a biophysical population to name
a morphology and a model folder: the single-compartment cells need no morphology file, so that
folder stays empty, and the model folder is the hoc templates' folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bmtk_scaling.atomic_output import write_text_atomic

CIRCUIT_CONFIG = "circuit_config.json"
SIMULATION_CONFIG = "simulation_config.json"

# bmtk re-segments every section to ``1 + 2*int(L/(2*dL))`` segments (default dL = 20 um cuts the
# 100 um soma into 5). The benchmark cells are single-compartment by definition, so dL is set far
# above any section length.
SINGLE_SEGMENT_DL = 10_000.0


@dataclass(frozen=True)
class RunSettings:
    """The ``run`` and ``conditions`` sections: what every engine must honour identically."""

    tstop: float
    dt: float
    v_init: float
    seed: int
    spike_threshold: float = -15.0
    celsius: float = 36.0


def circuit_config(population: str) -> dict[str, Any]:
    """The circuit config for one population written by bmtk's NetworkBuilder into ``network/``."""
    return {
        "manifest": {
            "$BASE_DIR": ".",
            "$NETWORK_DIR": "$BASE_DIR/network",
            "$COMPONENTS_DIR": "$BASE_DIR/components",
        },
        "components": {
            "mechanisms_dir": "$COMPONENTS_DIR/mechanisms",
            "templates_dir": "$COMPONENTS_DIR/templates",
            "synaptic_models_dir": "$COMPONENTS_DIR/synaptic_models",
            "morphologies_dir": "$COMPONENTS_DIR/morphologies",
            "biophysical_neuron_models_dir": "$COMPONENTS_DIR/templates",
        },
        "networks": {
            "nodes": [
                {
                    "nodes_file": f"$NETWORK_DIR/{population}_nodes.h5",
                    "node_types_file": f"$NETWORK_DIR/{population}_node_types.csv",
                    "populations": {population: {"type": "biophysical"}},
                }
            ],
            "edges": [
                {
                    "edges_file": f"$NETWORK_DIR/{population}_{population}_edges.h5",
                    "edge_types_file": f"$NETWORK_DIR/{population}_{population}_edge_types.csv",
                    "populations": {f"{population}_to_{population}": {"type": "chemical"}},
                }
            ],
        },
    }


def simulation_config(run: RunSettings, circuit: str = CIRCUIT_CONFIG) -> dict[str, Any]:
    """A ready-to-run simulation config on NEURON, recording spikes."""
    return {
        "manifest": {"$BASE_DIR": ".", "$OUTPUT_DIR": "$BASE_DIR/output"},
        "target_simulator": "NEURON",
        "run": {
            "tstop": run.tstop,
            "dt": run.dt,
            "dL": SINGLE_SEGMENT_DL,
            "spike_threshold": run.spike_threshold,
            "nsteps_block": 5000,
            "random_seed": run.seed,
        },
        "conditions": {"celsius": run.celsius, "v_init": run.v_init},
        "inputs": {},
        "output": {
            "log_file": "log.txt",
            "output_dir": "$OUTPUT_DIR",
            "spikes_file": "spikes.h5",
            "spikes_sort_order": "by_time",
            "overwrite_output_dir": True,
            "compression": "none",  # gzip would make the spike file unreadable for the libsonata wheel
        },
        "reports": {},
        "network": f"$BASE_DIR/{circuit}",
    }


def write_json(path: Path, data: dict[str, Any]) -> Path:
    write_text_atomic(Path(path), json.dumps(data, indent=2) + "\n")
    return Path(path)


def _substitute(node: Any, loaded) -> Any:
    """Every ``$VARIABLE`` in the strings of ``node`` expanded with ``loaded``'s manifest (absolute paths)."""
    if isinstance(node, dict):
        return {k: _substitute(v, loaded) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, loaded) for v in node]
    if isinstance(node, str) and "$" in node:
        return str(loaded.resolve(node))
    return node


def resolved_for_bmtk(config_path: Path) -> dict[str, Any]:
    """A simulation config with its circuit config merged in and every manifest path made absolute.

    SONATA takes relative manifest paths against each config's own folder; bmtk takes them against
    the working directory. Handing bmtk this resolved dict (``Config.from_dict``) makes both agree
    wherever the configs live, e.g. a derived config in another folder than the network's.
    """
    from bmtk_scaling.sonata_files import load_config

    sim = load_config(config_path)
    resolved = _substitute({k: v for k, v in sim.data.items() if k != "manifest"}, sim)
    network = resolved.pop("network", None)
    if network:
        circuit = load_config(sim.resolve(network))
        for key, value in _substitute({k: v for k, v in circuit.data.items() if k != "manifest"}, circuit).items():
            resolved.setdefault(key, value)
    section = resolved.get("bmtk_scaling") or {}
    if isinstance(section, dict) and section.get("partition"):
        section["partition"] = str(sim.resolve(section["partition"]))
    resolved["config_path"] = str(sim.path)
    resolved["config_dir"] = str(sim.path.parent)
    return resolved


def spikes_path(config_path: Path) -> Path:
    """The spike file a simulation config writes (``output.output_dir`` / ``output.spikes_file``)."""
    from bmtk_scaling.sonata_files import load_config

    sim = load_config(config_path)
    output = sim.data.get("output", {})
    spikes = Path(output.get("spikes_file", "spikes.h5"))
    if spikes.is_absolute() or "$" in str(spikes):
        return sim.resolve(str(spikes))
    return sim.resolve(output.get("output_dir", "output")) / spikes
