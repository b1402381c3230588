"""The three benchmark networks of the project, built with bmtk's NetworkBuilder as SONATA folders.

Each network has a ``*_spec`` function (parameters -> arrays, no I/O) and a builder that writes a
ready-to-run folder: ``ping_assembly``, ``n_pairs``, ``nk_cliques``.
"""

from network_builders.n_pairs import n_pairs, n_pairs_spec
from network_builders.nk_cliques import nk_cliques, nk_cliques_spec
from network_builders.ping_assembly import ping_assembly, ping_assembly_spec
from network_builders.spec import BuiltNetwork, NetworkSpec

BUILDERS = {"ping": ping_assembly, "pairs": n_pairs, "cliques": nk_cliques}
SPECS = {"ping": ping_assembly_spec, "pairs": n_pairs_spec, "cliques": nk_cliques_spec}

__all__ = [
    "BUILDERS", "SPECS", "BuiltNetwork", "NetworkSpec",
    "n_pairs", "n_pairs_spec", "nk_cliques", "nk_cliques_spec", "ping_assembly", "ping_assembly_spec",
]
