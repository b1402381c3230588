"""The plugin's bionet network class: what every run_bionet.py builds.

A ``BioNetwork`` subclass, so everything in bionet keeps working; it adds what the config's
``bmtk_scaling`` section asks for: cells placed on the ranks a partition map names
(:mod:`placement`), cells built without bmtk's per-cell ``define_shape`` (``cell_build``), lean
synapse instantiation (:mod:`lean_edges`), one part of the rank's cells at a time (``build_part``,
:mod:`build_cycles`) and, on CoreNEURON, IntFire1 cells as the plugin's stand-in (:mod:`point_cells`).
"""

from __future__ import annotations

import contextlib

from neuron import h

from bmtk_scaling._bmtk_private import counting_cell_builds, lean_cell_loading, round_robin_rows
from bmtk_scaling.bionet.build_cycles import part_rows
from bmtk_scaling.bionet.lean_edges import LeanEdgesMixin
from bmtk_scaling.bionet.placement import PartitionedBioNetwork
from bmtk_scaling.bionet.point_cells import use_stand_ins
from bmtk_scaling.progress import report

pc = h.ParallelContext()


class ScalingBioNetwork(LeanEdgesMixin, PartitionedBioNetwork):
    """bionet's ``BioNetwork`` with partition-aware cell placement and lean cell and synapse instantiation."""

    cell_build = "bmtk"
    build_part: tuple[int, int] | None = None  # (part, parts): build only that part of this rank's cells

    @classmethod
    def from_config(cls, conf, **properties):
        from bmtk_scaling.config.settings import read_settings

        network = super().from_config(conf, **properties)
        settings = read_settings(conf)
        network.cell_build = settings.cell_build
        if settings.engine.is_coreneuron:  # IntFire1 cells as the plugin's CoreNEURON-ready stand-in
            use_stand_ins()
        return network

    def rows_to_build(self) -> dict[str, list[int]] | None:
        rows = super().rows_to_build()
        if self.build_part is None:
            return rows
        if rows is None:
            rows = round_robin_rows(self, int(pc.id()), int(pc.nhost()))
        return part_rows(rows, *self.build_part)

    def build_nodes(self):
        rank, total, built = int(pc.id()), self._cells_to_build(), [0]

        def tick() -> None:
            built[0] += 1
            report("build cells", built[0], max(total, built[0]), "cells", rank=rank)

        with lean_cell_loading() if self.cell_build == "lean" else contextlib.nullcontext(), \
                counting_cell_builds(self, tick):
            result = super().build_nodes()
        if built[0] != total:  # a population mixing virtual and real nodes: the count was an upper bound
            report("build cells", built[0], built[0], "cells", rank=rank)
        return result

    def _cells_to_build(self) -> int:
        """How many cells this rank builds (its rows; mixed populations count whole)."""
        rows = self.rows_to_build()
        if rows is not None:
            return sum(len(r) for r in rows.values())
        rank, size = int(pc.id()), int(pc.nhost())
        return sum(len(range(rank, pop.n_nodes(), size)) for pop in self.node_populations
                   if not pop.virtual_nodes_only)
