"""The points of a sweep: every combination the spec asks for, each with a stable identity.

A point's id is made from everything that decides its measurement (the network's full parameter set
and seed, ranks, threads, strategy, engine, repeat), so a rerun recognises finished points even when
the spec was edited around them, and an edited network parameter makes new points rather than
silently reusing old numbers. A network's key depends on the network alone, so every point on the
same (network, size, seed) shares one build.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

from bmtk_scaling.config.settings import Engine
from bmtk_scaling.errors import BmtkScalingError
from bmtk_scaling.sweep.spec import (
    MAX_POINTS,
    Grid,
    NetworkEntry,
    SpecError,
    SweepSpec,
    builder_parameters,
    read_spec,
)
from network_builders.registry import BUILDERS

CHECK_DRAW_MAX_EDGES = 5_000_000  # networks up to this size are drawn (no files, < 1 s) to check their parameters


@dataclass(frozen=True)
class NetworkPoint:
    """One network to build: an entry of the spec at one size and seed."""

    entry: str
    builder: str
    params_json: str  # every builder parameter (defaults filled in) and the seed, canonical JSON

    @property
    def params(self) -> dict[str, Any]:
        return json.loads(self.params_json)

    @property
    def seed(self) -> int:
        return int(self.params["seed"])

    @property
    def n_cells(self) -> int:
        return BUILDERS[self.builder].cell_count(self.params)

    @property
    def key(self) -> str:
        digest = hashlib.sha256(f"{self.builder}:{self.params_json}".encode()).hexdigest()[:10]
        return f"{self.entry}-{BUILDERS[self.builder].size_label(self.params)}-s{self.seed}-{digest}"


@dataclass(frozen=True)
class Point:
    network: NetworkPoint
    ranks: int
    threads: int
    strategy: str
    engine: Engine
    repeat: int
    size_index: int
    grid_index: int
    latency_ms: float | None = None  # ranks split over 2 emulated sites this far apart; None: one site
    exchange: str = "default"  # a name in EXCHANGE_PRESETS

    @property
    def id(self) -> str:
        extra = ("" if self.latency_ms is None else f"_lat{self.latency_ms:g}") + (
            "" if self.exchange == "default" else f"_x{self.exchange}")  # points without either keep their ids
        return (f"{self.network.key}_r{self.ranks}t{self.threads}_{self.strategy}_{self.engine}{extra}"
                f"_rep{self.repeat}")

    @property
    def site_map(self) -> str | None:
        """Two sites: the first half of the ranks on site 0, the rest on site 1 (None: one site)."""
        if self.latency_ms is None:
            return None
        return ",".join(str(r * 2 // self.ranks) for r in range(self.ranks))

    @property
    def gpu(self) -> bool:
        return self.engine.gpu

    @property
    def cores(self) -> int:
        return self.ranks * self.threads

    @property
    def shape(self) -> str:
        """The resources a point needs; points with the same shape share a SLURM job array."""
        return f"r{self.ranks}_t{self.threads}" + ("_gpu" if self.gpu else "")


def count_points(spec: SweepSpec, reduced: bool = False) -> int:
    """How many points the spec has (duplicates counted), without making them."""
    total = 0
    for grid in _grids(spec, reduced):
        shapes = sum(1 for r in grid.ranks for t in grid.threads
                     if grid.total_cores is None or r * t in grid.total_cores)
        per_size = (len(grid.seeds) * shapes * len(grid.strategies) * len(grid.engines) * grid.repeats
                    * len(grid.latencies or [None]) * len(grid.exchanges))
        for entry in spec.networks:
            if entry.valid and (grid.networks is None or entry.name in grid.networks):
                total += len((entry.reduced_sizes if reduced else entry.sizes) or []) * per_size
    return total


def _grids(spec: SweepSpec, reduced: bool) -> list[Grid]:
    if not reduced:
        return spec.grids
    missing = [n.name for n in spec.networks if n.reduced_sizes is None]
    if missing:
        raise SpecError(spec.source, [f"--reduced needs reduced_sizes for network(s) {missing}"])
    return [_override(g, spec.reduced_axes) for g in spec.grids]


def expand_points(spec: SweepSpec, reduced: bool = False, force: bool = False) -> list[Point]:
    """Every point of the spec in run order (repeat, grid, network, size, seed, ranks, threads, strategy,
    engine: points compared with each other run close in time); duplicates dropped.

    More than ``MAX_POINTS`` points are refused (counted first, never made) unless ``force``.
    """
    grids = _grids(spec, reduced)
    count = count_points(spec, reduced)
    if count > MAX_POINTS and not force:
        raise SpecError(spec.source, [f"the grid has {count:,} points, more than {MAX_POINTS:,}: shrink the axes or "
                                      "sizes, or pass --force to expand them anyway"])
    points, seen = [], set()
    for repeat in range(max(g.repeats for g in grids)):  # outermost: a disturbed minute hits one repeat only
        for gi, grid in enumerate(grids):
            if repeat >= grid.repeats:
                continue
            for entry in spec.networks:
                if not entry.valid or (grid.networks is not None and entry.name not in grid.networks):
                    continue
                sizes = entry.reduced_sizes if reduced else entry.sizes
                for si, size in enumerate(sizes):
                    for point in _grid_points(entry, size, si, gi, grid, repeat):
                        if point.id not in seen:
                            seen.add(point.id)
                            points.append(point)
    return points


def _override(grid: Grid, axes: dict[str, Any]) -> Grid:
    values = {**grid.__dict__, **axes}
    for key in ("ranks", "threads", "seeds"):
        if isinstance(values[key], int):
            values[key] = [values[key]]
    return Grid(**values)


def _grid_points(entry: NetworkEntry, size: dict, size_index: int, grid_index: int, grid: Grid, repeat: int):
    defaults = builder_parameters(entry.builder)
    for seed, ranks, threads, strategy, engine, latency, exchange in itertools.product(
            grid.seeds, grid.ranks, grid.threads, grid.strategies, grid.engines, grid.latencies or [None],
            grid.exchanges):
        if grid.total_cores is not None and ranks * threads not in grid.total_cores:
            continue
        params = {**defaults, **entry.params, **size, "seed": seed}
        for key in entry.scale_with_ranks:
            params[key] = params[key] * ranks
        net = NetworkPoint(entry.name, entry.builder, json.dumps(params, sort_keys=True))
        yield Point(net, ranks, threads, strategy, Engine(engine), repeat, size_index, grid_index, latency, exchange)


def load_points(path, reduced: bool = False, local: bool = True, force: bool = False
                ) -> tuple[SweepSpec, list[Point]]:
    """Read a spec and expand its points; one SpecError names every problem of both (nothing has run)."""
    spec, problems = read_spec(path)
    if spec is None:
        raise SpecError(str(path), problems)
    try:
        points = expand_points(spec, reduced, force=force)
    except SpecError as err:
        raise SpecError(spec.source, problems + err.problems) from None
    except (TypeError, ValueError, KeyError):  # axes too broken to expand: their problems are listed already
        if problems:
            raise SpecError(spec.source, problems) from None
        raise
    problems += point_problems(spec, points, local, structural_ok=not problems)
    if problems:
        raise SpecError(spec.source, problems)
    return spec, points


def check_points(spec: SweepSpec, points: list[Point], local: bool = True) -> None:
    """Raise SpecError naming every impossible point; see :func:`point_problems`."""
    problems = point_problems(spec, points, local)
    if problems:
        raise SpecError(spec.source, problems)


def point_problems(spec: SweepSpec, points: list[Point], local: bool = True, structural_ok: bool = True) -> list[str]:
    """Every impossible point (grouped), found before anything is built or run.

    ``local``: the points will run on this machine, so a GPU point needs GPU support here.
    """
    problems = []
    if not points and structural_ok:
        problems.append("the grid is empty: total_cores (or grids' networks) excludes every combination")
    too_many = sorted({(p.network.entry, p.network.n_cells, p.ranks) for p in points if p.ranks > p.network.n_cells})
    for entry, cells, ranks in too_many:
        problems.append(f"network {entry!r} with {cells} cells on {ranks} ranks: more ranks than cells; "
                        f"drop that size or rank count")
    threaded = sorted({p.threads for p in points if p.threads > 1 and p.engine == "neuron"})
    if threaded:
        problems.append(f"threads {threaded} with engine neuron: threads per rank are CoreNEURON's (nthread); "
                        "use engines [coreneuron] for those points (a grids: entry), or threads [1]")
    if local and (gpu := gpu_problem(points)):
        problems.append(gpu)
    problems += _builder_problems({p.network for p in points})
    return problems


def gpu_problem(points: list[Point]) -> str | None:
    """Why the GPU points among ``points`` cannot run on this machine, or None."""
    n = sum(p.gpu for p in points)
    if not n:
        return None
    from bmtk_scaling.environment import HOW_TO_GET_GPU, probe_gpu_support

    support = probe_gpu_support()
    if support.available:
        return None
    how = HOW_TO_GET_GPU.split(" Run without")[0]
    return (f"{n} point(s) use engine coreneuron_gpu, but {support.reason}. {how} Use engine coreneuron to run on "
            "this machine's CPU, or write SLURM scripts for a GPU cluster with --slurm DIR")


def _builder_problems(networks: set[NetworkPoint]) -> list[str]:
    """What the builders themselves refuse (e.g. a PING assembly too small for one I cell), drawn without files."""
    problems = []
    for net in sorted(networks, key=lambda n: n.key):
        builder = BUILDERS[net.builder]
        if builder.expected_edges(net.params) > CHECK_DRAW_MAX_EDGES:
            continue  # too large to draw here; the builder checks it when it builds
        try:
            builder.spec(**net.params)
        except BmtkScalingError as err:
            problems.append(f"network {net.entry!r} at {builder.size_label(net.params)}: {err}")
    return problems
