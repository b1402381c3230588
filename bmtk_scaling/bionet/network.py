"""The plugin's bionet network class: what every run_bionet.py builds.

A ``BioNetwork`` subclass, so everything in bionet keeps working; it adds what the config's
``bmtk_scaling`` section asks for: cells placed on the ranks a partition map names
(:mod:`bionet_network`) and lean synapse instantiation (:mod:`lean_edges`).
"""

from __future__ import annotations

from bmtk_scaling.bionet.lean_edges import LeanEdgesMixin
from bmtk_scaling.bionet.placement import PartitionedBioNetwork


class ScalingBioNetwork(LeanEdgesMixin, PartitionedBioNetwork):
    """bionet's ``BioNetwork`` with partition-aware cell placement and lean synapse instantiation."""
