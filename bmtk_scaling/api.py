"""The public API: one function per step of the main job, the same steps the CLI commands take.

    build_network -> partition_network -> configure_simulation -> run_simulation / compare_engines
    -> run_sweep -> make_report

Each is importable from the package top (``from bmtk_scaling import partition_network``); their
names are not those of the subpackages (``bmtk_scaling.partition``, ``bmtk_scaling.run``, ...),
which Python would otherwise put in their place once imported.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bmtk_scaling.config.settings import NESTED_FIELDS, options


def build_network(network: str, out_dir: str | Path, *, overwrite: bool = False, compression: str = "none",
                  force: bool = False, **parameters: Any):
    """Build benchmark network ``network`` (``ping``, ``pairs`` or ``cliques``) into ``out_dir``.

    ``parameters`` are the builder's (see ``ping_assembly``, ``n_pairs``, ``nk_cliques``, whose
    signatures list them with their types and defaults). Returns the ``BuiltNetwork``.
    """
    from network_builders.registry import get_builder

    return get_builder(network).build(out_dir, overwrite=overwrite, compression=compression, force=force,
                                      **parameters)


@dataclass(frozen=True)
class PartitionResult:
    map_file: Path
    config: Path | None  # the new simulation config naming the map, when one was asked for
    metrics: dict  # synapses cut, communication volume, per-rank cells and cost, imbalance, min delay


def partition_network(config: str | Path, ranks: int, strategy: str = "metis", *, seed: int = 0,
                      edge_weight: str = "synapses", out: str | Path | None = None,
                      config_out: str | Path | None = None, overwrite: bool = False,
                      cost: str = "auto") -> PartitionResult:
    """Place the cells of a network on ``ranks`` MPI ranks with ``strategy``; write the map file.

    ``config`` is the network's simulation or circuit config. ``out`` defaults to
    ``<network>/partitions/<strategy>_<ranks>.h5``; ``config_out`` also writes a new simulation config
    that names the map. Existing files are replaced only with ``overwrite``. ``cost``: what a cell
    weighs, ``synapses`` (1 + its synapses), ``measured`` (its type's NEURON complexity + its
    synapses, one cell of each type built to measure it), or ``auto`` (measured where cells have
    morphologies).
    """
    from bmtk_scaling.atomic import claim
    from bmtk_scaling.config.derive import config_out_path, write_config_with_partition
    from bmtk_scaling.errors import PartitionError
    from bmtk_scaling.partition import METIS_STRATEGIES
    from bmtk_scaling.partition.map_file import MAP_KIND, default_map_path, is_map_file, make_map, write_map
    from bmtk_scaling.sonata.configs import load_config, network_files, protected_inputs
    from bmtk_scaling.sonata.validate import check_network

    files = network_files(config)
    out = Path(out).absolute() if out is not None else default_map_path(files, strategy, ranks, seed)
    protected = protected_inputs(load_config(config))
    # Every path is checked before the work (and only a map is ever replaced), so nothing is written on a refusal.
    map_target = claim(out, MAP_KIND, folder=False, overwrite=overwrite, option="--out", protected=protected,
                       recognise=is_map_file)
    if config_out is not None:
        config_target = config_out_path(config, config_out, overwrite)
        if Path(os.path.realpath(config_target)) == map_target:
            raise PartitionError(f"--out and --config-out both name {map_target}: give the map and the new config "
                                 "each a path of its own")
    check_network(files)  # ids, types and weights bionet would read: refused here, not as a traceback
    options = {"edge_weight": edge_weight} if strategy in METIS_STRATEGIES else {}
    pmap = make_map(config, ranks, strategy, seed=seed, cell_costs=cell_costs(config, cost), **options)
    map_file = write_map(pmap, out, overwrite=overwrite, protected=protected)
    written = (write_config_with_partition(config, map_file, config_out, overwrite=overwrite)
               if config_out is not None else None)
    return PartitionResult(map_file=map_file, config=written, metrics=pmap.metrics)


COST_MODELS = ("auto", "measured", "synapses")


def cell_costs(config: str | Path, cost: str = "auto") -> dict | None:
    """Each cell type's own cost for partitioning (see :func:`partition_network`); None: 1 per cell."""
    import pandas as pd

    from bmtk_scaling.errors import PartitionError
    from bmtk_scaling.sonata.configs import network_files

    files = network_files(config)
    if cost not in COST_MODELS:
        raise PartitionError(f"cost must be one of {COST_MODELS}, got {cost!r}")
    if cost == "auto":
        types = [pd.read_csv(nf.node_types_file, sep=" ") for nf in files.nodes]
        cost = "measured" if any("morphology" in t and t["morphology"].notna().any() for t in types) else "synapses"
    if cost == "synapses":
        return None
    from bmtk_scaling.bionet.complexity import measure_cell_costs
    from bmtk_scaling.run.preflight import plan_run

    plan = plan_run(config, 1, check_output=False, check_memory=False) if _is_simulation(config) else None
    return measure_cell_costs(Path(config), plan.mechanisms_dir if plan else None)


def _is_simulation(config: str | Path) -> bool:
    from bmtk_scaling.sonata.configs import load_config

    return load_config(config).is_simulation


