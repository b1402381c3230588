"""Building a rank's model in cycles, for CoreNEURON's file mode: larger models than NEURON can hold at once.

Why: NEURON's copy of a model is several times larger than CoreNEURON's, so in file mode NEURON's
build is the peak. With ``"bmtk_scaling": {"coreneuron": {"build_cycles": N}}`` each rank builds
its cells in N parts, one after the other: a part's cells, their afferent edges, spike inputs and
clamps are built by bionet as usual, written to CoreNEURON's files (appended, one dataset per part
and thread) and freed before the next part is built. CoreNEURON then loads every part; a rank
reading more datasets than it has threads runs each as one of its cell groups, and edges between
parts connect by gid as edges between ranks do. NEURON's peak falls roughly N-fold; CoreNEURON's
stays that of the whole model (:mod:`bmtk_scaling.run.memory_plan` predicts both).

A part takes every N-th of each population's rows on this rank (the partition map's rows, or
bionet's round robin), so parts differ by at most one cell per population and have the mix of cell
types of the whole: builders write cell types in blocks (PING's inhibitory cells, which receive
most synapses, follow its excitatory ones), and contiguous slices put those blocks in different
parts (measured, PING 2 x 2500 in 4 parts: the last part's build peaked at 615 MiB, the others at
about 320). Every cell, edge and synapse is built exactly once, in the part of its target cell, and
bionet's per-cell random streams (seeded by gid) place synapses alike in any part. Spike-input
generators (VecStims) are made again in each part that a spike-input edge reaches: they have no gid
and CoreNEURON needs them in the dataset of their targets.

The first part is built by the run script as any model (``ScalingBioSimulator.from_config``); the
later ones by :func:`build_part` during the run (:func:`bmtk_scaling.bionet.coreneuron_files.run_file_mode`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["build_part", "part_rows"]


def part_rows(rows: Mapping[str, Sequence[int]], part: int, n_parts: int) -> dict[str, list[int]]:
    """Part ``part`` (0-based) of ``n_parts`` of each population's rows: every ``n_parts``-th row from ``part``."""
    if not 0 <= part < n_parts:
        raise ValueError(f"part {part} is not one of 0..{n_parts - 1}")
    return {name: [int(r) for r in list(r)[part::n_parts]] for name, r in rows.items()}


def build_part(sim: Any, part: int) -> Any:
    """Build part ``part`` of this rank's cells as bionet builds a model, and return its simulator.

    A fresh network of the same class, limited to the part's rows, and a simulator of ``sim``'s class
    made by bmtk's own ``from_config`` (cells, recurrent edges, spike inputs, clamps), whose modules
    other than spike recording are initialised (clamps are made on the part's cells). The spikes of all
    parts come back through ``sim``'s spike writer.
    """
    from bmtk.simulator.bionet import modules

    from bmtk_scaling._bmtk_private import simulation_modules, use_simulator

    network = type(sim.net).from_config(sim.source_config, placed_like=sim.net)  # the map is checked once
    network.build_part = (part, sim.settings.coreneuron.build_cycles)
    part_sim = type(sim).from_config(sim.source_config, network=network)
    for mod in simulation_modules(part_sim):
        if not isinstance(mod, modules.SpikesMod):
            mod.initialize(part_sim)
    use_simulator(sim)  # bmtk points hoc at the newest simulator; the run's own stays the one it knows
    return part_sim
