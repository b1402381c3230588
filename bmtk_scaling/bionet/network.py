"""The plugin's bionet network class: what every run_bionet.py builds.

A ``BioNetwork`` subclass, so everything in bionet keeps working; it adds what the config's
``bmtk_scaling`` section asks for: cells placed on the ranks a partition map names
(:mod:`placement`), cells built without bmtk's per-cell ``define_shape`` (``cell_build``) and lean
synapse instantiation (:mod:`lean_edges`); on CoreNEURON, IntFire1 cells as the plugin's stand-in
(:mod:`point_cells`).
"""

from __future__ import annotations

import contextlib

from bmtk_scaling._bmtk_private import lean_cell_loading
from bmtk_scaling.bionet.lean_edges import LeanEdgesMixin
from bmtk_scaling.bionet.placement import PartitionedBioNetwork
from bmtk_scaling.bionet.point_cells import use_stand_ins


class ScalingBioNetwork(LeanEdgesMixin, PartitionedBioNetwork):
    """bionet's ``BioNetwork`` with partition-aware cell placement and lean cell and synapse instantiation."""

    cell_build = "bmtk"

    @classmethod
    def from_config(cls, conf, **properties):
        from bmtk_scaling.config.settings import read_settings

        network = super().from_config(conf, **properties)
        settings = read_settings(conf)
        network.cell_build = settings.cell_build
        if settings.engine.is_coreneuron:  # IntFire1 cells as the plugin's CoreNEURON-ready stand-in
            use_stand_ins()
        return network

    def build_nodes(self):
        with lean_cell_loading() if self.cell_build == "lean" else contextlib.nullcontext():
            return super().build_nodes()