def configure_simulation(config: str | Path, out: str | Path, *, overwrite: bool = False, **settings: Any) -> Path:
    """Write a new simulation config at ``out``: ``config`` with the given settings changed.

    A ``partition`` map is checked against the network first; a GPU engine needs GPU support here; a
    CoreNEURON engine gets the mechanism checks ``run`` makes (the user's mod files are compiled into
    the cache for it), so a network CoreNEURON cannot run is refused here, naming why.
    """
    from bmtk_scaling.config.derive import checked_partition_reference, claim_config_out, derive_config, write_config
    from bmtk_scaling.config.settings import read_settings
    from bmtk_scaling.sonata.configs import load_config, network_files

    loaded = load_config(config)
    claim_config_out(loaded, Path(out), overwrite, "--out")  # before anything else is checked or measured
    network_files(loaded.path)  # the config names a network whose files exist: a config that runs
    if settings.get("partition") is not None:
        settings["partition"] = checked_partition_reference(loaded.path, settings["partition"])
    new = derive_config(loaded.data, **settings)
    chosen = read_settings(new)
    engine = chosen.engine
    ignored = [o for o in options() if o.name in NESTED_FIELDS["coreneuron"] and settings.get(o.name) is not None]
    if ignored and not engine.is_coreneuron:
        from bmtk_scaling.errors import ConfigError

        flags = ", ".join(f"--{o.cli}" for o in ignored)
        raise ConfigError(f"{flags}: CoreNEURON option(s) that the engine {engine.value} ignores (they would be "
                          "written and never used): drop them, or choose --engine coreneuron")
    if engine.gpu:
        from bmtk_scaling.environment import require_gpu_support

        require_gpu_support()
    if chosen.engine.is_coreneuron:  # every reason CoreNEURON cannot run it, before a config is written
        from bmtk_scaling.run.preflight import check_engine

        check_engine(loaded.path, chosen)
    return write_config(new, loaded.path, Path(out), overwrite=overwrite)


configure_simulation.__signature__ = inspect.Signature(  # every setting by name, from the schema
    [inspect.Parameter("config", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="str | Path"),
     inspect.Parameter("out", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="str | Path"),
     inspect.Parameter("overwrite", inspect.Parameter.KEYWORD_ONLY, default=False, annotation="bool")]
    + [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                         annotation=f"{o.kind.__name__} | None") for o in options()],
    return_annotation="Path")
configure_simulation.__doc__ += "\n    Settings:\n\n" + "".join(f"    - ``{o.name}``: {o.doc}\n" for o in options())


def run_simulation(config: str | Path, ranks: int = 1, *, timeout: float = 3600.0, launcher: str = "mpiexec",
                   sites: str | None = None, latency_ms: float = 0.0, bandwidth_mbit_s: float | None = None,
                   output_dir: str | Path | None = None):
    """Run a simulation config on ``ranks`` MPI ranks; return its ``RunResult`` (times, memory, balance, spikes).

    ``output_dir``: where the run writes instead of the config's ``output_dir``. Without it, where the config's
    output folder holds files bmtk-scaling did not write, the run writes beside it (``output`` ->
    ``output_bmtk-scaling``) and leaves them as they are; ``RunResult.output_dir`` and ``.beside`` say so.

    ``sites`` (e.g. ``"0,1"``, the site of each rank) with ``latency_ms`` places the ranks on emulated sites
    for this run (docs/sites.md), overriding the config's ``bmtk_scaling.sites``.
    """
    from bmtk_scaling.config.settings import validate_sites
    from bmtk_scaling.run.launcher import run_config

    model = validate_sites(sites, latency_ms, bandwidth_mbit_s) if sites is not None or latency_ms else None
    return run_config(Path(config), ranks, timeout=timeout, launcher=launcher, sites=model,
                      output_dir=Path(output_dir) if output_dir is not None else None)


def compare_engines(config: str | Path, ranks: int = 1, *, out_dir: str | Path | None = None,
                    overwrite: bool = False, timeout: float = 3600.0, output_dir: str | Path | None = None) -> dict:
    """Run ``config`` on stock BMTK-NEURON, NEURON (psolve) and CoreNEURON; return and write the comparison.

    ``output_dir`` (or ``out_dir``): the results folder, by default ``compare_<config name>_<R>ranks`` in the
    current folder (the network's files are only read). A variant that fails while running is listed in the
    report's ``failed`` with its reason; the variants that finished are compared and written all the same.
    """
    from bmtk_scaling.errors import BmtkScalingError
    from bmtk_scaling.run.compare import compare_engines as compare

    if out_dir is not None and output_dir is not None:
        raise BmtkScalingError("give the results folder once: output_dir or out_dir, not both")
    folder = output_dir if output_dir is not None else out_dir
    return compare(Path(config), ranks, out_dir=Path(folder) if folder else None, overwrite=overwrite,
                   timeout=timeout, progress=lambda msg: None)


def run_sweep(spec: str | Path, out_dir: str | Path | None = None, *, reduced: bool = False,
              max_points: int | None = None, keep_going: bool = False, report: bool = True,
              output_dir: str | Path | None = None):
    """Run (or resume) the scaling study of a sweep spec (YAML); draw its report when it is complete.

    ``output_dir`` (or ``out_dir``): the sweep's folder; every point writes inside it, never beside a network.
    """
    from bmtk_scaling.errors import BmtkScalingError
    from bmtk_scaling.sweep.execute import run_sweep as run
    from bmtk_scaling.sweep.grid import load_points

    if out_dir is not None and output_dir is not None:
        raise BmtkScalingError("give the sweep's folder once: output_dir or out_dir, not both")
    folder = output_dir if output_dir is not None else out_dir
    loaded, points = load_points(spec, reduced)
    outcome = run(loaded, Path(folder) if folder else None, reduced=reduced, max_points=max_points,
                  keep_going=keep_going, points=points, progress=False, echo=lambda msg: None)
    if report and outcome.complete:
        make_report(outcome.csv, outcome.out_dir / "report")
    return outcome


def make_report(results_csv: str | Path, out_dir: str | Path | None = None):
    """Draw every scaling figure and table a sweep's ``results.csv`` supports; say what was skipped and why."""
    from bmtk_scaling.report.report import make_report as report

    return report(Path(results_csv), Path(out_dir) if out_dir else None)
