"""The plugin's bionet network class: what every run_bionet.py builds.

A ``BioNetwork`` subclass, so ``BioNetwork.from_config`` returns it and everything in bionet keeps
working; it adds what the config's ``bmtk_scaling`` section asks for (lean synapse instantiation).
"""

from __future__ import annotations

from bmtk.simulator.bionet import BioNetwork

from bmtk_scaling.lean_edges import LeanEdgesMixin


class ScalingBioNetwork(LeanEdgesMixin, BioNetwork):
    """bionet's ``BioNetwork`` with lean, array-based synapse instantiation (see :mod:`lean_edges`)."""
