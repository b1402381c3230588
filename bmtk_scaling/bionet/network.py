"""The plugin's bionet network class: what every run_bionet.py builds.

A ``BioNetwork`` subclass, so everything in bionet keeps working; it adds what the config's
``bmtk_scaling`` section asks for: cells placed on the ranks a partition map names
(:mod:`placement`), cells built without bmtk's per-cell ``define_shape`` (``cell_build``), lean
synapse instantiation (:mod:`lean_edges`) and one part of the rank's cells at a time
(``build_part``, :mod:`build_cycles`).
"""

from __future__ import annotations

import contextlib

from neuron import h

from bmtk_scaling._bmtk_private import lean_cell_loading, round_robin_rows
from bmtk_scaling.bionet.build_cycles import part_rows
from bmtk_scaling.bionet.lean_edges import LeanEdgesMixin
from bmtk_scaling.bionet.placement import PartitionedBioNetwork


class ScalingBioNetwork(LeanEdgesMixin, PartitionedBioNetwork):
    """bionet's ``BioNetwork`` with partition-aware cell placement and lean cell and synapse instantiation."""

    cell_build = "bmtk"
    build_part: tuple[int, int] | None = None  # (part, parts): build only that part of this rank's cells

    @classmethod
    def from_config(cls, conf, **properties):
        from bmtk_scaling.config.settings import read_settings

        network = super().from_config(conf, **properties)
        network.cell_build = read_settings(conf).cell_build
        return network

    def rows_to_build(self) -> dict[str, list[int]] | None:
        rows = super().rows_to_build()
        if self.build_part is None:
            return rows
        if rows is None:
            pc = h.ParallelContext()
            rows = round_robin_rows(self, int(pc.id()), int(pc.nhost()))
        return part_rows(rows, *self.build_part)

    def build_nodes(self):
        with lean_cell_loading() if self.cell_build == "lean" else contextlib.nullcontext():
            return super().build_nodes()
