"""The node -> rank map file: made for one network and one rank count, checked before any cell is built.

An HDF5 file, by default ``<network folder>/partitions/<strategy>_<ranks>.h5``:

    /populations/<population>/node_id   int64   every non-virtual node of the population
    /populations/<population>/rank      int32   the MPI rank that builds it
    attributes of /: format ("bmtk_scaling.partition.map_file"), format_version (1), strategy, n_ranks, seed,
        options (JSON), fingerprint (JSON: sha256 of the network's files, see fingerprint.py),
        metrics (JSON, see partition_metrics.py), created_by

A map is only valid for the network whose fingerprint it records and for a run on exactly
``n_ranks`` MPI ranks; ``check_map`` says what is wrong otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from bmtk_scaling.atomic import Protected, atomic_file
from bmtk_scaling.errors import BmtkScalingError, PartitionError
from bmtk_scaling.partition.metrics import evaluate
from bmtk_scaling.partition.strategies import partition
from bmtk_scaling.sonata.configs import NetworkFiles, network_files
from bmtk_scaling.sonata.fingerprint import network_fingerprint
from bmtk_scaling.sonata.graph import NodePopulation, read_graph

FORMAT = "bmtk_scaling.partition.map_file"
FORMAT_VERSION = 1
PARTITIONS_DIR = "partitions"


@dataclass
class PartitionMap:
    strategy: str
    n_ranks: int
    seed: int
    fingerprint: dict[str, str]
    assignment: dict[str, tuple[np.ndarray, np.ndarray]]  # population -> (node ids, ranks)
    options: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    cost_model: str = "synapses"  # "measured": cell types' NEURON complexity + synapses; "synapses": 1 + synapses


def make_map(config: str | Path, n_ranks: int, strategy: str, *, seed: int = 0,
             cell_costs: dict[str, dict[int, float]] | None = None, **options) -> PartitionMap:
    """Partition the network of a simulation/circuit config with ``strategy`` for ``n_ranks`` ranks.

    ``cell_costs``: each cell type's own compute cost (population -> node type id -> cost), as
    :mod:`bmtk_scaling.bionet.complexity` measures it; without it every cell costs 1 plus its synapses.
    """
    files = network_files(config)
    graph = read_graph(files)
    if cell_costs:
        graph.set_cell_costs(cell_costs)
    ranks = partition(graph, n_ranks, strategy, seed=seed, **options)
    metrics = evaluate(graph, ranks, n_ranks)
    assignment = {}
    for pop in graph.populations:
        if pop.n_cells:
            lo = pop.first_vertex
            assignment[pop.name] = (pop.node_ids[pop.cell_rows], ranks[lo:lo + pop.n_cells].astype(np.int32))
    return PartitionMap(strategy=strategy, n_ranks=int(n_ranks), seed=int(seed), options=dict(options),
                        fingerprint=network_fingerprint(files), assignment=assignment, metrics=metrics.as_dict(),
                        cost_model="measured" if cell_costs else "synapses")


def default_map_path(files: NetworkFiles, strategy: str, n_ranks: int, seed: int = 0) -> Path:
    """``<network folder>/partitions/<strategy>_<ranks>[_seed<N>].h5``."""
    suffix = f"_seed{seed}" if seed else ""
    return files.base_dir / PARTITIONS_DIR / f"{strategy}_{n_ranks}{suffix}.h5"


MAP_KIND = "partition map"


def is_map_file(path: str | Path) -> bool:
    """Whether ``path`` is a partition map this tool wrote (the only file ``partition --overwrite`` replaces)."""
    try:
        read_map(path)
    except BmtkScalingError:
        return False
    return True


def write_map(pmap: PartitionMap, path: str | Path, overwrite: bool = False, protected: Protected | None = None,
              option: str = "--out") -> Path:
    """Write ``pmap`` to ``path`` atomically (readers never see half a map), through the gate
    (:func:`~bmtk_scaling.atomic.claim`): only a map is ever replaced, and only when asked."""
    path = Path(path).absolute()
    with atomic_file(path, overwrite=overwrite, kind=MAP_KIND, option=option, protected=protected,
                     recognise=is_map_file) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs.update({
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "strategy": pmap.strategy,
            "n_ranks": pmap.n_ranks,
            "seed": pmap.seed,
            "options": json.dumps(pmap.options, sort_keys=True),
            "fingerprint": json.dumps(pmap.fingerprint, sort_keys=True),
            "metrics": json.dumps(pmap.metrics, sort_keys=True),
            "created_by": f"bmtk-scaling {_version()}",
            "cost_model": pmap.cost_model,
        })
        for name, (ids, ranks) in pmap.assignment.items():
            grp = h5.create_group(f"populations/{name}")
            grp.create_dataset("node_id", data=np.asarray(ids, dtype=np.int64))
            grp.create_dataset("rank", data=np.asarray(ranks, dtype=np.int32))
    return path


def read_map(path: str | Path) -> PartitionMap:
    """Read a map file; raise PartitionError if it is missing or not a partition map."""
    path = Path(path)
    if not path.is_file():
        raise PartitionError(f"partition map {path} not found")
    try:
        with h5py.File(path, "r") as h5:
            attrs = dict(h5.attrs)
            if attrs.get("format") != FORMAT:
                raise PartitionError(f"{path} is not a bmtk-scaling partition map (format {attrs.get('format')!r})")
            if int(attrs.get("format_version", -1)) != FORMAT_VERSION:
                raise PartitionError(f"partition map {path} has format version {attrs.get('format_version')}, "
                                 f"this bmtk-scaling reads {FORMAT_VERSION}")
            assignment = {name: (grp["node_id"][()].astype(np.int64), grp["rank"][()].astype(np.int64))
                          for name, grp in h5.get("populations", {}).items()}
    except OSError as err:
        raise PartitionError(f"cannot read partition map {path}: {err}") from err
    return PartitionMap(strategy=str(attrs["strategy"]), n_ranks=int(attrs["n_ranks"]), seed=int(attrs["seed"]),
                        fingerprint=json.loads(attrs["fingerprint"]), assignment=assignment,
                        options=json.loads(attrs.get("options", "{}")), metrics=json.loads(attrs.get("metrics", "{}")),
                        cost_model=str(attrs.get("cost_model", "synapses")))


def check_map(pmap: PartitionMap, populations: list[NodePopulation], fingerprint: dict[str, str],
              n_ranks: int | None, where: str = "partition map") -> None:
    """Raise ValueError naming the first reason ``pmap`` cannot place this network on ``n_ranks`` ranks.

    Reasons: another rank count, ranks out of range, nodes missing, repeated or unknown, populations
    the network does not have, or a network whose files changed since the map was made.
    """
    if n_ranks is not None and pmap.n_ranks != n_ranks:
        raise PartitionError(f"{where} was made for {pmap.n_ranks} ranks, but this run has {n_ranks} MPI ranks: "
                         f"run with mpiexec -n {pmap.n_ranks}, or make a map for {n_ranks} ranks "
                         f"(bmtk-scaling partition CONFIG --ranks {n_ranks} ...)")
    cells = {p.name: p for p in populations if p.n_cells}
    unknown = sorted(set(pmap.assignment) - set(cells))
    if unknown:
        raise PartitionError(f"{where} places populations {unknown} that the network does not have (or has no cells)")
    for name, pop in cells.items():
        if name not in pmap.assignment:
            raise PartitionError(f"{where} misses population {name!r} ({pop.n_cells} cells)")
        ids, ranks = pmap.assignment[name]
        if ids.shape != ranks.shape:
            raise PartitionError(f"{where}: population {name!r} has {ids.size} node ids but {ranks.size} ranks")
        uniq, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            raise PartitionError(f"{where} places nodes of {name!r} more than once: node ids "
                             f"{uniq[counts > 1][:10].tolist()}")
        expected = pop.node_ids[pop.cell_rows]
        missing = np.setdiff1d(expected, uniq)
        if missing.size:
            raise PartitionError(f"{where} misses {missing.size} of the {expected.size} nodes of {name!r}: "
                             f"node ids {missing[:10].tolist()}")
        extra = np.setdiff1d(uniq, expected)
        if extra.size:
            raise PartitionError(f"{where} places {extra.size} nodes {name!r} does not have (or that are virtual): "
                             f"node ids {extra[:10].tolist()}")
        bad = (ranks < 0) | (ranks >= pmap.n_ranks)
        if bad.any():
            raise PartitionError(f"{where}: ranks {np.unique(ranks[bad])[:10].tolist()} are outside "
                                 f"0..{pmap.n_ranks - 1}")
    used = np.concatenate([ranks for _, ranks in pmap.assignment.values()] or [np.zeros(0, np.int64)])
    empty = np.setdiff1d(np.arange(pmap.n_ranks), used)
    if empty.size:
        raise PartitionError(f"{where} leaves {empty.size} of its {pmap.n_ranks} ranks without a cell (ranks "
                             f"{empty[:10].tolist()}): make a map for fewer ranks")
    if pmap.fingerprint.get("sha256") != fingerprint.get("sha256"):
        changed = sorted(k for k in set(fingerprint) | set(pmap.fingerprint)
                         if k != "sha256" and fingerprint.get(k) != pmap.fingerprint.get(k))
        raise PartitionError(f"{where} was made for another network: its fingerprint differs in "
                         f"{changed or ['the set of files']}; make a new map for this network "
                         "(bmtk-scaling partition CONFIG ...)")


def load_checked_map(path: str | Path, files: NetworkFiles, populations: list[NodePopulation],
                     n_ranks: int | None) -> PartitionMap:
    """Read ``path`` and check it against the network files and the run's rank count."""
    pmap = read_map(path)
    check_map(pmap, populations, network_fingerprint(files), n_ranks, where=f"partition map {path}")
    return pmap


def _version() -> str:
    from bmtk_scaling import __version__

    return __version__

