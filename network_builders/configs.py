"""Circuit and simulation configs in BMTK's conventions that libsonata also parses.

Paths go through the manifest with ``$BASE_DIR = "."``: the SONATA specification (and libsonata)
resolve it against the config's own folder, bmtk against the working directory; our run script runs
from the config's folder, so both agree and a network folder can be moved or shared as a whole.
libsonata only lists populations named in ``populations`` and wants a biophysical population to name
a morphology and a model folder: the single-compartment cells need no morphology file, so that
folder stays empty, and the model folder is the hoc templates' folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
