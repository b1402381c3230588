"""A bionet ``BioNetwork`` that builds every cell on the MPI rank a partition map assigns.

Stock bionet deals cells round-robin by row within each population (``node_pop[MPI_rank::MPI_size]``
in ``BioNetwork.build_nodes``) and has no way to change it. Everything downstream already works for
any placement: ``Cell`` registers its gid on the rank that builds it and synapses are made on the
target's rank with ``pc.gid_connect``. So only the rows ``build_nodes`` takes are changed (bionet's own
``build_nodes`` runs on them), and only when the simulation config names a map (``"bmtk_scaling":
{"partition": ...}``); without one placement is stock bionet's. Virtual nodes are handled as bmtk
does (never built here; made on demand as inputs).

The map is read and checked in ``from_config``, on every rank, before any cell exists: a map for
another rank count, one that misses or repeats nodes, or one made for another network raises
ValueError everywhere, so ``mpiexec`` exits non-zero with the reason instead of hanging.

Import after MPI is initialised (``h.nrnmpi_init()``): bmtk reads the rank count at import time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from bmtk.simulator.bionet import BioNetwork
from neuron import h

from bmtk_scaling._bmtk_private import rows_built_here
from bmtk_scaling.config.settings import read_settings
from bmtk_scaling.partition.map_file import PartitionMap, load_checked_map
from bmtk_scaling.sonata.configs import EdgeFiles, NetworkFiles, NodeFiles
from bmtk_scaling.sonata.graph import read_nodes


class PartitionedBioNetwork(BioNetwork):
    """bionet's network, with cells placed by a node -> rank map when the config names one."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.partition: PartitionMap | None = None
        self._local_rows: dict[str, list[int]] = {}

    @classmethod
    def from_config(cls, conf, placed_like: PartitionedBioNetwork | None = None, **properties):
        """``placed_like``: a network of the same config whose map was read and checked already (a later
        build cycle's network takes its placement rather than hashing the network files again)."""
        network = super().from_config(conf, **properties)
        if placed_like is not None:
            network.partition, network._local_rows = placed_like.partition, placed_like._local_rows
            return network
        settings = read_settings(conf)
        if settings.partition is not None:
            network.use_partition(settings.partition, _files_of(conf))
        return network

    def use_partition(self, map_path: str | Path, files: NetworkFiles) -> None:
        """Check ``map_path`` against the network and this run's MPI size; remember this rank's rows."""
        pc = h.ParallelContext()
        n_ranks, rank = int(pc.nhost()), int(pc.id())
        populations = read_nodes(files)
        pmap = load_checked_map(Path(map_path).absolute(), files, populations, n_ranks)
        self._local_rows = {}
        for pop in populations:
            if pop.name in pmap.assignment:
                ids, ranks = pmap.assignment[pop.name]
                self._local_rows[pop.name] = np.sort(pop.rows_of(ids[ranks == rank])).tolist()
        self.partition = pmap

    def rows_to_build(self) -> dict[str, list[int]] | None:
        """The rows of each population this rank builds; None: stock bionet's round robin."""
        return self._local_rows if self.partition is not None else None

    def build_nodes(self):
        rows = self.rows_to_build()
        if rows is None:
            return super().build_nodes()
        with rows_built_here(self, rows):  # bionet's own build_nodes, on these rows
            return super().build_nodes()


def _files_of(conf) -> NetworkFiles:
    """The network files as bmtk resolved them (relative paths are relative to the working directory)."""
    nodes = tuple(NodeFiles(Path(n["nodes_file"]).absolute(), Path(n["node_types_file"]).absolute())
                  for n in conf.nodes)
    edges = tuple(EdgeFiles(Path(e["edges_file"]).absolute(), Path(e["edge_types_file"]).absolute())
                  for e in conf.edges if e.get("enabled", True))
    return NetworkFiles(nodes=nodes, edges=edges, base_dir=Path.cwd())
