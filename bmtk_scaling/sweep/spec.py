"""The sweep spec (YAML): what a scaling study runs, checked completely before anything runs.

A spec names networks (a builder, fixed parameters and a list of sizes) and the axes of a grid:
ranks, threads, partition strategies, engines, seeds and repeats. ``grids`` (optional) is a list
of axis overrides whose points are added together, so one study can cross NEURON over 1-3 ranks
with CoreNEURON over ranks x threads without impossible points. Every problem in a spec is
collected and reported at once (``SpecError``, a BmtkScalingError: the CLI exits 2), because a sweep that
fails on point 40 of 60 for a typo costs an afternoon.

    name: pesce_strong_scaling
    networks:
      - name: ping                       # label in results (default: the builder)
        builder: ping                    # ping | pairs | cliques
        params: {n_assemblies: 2, tstop: 300}
        sizes: [{cells_per_assembly: 500}, {cells_per_assembly: 1000}]   # or {cells_per_assembly: [500, 1000]}
        reduced_sizes: [{cells_per_assembly: 50}]                        # used by --reduced (CI)
        scale_with_ranks: [n_assemblies] # weak scaling: these parameters are multiplied by the rank count
    ranks: [1, 2, 3]
    threads: [1]
    strategies: [round_robin]
    engines: [neuron]                    # neuron | coreneuron | coreneuron_gpu
    seeds: [0]
    repeats: 1
    latencies: [0.1, 10]                 # emulated sites: ranks split over 2 sites this far apart (ms one way)
    exchanges: [default, compress]       # spike-exchange presets (EXCHANGE_PRESETS)
    total_cores: [2]                     # keep only points with ranks x threads in this list
    grids: [{engines: [coreneuron], ranks: [1, 2], threads: [1, 2], total_cores: [2]}]
    reduced: {ranks: [1, 2]}             # axis overrides used by --reduced
    timeout_s: 600                       # per run
    figures: [{name: fig, x: n_cells, y: simulate_s, hue: engine, ratio: [random, by_assembly],
               where: {exchange: default}}]   # where: only the rows with these column values
    analyses: [strong_scaling, load_balance]   # standard report figures to draw (default: all the data supports)
    statistic: min                       # repeats combined by min (shared machine) or median (default)
    slurm: {partition: gpu, account: abc, time: "01:00:00", cores_per_node: 64, gpus_per_node: 4}
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bmtk_scaling.config.settings import Engine
from bmtk_scaling.errors import BmtkScalingError, SpecError
from bmtk_scaling.partition import STRATEGY_NAMES
from bmtk_scaling.sweep.columns import figure_columns
from network_builders.registry import BUILDERS

ENGINES = tuple(e.value for e in Engine)
AXES = ("ranks", "threads", "strategies", "engines", "seeds", "repeats", "total_cores", "latencies", "exchanges")
# Named spike-exchange settings a sweep can cross (bmtk_scaling.exchange; docs/sites.md).
EXCHANGE_PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "no_step_wait": {"step_wait": False},
    "compress": {"spike_compress": 100},
    "compress_no_step_wait": {"spike_compress": 100, "step_wait": False},
    "multisend": {"multisend": True},
}
TOP_KEYS = {"name", "description", "paper", "networks", "timeout_s", "figures", "analyses", "statistic", "slurm",
            "grids", "reduced", *AXES}
ANALYSES = ("strong_scaling", "weak_scaling", "memory_scaling", "ranks_threads", "load_balance")
NETWORK_KEYS = {"name", "builder", "params", "sizes", "reduced_sizes", "scale_with_ranks"}
GRID_KEYS = {*AXES, "networks"}
FIGURE_KEYS = {"name", "x", "y", "hue", "style", "ratio", "logx", "logy", "title", "caption", "where"}
SLURM_KEYS = {"partition", "account", "time", "prepare_time", "cores_per_node", "gpus_per_node", "qos", "constraint",
              "setup", "extra", "mpi_lib"}
MAX_POINTS = 100_000  # more points than this are refused before they are expanded, unless forced
DEFAULT_AXES: dict[str, Any] = {"ranks": [1], "threads": [1], "strategies": ["round_robin"], "engines": ["neuron"],
                                "seeds": [0], "repeats": 1, "total_cores": None, "latencies": None,
                                "exchanges": ["default"]}


@dataclass(frozen=True)
class NetworkEntry:
    name: str
    builder: str
    params: dict[str, Any]
    sizes: list[dict[str, Any]]
    reduced_sizes: list[dict[str, Any]] | None
    scale_with_ranks: tuple[str, ...] = ()
    valid: bool = True  # False: it has problems (reported), so no point is made from it


@dataclass(frozen=True)
class Grid:
    ranks: list[int]
    threads: list[int]
    strategies: list[str]
    engines: list[str]
    seeds: list[int]
    repeats: int
    total_cores: list[int] | None
    networks: list[str] | None = None  # entry names this grid applies to (None: all)
    latencies: list[float] | None = None  # one-way ms between 2 emulated sites; None: one site, no shim
    exchanges: list[str] = field(default_factory=lambda: ["default"])  # names in EXCHANGE_PRESETS


@dataclass(frozen=True)
class FigureSpec:
    name: str
    x: str
    y: str = "simulate_s"
    hue: str | None = None
    style: str | None = None
    ratio: tuple[str, str] | None = None  # two values of ``hue``: also plot y(first) / y(second)
    logx: bool = False
    logy: bool = False
    title: str | None = None
    caption: str | None = None
    where: tuple[tuple[str, Any], ...] = ()  # only rows whose column equals the value, e.g. {exchange: default}


@dataclass(frozen=True)
class SlurmOptions:
    partition: str | None = None
    account: str | None = None
    time: str | None = None  # per point job, [D-]HH:MM:SS; default: timeout_s + 10 min
    prepare_time: str | None = None  # the job that builds networks and maps; default 02:00:00
    cores_per_node: int = 32
    gpus_per_node: int = 1
    qos: str | None = None
    constraint: str | None = None
    setup: tuple[str, ...] = ()  # shell lines run first (module load, source venv/bin/activate)
    extra: tuple[str, ...] = ()  # further #SBATCH options, e.g. "--mem=0"
    mpi_lib: str | None = None  # the cluster's libmpi for NEURON (MPI_LIB_NRN_PATH)


@dataclass
class SweepSpec:
    name: str
    source: str
    text: str
    networks: list[NetworkEntry]
    grids: list[Grid]
    timeout_s: float = 3600.0
    description: str = ""
    paper: str = ""
    figures: list[FigureSpec] = field(default_factory=list)
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    reduced_axes: dict[str, Any] = field(default_factory=dict)
    analyses: tuple[str, ...] = ANALYSES  # the standard analyses the report draws (where the data supports them)
    statistic: str = "median"  # how repeats are combined: median, or min (the least disturbed on a shared machine)


def builder_parameters(builder: str) -> dict[str, Any]:
    """Every parameter of a builder's ``*_spec`` function with its default."""
    return BUILDERS[builder].defaults()


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a spec file's structure; raise SpecError listing every problem.

    :func:`bmtk_scaling.sweep_grid.load_points` also checks the grid's points (one error for both).
    """
    spec, problems = read_spec(path)
    if problems:
        raise SpecError(spec.source if spec else str(path), problems)
    return spec


def read_spec(path: str | Path) -> tuple[SweepSpec | None, list[str]]:
    """The spec (its valid parts) and the problems found; None when it cannot be read at all."""
    path = Path(path)
    if not path.is_file():
        raise BmtkScalingError(f"sweep spec {path} not found")
    return _parse(path.read_text(), str(path))


def parse_spec(text: str, source: str = "<spec>") -> SweepSpec:
    """Check a spec given as YAML text (structure, names, values); raise SpecError on any problem."""
    spec, problems = _parse(text, source)
    if problems:
        raise SpecError(source, problems)
    return spec


def _parse(text: str, source: str) -> tuple[SweepSpec | None, list[str]]:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        return None, [f"not valid YAML: {err}"]
    if not isinstance(raw, dict):
        return None, ["the spec must be a mapping of keys (name, networks, ranks, ...)"]
    problems: list[str] = []
    _unknown(raw, TOP_KEYS, "the spec", problems)
    name = raw.get("name") or Path(source).stem
    if not isinstance(name, str) or not name.replace("-", "_").replace(".", "_").isidentifier():
        problems.append(f"name {name!r} must be a word of letters, digits, '_', '-' or '.' (it names files)")
        name = "sweep"
    networks = _networks(raw.get("networks"), problems)
    base = {k: raw.get(k, DEFAULT_AXES[k]) for k in AXES}
    grids = []
    grid_overrides = raw.get("grids") or [{}]
    if not isinstance(grid_overrides, list) or not all(isinstance(g, dict) for g in grid_overrides):
        problems.append("grids must be a list of mappings of axis overrides")
        grid_overrides = [{}]
    names = {n.name for n in networks}
    for i, override in enumerate(grid_overrides):
        where = f"grids[{i}]" if raw.get("grids") else "the spec"
        _unknown(override, GRID_KEYS, where, problems)
        grids.append(_grid({**base, **override}, where, names, problems))
    reduced = raw.get("reduced") or {}
    if not isinstance(reduced, dict):
        problems.append("reduced must be a mapping of axis overrides, e.g. {ranks: [1, 2]}")
        reduced = {}
    _unknown(reduced, set(AXES), "reduced", problems)
    _grid({**DEFAULT_AXES, **reduced}, "reduced", names, problems)  # its own values only
    timeout = raw.get("timeout_s", 3600.0)
    if (isinstance(timeout, bool) or not isinstance(timeout, int | float) or not math.isfinite(timeout)
            or timeout <= 0):
        problems.append(f"timeout_s must be a positive, finite number of seconds, got {timeout!r}")
        timeout = 3600.0
    figures = _figures(raw.get("figures") or [], networks, problems)
    analyses = raw.get("analyses", list(ANALYSES))
    analyses = [analyses] if isinstance(analyses, str) else analyses
    if not isinstance(analyses, list) or set(analyses) - set(ANALYSES):
        problems.append(f"analyses must be a list of some of {list(ANALYSES)}, got {analyses!r}")
        analyses = list(ANALYSES)
    statistic = raw.get("statistic", "median")
    if statistic not in ("median", "min"):
        problems.append(f"statistic must be median or min (how repeats are combined), got {statistic!r}")
        statistic = "median"
    slurm = _slurm(raw.get("slurm") or {}, problems)
    spec = SweepSpec(name=name, source=source, text=text, networks=networks, grids=grids, timeout_s=float(timeout),
                     description=str(raw.get("description") or "").strip(), paper=str(raw.get("paper") or ""),
                     figures=figures, slurm=slurm, reduced_axes={k: v for k, v in reduced.items() if k in AXES},
                     analyses=tuple(analyses), statistic=statistic)
    return spec, problems


def _unknown(mapping: dict, known: set[str], where: str, problems: list[str]) -> None:
    extra = sorted(set(mapping) - known, key=str)
    if extra:
        problems.append(f"unknown key{'s' if len(extra) > 1 else ''} {extra} in {where}; known: {sorted(known)}")


def _networks(raw: Any, problems: list[str]) -> list[NetworkEntry]:
    if not isinstance(raw, list) or not raw:
        problems.append("networks must be a non-empty list, e.g. [{builder: ping, sizes: [{cells_per_assembly: 250}]}]")
        return []
    entries, seen = [], set()
    for i, net in enumerate(raw):
        where = f"networks[{i}]"
        if not isinstance(net, dict):
            problems.append(f"{where} must be a mapping with at least 'builder'")
            continue
        _unknown(net, NETWORK_KEYS, where, problems)
        builder = net.get("builder")
        if builder not in BUILDERS:
            problems.append(f"{where}: builder must be one of {list(BUILDERS)}, got {builder!r}")
            continue
        name = str(net.get("name") or builder)
        where = f"network {name!r}"
        if name in seen:
            problems.append(f"{where} is listed twice: give each entry its own name")
        seen.add(name)
        defaults = builder_parameters(builder)
        before = len(problems)
        params = net.get("params") or {}
        if not isinstance(params, dict):
            problems.append(f"{where}: params must be a mapping of builder parameters")
            params = {}
        _check_params(builder, params, defaults, f"{where} params", problems)
        sizes = _sizes(net.get("sizes"), builder, defaults, f"{where} sizes", problems) or [{}]
        reduced = None
        if "reduced_sizes" in net:
            reduced = _sizes(net["reduced_sizes"], builder, defaults, f"{where} reduced_sizes", problems)
        scale = net.get("scale_with_ranks") or []
        scale = [scale] if isinstance(scale, str) else scale
        for key in scale:
            if not isinstance(defaults.get(key), int) or isinstance(defaults.get(key), bool) or key == "seed":
                ints = sorted(k for k, v in defaults.items() if isinstance(v, int) and k != "seed")
                problems.append(f"{where}: scale_with_ranks names {key!r}, which is not an integer size parameter "
                                f"of {builder} (one of {ints})")
        entries.append(NetworkEntry(name=name, builder=builder, params=dict(params), sizes=sizes,
                                    reduced_sizes=reduced, scale_with_ranks=tuple(scale),
                                    valid=len(problems) == before))
    return entries


def _sizes(raw: Any, builder: str, defaults: dict, where: str, problems: list[str]) -> list[dict]:
    """A list of parameter mappings, or one mapping of lists (their cartesian product)."""
    if raw is None:
        return []
    if isinstance(raw, dict):
        lists = {k: v if isinstance(v, list) else [v] for k, v in raw.items()}
        count = math.prod(len(v) for v in lists.values())
        if count > MAX_POINTS:
            problems.append(f"{where} is a product of {count:,} sizes, more than a sweep can hold ({MAX_POINTS:,}): "
                            "list fewer values")
            return []
        raw = [dict(zip(lists, combo, strict=True)) for combo in itertools.product(*lists.values())]
    if not isinstance(raw, list) or not raw or not all(isinstance(s, dict) for s in raw):
        problems.append(f"{where} must be a non-empty list of parameter mappings, e.g. [{{cells_per_assembly: 250}}]")
        return []
    for size in raw:
        _check_params(builder, size, defaults, where, problems)
    return [dict(s) for s in raw]


def _check_params(builder: str, params: dict, defaults: dict, where: str, problems: list[str]) -> None:
    """Names the builder takes and values of the right kind; the builder checks the rest when it builds."""
    for key, value in params.items():
        if key == "seed":
            problems.append(f"{where}: 'seed' is an axis of the sweep; list it under seeds: [...]")
            continue
        if key not in defaults:
            problems.append(f"{where}: {builder} has no parameter {key!r}; it takes {sorted(defaults)}")
            continue
        default = defaults[key]
        if isinstance(default, bool) or isinstance(value, bool):
            ok = isinstance(value, bool) and isinstance(default, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int)
        else:  # float or None (optional float)
            ok = value is None or isinstance(value, int | float)
        if not ok:
            problems.append(f"{where}: {key} must be {type(default).__name__ if default is not None else 'a number'}, "
                            f"got {value!r}")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                problems.append(f"{where}: {key} must be a finite number, got {value!r}")
            elif (key.startswith("p_") or key.endswith("_fraction")) and not 0 <= value <= 1:
                problems.append(f"{where}: {key} must be a probability in [0, 1], got {value!r}")
            elif key in ("tstop", "dt", "delay") and value <= 0:
                problems.append(f"{where}: {key} must be positive, got {value!r}")
            elif isinstance(default, int) and value < 1:
                problems.append(f"{where}: {key} must be a positive integer, got {value!r}")


def _int_list(value: Any, name: str, where: str, problems: list[str], minimum: int = 1) -> list[int]:
    value = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in value)):
        problems.append(f"{where}: {name} must be a non-empty list of integers >= {minimum}, got {value!r}")
        return []
    return sorted(set(value))


def _name_list(value: Any, name: str, allowed, where: str, problems: list[str]) -> list[str]:
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not value:
        problems.append(f"{where}: {name} must be a non-empty list, one or more of {list(allowed)}")
        return []
    bad = [v for v in value if v not in allowed]
    if bad:
        problems.append(f"{where}: unknown {name} {bad}; choose from {list(allowed)}")
    return list(dict.fromkeys(v for v in value if v in allowed))


def _grid(axes: dict, where: str, network_names: set[str], problems: list[str]) -> Grid:
    repeats = axes.get("repeats", 1)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        problems.append(f"{where}: repeats must be a positive integer, got {repeats!r}")
        repeats = 1
    cores = axes.get("total_cores")
    cores = None if cores is None else _int_list(cores, "total_cores", where, problems)
    only = axes.get("networks")
    if only is not None:
        only = [only] if isinstance(only, str) else only
        unknown = [n for n in only if n not in network_names] if isinstance(only, list) else [only]
        if unknown:
            problems.append(f"{where}: networks {unknown} are not entries of networks: {sorted(network_names)}")
    return Grid(ranks=_int_list(axes.get("ranks"), "ranks", where, problems),
                threads=_int_list(axes.get("threads"), "threads", where, problems),
                strategies=_name_list(axes.get("strategies"), "strategies", STRATEGY_NAMES, where, problems),
                engines=_name_list(axes.get("engines"), "engines", ENGINES, where, problems),
                seeds=_int_list(axes.get("seeds"), "seeds", where, problems, minimum=0),
                repeats=repeats, total_cores=cores, networks=only,
                latencies=_latencies(axes.get("latencies"), where, problems),
                exchanges=_name_list(axes.get("exchanges", ["default"]), "exchanges", tuple(EXCHANGE_PRESETS),
                                     where, problems))


def _latencies(value: Any, where: str, problems: list[str]) -> list[float] | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    good = [float(v) for v in items if isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 10000]
    if len(good) != len(items) or not good:
        problems.append(f"{where}: latencies must be a list of one-way latencies in ms (0 to 10000), got {value!r}")
    return good or None


def _figures(raw: Any, networks: list[NetworkEntry], problems: list[str]) -> list[FigureSpec]:
    if not isinstance(raw, list):
        problems.append("figures must be a list of mappings with at least 'name' and 'x'")
        return []
    params = set().union(*(builder_parameters(n.builder) for n in networks)) if networks else set()
    columns = figure_columns() | params
    figures, names = [], set()
    for i, fig in enumerate(raw):
        where = f"figures[{i}]"
        if not isinstance(fig, dict):
            problems.append(f"{where} must be a mapping with at least 'name' and 'x'")
            continue
        _unknown(fig, FIGURE_KEYS, where, problems)
        name = fig.get("name")
        if not isinstance(name, str) or not name.replace("-", "_").isidentifier() or name in names:
            problems.append(f"{where}: name must be a unique word (it names the PNG), got {name!r}")
        names.add(name)
        for key in ("x", "y", "hue", "style"):
            value = fig.get(key)
            if (key == "x" or value is not None) and value not in columns:
                problems.append(f"{where}: {key} {value!r} is not a results column or a builder parameter; "
                                f"columns include {sorted(figure_columns())[:12]} ...")
        ratio = fig.get("ratio")
        if ratio is not None and (not isinstance(ratio, list) or len(ratio) != 2 or not fig.get("hue")):
            problems.append(f"{where}: ratio must be two values of hue, e.g. [random, by_assembly] with hue: strategy")
        only = fig.get("where") or {}
        if not isinstance(only, dict) or any(k not in columns for k in only):
            problems.append(f"{where}: where must map results columns to the value rows must have, e.g. "
                            f"{{exchange: default}}, got {only!r}")
            only = {}
        kwargs = {k: fig[k] for k in FIGURE_KEYS & set(fig) if k not in ("ratio", "where")}
        figures.append(FigureSpec(**kwargs, ratio=tuple(ratio) if ratio else None,
                                  where=tuple(sorted(only.items()))))
    return figures


def _slurm(raw: Any, problems: list[str]) -> SlurmOptions:
    if not isinstance(raw, dict):
        problems.append("slurm must be a mapping (partition, account, time, cores_per_node, gpus_per_node, ...)")
        return SlurmOptions()
    _unknown(raw, SLURM_KEYS, "slurm", problems)
    for key in ("cores_per_node", "gpus_per_node"):
        value = raw.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(f"slurm: {key} must be a positive integer, got {value!r}")
    for key in ("time", "prepare_time"):
        if raw.get(key) is not None and not _is_slurm_time(str(raw[key])):
            problems.append(f"slurm: {key} must be [D-]HH:MM:SS, got {raw[key]!r}")
    opts = {k: v for k, v in raw.items() if k in SLURM_KEYS}
    for key in ("setup", "extra"):
        value = opts.get(key, [])
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(f"slurm: {key} must be a list of strings")
            value = []
        opts[key] = tuple(value)
    try:
        return SlurmOptions(**opts)
    except TypeError:
        return SlurmOptions()


def _is_slurm_time(value: str) -> bool:
    days, _, clock = value.rpartition("-")
    parts = clock.split(":")
    return (not days or days.isdigit()) and len(parts) == 3 and all(p.isdigit() for p in parts)
