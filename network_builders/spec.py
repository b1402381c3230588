"""What a builder produces before anything is written: nodes, edges and run defaults as arrays."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from network_builders.configs import RunSettings

# Per-node columns every benchmark network stores (one SONATA node group, readable by any tool):
#   role        E / I (PING), sender / receiver (N-Pairs), driven / member (N-K-Cliques)
#   assembly    assembly, pair or clique index: the unit the by-assembly distribution keeps together
#   drive_*     the IClamp each cell receives (amp 0 = none), drawn at build time from the seed
NODE_COLUMNS = ("role", "assembly", "drive_amp", "drive_delay", "drive_dur")
DRIVE_FOREVER = 1.0e9  # ms: IClamp duration meaning "until the end of any run"


@dataclass
class CellGroup:
    """``n`` consecutive nodes of one cell template; ``columns`` holds one array per NODE_COLUMNS."""

    template: str  # hoc template name in components/templates, e.g. "RTMCell"
    columns: dict[str, np.ndarray]

    @property
    def n(self) -> int:
        return int(len(self.columns["role"]))


@dataclass
class EdgeClass:
    """One edge type: explicit (source, target) node ids with shared synapse, weight and delay."""

    name: str
    sources: np.ndarray
    targets: np.ndarray
    synapse: str  # "exc" or "inh": components/synaptic_models/<synapse>.json
    syn_weight: float  # uS
    delay: float  # ms


@dataclass
class NetworkSpec:
    population: str
    kind: str
    parameters: dict[str, Any]
    groups: list[CellGroup]
    edges: list[EdgeClass]
    run: RunSettings

    @property
    def n_nodes(self) -> int:
        return sum(g.n for g in self.groups)

    @property
    def n_edges(self) -> int:
        return sum(int(e.sources.size) for e in self.edges)


@dataclass
class BuiltNetwork:
    """Where a built network lives and what it holds."""

    path: Path
    population: str
    kind: str
    n_nodes: int
    n_edges: int
    edges_per_class: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step: draw, bmtk_build, bmtk_save, finish

    @property
    def circuit_config(self) -> Path:
        return self.path / "circuit_config.json"

    @property
    def simulation_config(self) -> Path:
        return self.path / "simulation_config.json"

    @property
    def nodes_file(self) -> Path:
        return self.path / "network" / f"{self.population}_nodes.h5"

    @property
    def edges_file(self) -> Path:
        return self.path / "network" / f"{self.population}_{self.population}_edges.h5"
