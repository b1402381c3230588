"""Everything checked before a single rank starts: bad input is refused here, in one line, not after the build.

:func:`plan_run` reads a simulation config and checks, in order: it parses and names a network; the
plugin's settings (the schema); the ``run`` section (finite, positive ``dt`` and ``tstop``); the
network's files open and their edges point inside their populations, with finite delays and weights
and no delay below ``dt`` on an edge between cells on different ranks; what else the run reads
(:mod:`bmtk_scaling.run.inputs`: population names, ``hoc:`` templates, ``model_processing``, spike
inputs, ASCII component paths, no more ranks than cells); the partition map fits the network and the
rank count and leaves no rank empty; every input and report module can run under psolve and
CoreNEURON where the run uses them (:func:`check_modules`); the expected peak memory fits this machine
(:mod:`memory_plan`, the smallest number of build cycles that would is named); the output folder passes
the gate (:func:`check_output_location`); then the mechanisms are compiled from their current mod files
(recompiled where the plugin installed them), CoreNEURON's library too when the engine is CoreNEURON;
and GPU support for the GPU engine.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bmtk_scaling.atomic import Refused, claim
from bmtk_scaling.config.settings import Settings, read_settings
from bmtk_scaling.errors import BmtkScalingError, ConfigError
from bmtk_scaling.run.inputs import check_run_inputs
from bmtk_scaling.run.memory_plan import MemoryPlan, plan_memory, refusal
from bmtk_scaling.sonata.configs import (
    LoadedConfig,
    loaded,
    network_files,
    output_dir,
    protected_inputs,
    spikes_path,
)
from bmtk_scaling.sonata.validate import check_network


@dataclass(frozen=True)
class RunPlan:
    """A simulation config that passed every check, and where its outputs go."""

    config: Path
    settings: Settings
    output_dir: Path
    spikes_file: Path  # where the spike file lies once the run succeeded
    tstop: float
    dt: float
    mechanisms_dir: Path | None = None  # the compiled mechanisms bmtk loads (a cache build for a user's folder)
    notes: tuple[str, ...] = ()  # what the user should know (mechanisms replaced or mended, ...)
    memory: MemoryPlan | None = None  # the peak memory expected per rank and per build cycle count
    sim: LoadedConfig | None = None  # the config as read once by the preflight, passed on to every later step
    beside: Path | None = None  # the config's own output folder, where it holds the user's files and the run
    #                             writes into ``output_dir`` beside it instead

    def where(self) -> str:
        """One line saying where this run writes (and why there, when beside the config's own folder)."""
        return _where(self.output_dir, self.beside)


def _where(out: Path, beside: Path | None) -> str:
    if beside is None:
        return f"output: {out}"
    return f"output: {out} ({beside} holds files bmtk-scaling did not write; they are left as they are)"


TOOL_SUFFIX = "_bmtk-scaling"  # the folder beside a config's output_dir that holds the user's own files


def plan_run(config: str | Path | LoadedConfig, ranks: int, check_output: bool = True, check_memory: bool = True,
             output: str | Path | None = None, on_output: Callable[[str], None] | None = None) -> RunPlan:
    """Check ``config`` for a run on ``ranks`` MPI ranks (see the module docstring); BmtkScalingError otherwise.

    ``config`` is read once here (or taken as loaded) and the plan carries it on (``RunPlan.sim``).
    ``check_output=False`` leaves the output folder out (a config that is only derived from, not run).
    ``output``: the folder the run writes into instead of the config's ``output_dir``; without it, where
    the config's folder holds files this tool did not write, a folder beside it (:func:`choose_output`);
    ``on_output`` is told where (:meth:`RunPlan.where`) as soon as that is decided, before any compile.
    ``check_memory``: refuse a run whose expected peak (:mod:`memory_plan`, every rank on this machine)
    exceeds the memory available now, naming the build cycles that would fit; False where the ranks
    run on other machines (srun).
    """
    if isinstance(ranks, bool) or not isinstance(ranks, int) or ranks < 1:
        raise BmtkScalingError(f"ranks must be a positive integer, got {ranks!r}")
    sim = loaded(config)
    if not sim.is_simulation:
        raise ConfigError(f"{sim.path} is not a simulation config (it has no 'run' section and names no 'network'): "
                          "give the simulation config, e.g. simulation_config.json")
    settings = read_settings(sim.data, where=str(sim.path))
    tstop, dt = _run_section(sim)
    files = network_files(sim)
    summary = check_network(files)
    pmap = _check_partition(sim, settings, files, ranks) if settings.partition is not None else None
    if summary.min_delay is not None and summary.min_delay < dt:
        _check_crossing_delays(files, pmap, ranks, dt)
    check_run_inputs(sim, files, _component_dirs(sim), ranks)
    check_modules(sim, settings)
    memory = plan_memory(settings, ranks, sum(summary.populations.values()), summary.edges, _imbalance(pmap))
    from network_builders._build import available_memory

    available = available_memory()
    if check_memory:
        problem = refusal(memory, available)
        if problem is not None:
            raise BmtkScalingError(problem)
    out, beside = (Path(output).absolute() if output is not None else output_dir(sim)), None
    if check_output:  # before anything is compiled: a place the results cannot go costs no build
        out, beside = choose_output(sim, output)
        if on_output is not None:
            on_output(_where(out, beside))
    mech_dir, notes = _mechanisms(sim, files, settings)
    if settings.engine.gpu:
        from bmtk_scaling.environment import require_gpu_support

        require_gpu_support()
    if settings.uses_file_mode:
        fits = memory.smallest_cycles(available) if available else None
        notes.append(f"memory plan: about {memory.peak_gib():.1f} GiB expected with "
                     f"{settings.coreneuron.build_cycles} build cycle(s) ({memory.table()})"
                     + (f"; the smallest number that fits the {available / 2**30:.1f} GiB available now: {fits}"
                        if fits else ""))
    return RunPlan(config=sim.path, settings=settings, output_dir=out, spikes_file=spikes_path(sim, out),
                   tstop=tstop, dt=dt, mechanisms_dir=mech_dir, notes=tuple(notes), memory=memory, sim=sim,
                   beside=beside)


def choose_output(sim: LoadedConfig, output: str | Path | None = None) -> tuple[Path, Path | None]:
    """Where a run of ``sim`` writes, and the config's own output folder when the run writes beside it.

    ``output`` (``--output-dir``) is taken as given, through the gate. Otherwise the config's
    ``output_dir``; where that holds files this tool did not write (stock bmtk's results, the user's
    own), a folder beside it named after it and the tool (``output`` -> ``output_bmtk-scaling``), which
    the next run replaces by the gate's rules. Refused where neither can be written.
    """
    if output is not None:
        return check_output_location(sim, Path(output).expanduser().absolute(), option="--output-dir"), None
    own = output_dir(sim)
    try:
        return check_output_location(sim, own), None
    except Refused as refused:
        if refused.reason not in ("foreign", "kind"):
            raise
    # named as the option that can move it elsewhere: the user never named this folder
    return check_output_location(sim, own.parent / f"{own.name}{TOOL_SUFFIX}", option="--output-dir"), own


def check_engine(config: str | Path, settings: Settings) -> tuple[str, ...]:
    """The mechanism checks ``run`` makes, for a config about to be derived with ``settings`` (``configure``).

    Raises BmtkScalingError where the engine cannot run the network (for CoreNEURON: built-ins it
    lacks, mod files it cannot translate or lays out differently); returns the notes a run would print.
    The user's mechanisms are compiled into the cache, as the run would compile them.
    """
    sim = loaded(config)
    return tuple(_mechanisms(sim, network_files(sim), settings)[1])


def check_timeout(timeout: float) -> float:
    """A run's time limit: a positive, finite number of seconds (NaN would never fire, a negative one at once)."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not math.isfinite(timeout) or timeout <= 0:
        raise BmtkScalingError(f"the timeout must be a positive, finite number of seconds, got {timeout!r}")
    return float(timeout)


def check_output_location(sim: LoadedConfig, out: Path, earlier_outputs_ok: bool = False,
                          option: str = "output_dir") -> Path:
    """The output folder, symlinks resolved, once :func:`~bmtk_scaling.atomic.claim` allows a run to replace it.

    Refused: the config's own folder, a folder that holds (or is) any input of the run, a folder
    inside the network's or the components' folders, an existing folder holding anything this tool
    did not write (unless ``earlier_outputs_ok``: the user's own run script, which empties it as stock
    bmtk does), a symlink loop, and a place that cannot be written (read-only, a file in the way).
    """
    if os.path.realpath(out) == os.path.realpath(sim.path.parent):
        raise ConfigError(f"{option} {out} (of {sim.path.name}) is the config's own folder, which bmtk would empty "
                          "before the run: give the outputs a folder of their own, e.g. "
                          "\"output_dir\": \"$BASE_DIR/output\"")
    try:
        return claim(out, "run output", folder=True, overwrite=True, option=option,
                     protected=protected_inputs(sim))
    except Refused as refused:
        if earlier_outputs_ok and refused.reason in ("foreign", "kind", "exists"):
            return refused.path
        raise


# bmtk modules that psolve and CoreNEURON cannot run, keyed by (config section, module): why, and what to do instead
_PER_STEP = ("it runs Python after every step, which pc.psolve and CoreNEURON never call")
_BMTK_LOOP = "run it on NEURON with \"bmtk_scaling\": {\"neuron_loop\": \"bmtk\"}"
REFUSED_UNDER_PSOLVE = {
    ("inputs", "xstim"): (f"extracellular stimulation sets every segment's e_extracellular: {_PER_STEP}, and it needs "
                          "NEURON's extracellular mechanism, which CoreNEURON lacks", _BMTK_LOOP),
    ("inputs", "SEClamp"): (f"bmtk's SEClamp input switches the clamp's series resistance: {_PER_STEP}",
                            f"{_BMTK_LOOP}, or give the clamp as an IClamp input"),
    ("inputs", "comsol"): (f"the COMSOL input sets extracellular potentials: {_PER_STEP}", _BMTK_LOOP),
    ("inputs", "ecephys_probe"): ("its spike inputs are connected through bionet's own edge objects as the run starts, "
                                  "which the plugin's lean instantiation does not keep",
                                  f"{_BMTK_LOOP} with \"synapses\": \"bmtk\", or convert the units to a SONATA "
                                  "spike file and give it as a spikes input"),
    ("reports", "clamp_report"): (f"it reads each clamp's current: {_PER_STEP}",
                                  f"{_BMTK_LOOP}, or record the clamp's cell with a membrane_report"),
    ("reports", "SaveSynapses"): ("it walks bionet's per-edge NetCon objects, which lean instantiation does not make",
                                  f"{_BMTK_LOOP} with \"synapses\": \"bmtk\""),
    ("reports", "save_synapses"): ("it walks bionet's per-edge NetCon objects, which lean instantiation does not make",
                                   f"{_BMTK_LOOP} with \"synapses\": \"bmtk\""),
}


def check_modules(sim: LoadedConfig, settings: Settings) -> None:
    """Refuse, before launch, every input and report module the run's loop cannot run (see docs/real-networks.md)."""
    if not settings.uses_psolve:
        return
    for config in _with_circuit(sim):
        for section in ("inputs", "reports"):
            entries = config.data.get(section) or {}
            if not isinstance(entries, dict):
                continue
            for name, entry in entries.items():
                if not isinstance(entry, dict):
                    continue
                module = entry.get("module")
                where = f"{config.path}: {section}.{name} (module {module!r})"
                if (section, module) in REFUSED_UNDER_PSOLVE:
                    reason, instead = REFUSED_UNDER_PSOLVE[(section, module)]
                    raise ConfigError(f"{where} cannot run under psolve or CoreNEURON: {reason}; {instead}")
                if section == "reports" and module == "membrane_report" and entry.get("transform"):
                    raise ConfigError(
                        f"{where}: report transforms are applied in Python after every step, which psolve and "
                        "CoreNEURON never call (and bmtk 1.2's only transform, first_element, fails on a NEURON "
                        "value even on its own loop); record the variable itself and transform the report "
                        "afterwards")
                if section == "reports" and module == "extracellular":
                    _check_ecp(config, entry, where, settings)


def _check_ecp(config: LoadedConfig, entry: dict, where: str, settings: Settings) -> None:
    if settings.uses_file_mode:
        raise ConfigError(f"{where}: the ECP is folded from membrane currents recorded in NEURON's memory, which "
                          "CoreNEURON file mode frees before the run; set bmtk_scaling.coreneuron.file_mode false")
    contributions = entry.get("contributions_dir")
    if contributions is not None:
        inside = isinstance(contributions, str) and contributions != ""
        if inside and ("$" in contributions or Path(contributions).is_absolute()):
            path, out = config.resolve(contributions), output_dir(config)
            inside = path != out and out in path.parents
        if not inside:
            raise ConfigError(f"{where}: contributions_dir {contributions!r} lies outside the run's output folder, "
                              "which is written as a whole only when the run succeeds; give a path relative to the "
                              "output folder (e.g. \"ecp_contributions\")")
    positions = entry.get("electrode_positions")
    if not isinstance(positions, str) or not config.resolve(positions).is_file():
        raise ConfigError(f"{where}: electrode_positions {positions!r} is not a file (bmtk reads the electrode's "
                          "channel positions from a CSV): name the electrode file, e.g. "
                          "\"$COMPONENTS_DIR/recXelectrodes/linear_electrode.csv\"")


def _run_section(sim: LoadedConfig) -> tuple[float, float]:
    run = sim.data.get("run")
    if not isinstance(run, dict):
        raise ConfigError(f"{sim.path}: the 'run' section (tstop, dt) is missing or not an object")
    values = {}
    for key in ("tstop", "dt"):
        value = run.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise ConfigError(f"{sim.path}: run.{key} must be a positive, finite number of ms, got {value!r}")
        values[key] = float(value)
    if values["dt"] > values["tstop"]:
        raise ConfigError(f"{sim.path}: run.dt = {values['dt']:g} ms is longer than run.tstop = {values['tstop']:g} ms")
    return values["tstop"], values["dt"]


def _check_partition(sim: LoadedConfig, settings: Settings, files, ranks: int):
    from bmtk_scaling.partition.map_file import load_checked_map
    from bmtk_scaling.sonata.graph import read_nodes

    return load_checked_map(sim.resolve(settings.partition), files, read_nodes(files), n_ranks=ranks)


def _check_crossing_delays(files, pmap, ranks: int, dt: float) -> None:
    """Refuse delays below ``dt`` only where NEURON needs them: on edges between cells on different ranks.

    NEURON exchanges spikes between ranks once per smallest delay of such edges, so one below ``dt``
    cannot run; spike inputs (virtual sources) and edges between cells of one rank are delivered
    locally, and stock bmtk runs them at any delay.
    """
    import numpy as np

    from bmtk_scaling.sonata.graph import NO_VERTEX, read_graph

    if ranks == 1:
        return
    graph = read_graph(files)
    if pmap is not None:  # the map's ranks, vertex by vertex (populations and rows in graph order)
        rank = np.concatenate([_map_ranks(pmap, pop) for pop in graph.populations if pop.n_cells])
    else:  # bionet's own placement: row r of every population on rank r % ranks
        rank = np.concatenate([pop.cell_rows % ranks for pop in graph.populations if pop.n_cells])
    recurrent = graph.source != NO_VERTEX
    crossing = recurrent.copy()
    crossing[recurrent] = rank[graph.source[recurrent]] != rank[graph.target[recurrent]]
    short = crossing & (graph.delay < dt)
    if not short.any():
        return
    lowest = float(graph.delay[short].min())
    fixes = "make those delays >= dt"
    if lowest > 0:
        fixes += ", lower run.dt below " + f"{lowest:g} ms"
    raise ConfigError(
        f"{int(short.sum())} edge(s) between cells on different ranks have a delay below dt = {dt:g} ms (smallest "
        f"{lowest:g} ms): NEURON exchanges spikes between ranks once per smallest such delay, and cannot in less "
        f"than one step. Fix: {fixes}, place the connected cells on one rank (a partition map, "
        "\"bmtk_scaling\": {\"partition\": ...}), or run on 1 rank")


def _map_ranks(pmap, pop):
    """The map's rank of each cell of ``pop``, in row order."""
    import numpy as np

    ids, ranks = pmap.assignment[pop.name]
    by_id = dict(zip(np.asarray(ids).tolist(), np.asarray(ranks).tolist(), strict=True))
    return np.array([by_id[int(n)] for n in pop.node_ids[pop.cell_rows]], dtype=np.int64)


def _imbalance(pmap) -> float | None:
    """The map's predicted imbalance (max/mean cost), where it records one."""
    value = None if pmap is None else pmap.metrics.get("imbalance")
    return float(value) if isinstance(value, int | float) else None


def _mechanisms(sim: LoadedConfig, files, settings: Settings) -> tuple[Path | None, list[str]]:
    """The compiled mechanisms the run loads, and notes on how they were made.

    A folder the plugin installed (a built network's) is checked against its mod files and used as
    it is; any other folder is the user's: compiled into the cache for both engines, never written.
    """
    from bmtk_scaling.mechanisms import ensure_compiled
    from bmtk_scaling.mechanisms.network import (
        check_builtins_for_coreneuron,
        check_defined,
        check_for_coreneuron,
        declared_names,
        prepare,
    )

    components = _component_dirs(sim)
    mech_dir = components.get("mechanisms_dir")
    installed = mech_dir is not None and ((mech_dir / ".bmtk-scaling-build-key").exists()
                                          or any(mech_dir.glob("*/.bmtk-scaling-build-key")))
    usage = _usage(files, components)
    if settings.engine.is_coreneuron:  # what CoreNEURON lacks is refused before anything is compiled
        check_builtins_for_coreneuron(declared_names(mech_dir, users_folder=not installed), usage)
    if settings.uses_file_mode:
        _check_file_mode(usage)
    if mech_dir is None:
        return None, []
    flags = settings.coreneuron.build_flags if settings.engine.is_coreneuron else None
    if installed and not flags:
        ensure_compiled(mech_dir, coreneuron=settings.engine.is_coreneuron)
        return mech_dir, []
    mechanisms = prepare(mech_dir, flags)  # with build flags, an installed folder too is compiled into the cache
    check_defined(mechanisms, usage)
    used = set().union(*usage.values()) if usage else set()
    if settings.engine.is_coreneuron:
        return check_for_coreneuron(mechanisms, usage), mechanisms.notes(coreneuron=True, used=used)
    return mechanisms.neuron_build, mechanisms.notes()


def _check_file_mode(usage: dict[str, set[str]]) -> None:
    """File mode reads spike times back on the dt grid; artificial cells (IntFire1) spike between steps."""
    from bmtk_scaling.mechanisms.network import STAND_INS

    cells = sorted(label for label, names in usage.items() if names & set(STAND_INS))
    if cells:
        raise ConfigError(f"CoreNEURON file mode cannot run artificial point neurons ({', '.join(cells)} use "
                          f"{', '.join(sorted(STAND_INS))}): it reads spike times back on the dt grid and these "
                          "cells spike between steps; set bmtk_scaling.coreneuron.file_mode false (configure "
                          "--no-file-mode)")


def _usage(files, components: dict[str, Path]) -> dict[str, set[str]]:
    import pandas as pd

    from bmtk_scaling.mechanisms.network import mechanisms_used

    node_types, synapses = [], set()
    for nf in files.nodes:
        node_types += pd.read_csv(nf.node_types_file, sep=" ").to_dict("records")
    for ef in files.edges:
        types = pd.read_csv(ef.edge_types_file, sep=" ")
        if "model_template" in types.columns:
            synapses |= {str(v) for v in types["model_template"].dropna() if str(v) not in ("NULL", "None")}
    names = {"Exp2Syn" if s == "exp2syn" else "ExpSyn" if s == "expsyn" else s for s in synapses}
    return mechanisms_used(node_types, components.get("biophysical_neuron_models_dir"),
                           components.get("templates_dir"), names)


def _component_dirs(sim: LoadedConfig) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for cfg in reversed(_with_circuit(sim)):  # as bmtk merges them: the circuit config's section wins
        for key, value in (cfg.data.get("components") or {}).items():
            if isinstance(value, str):
                found.setdefault(key, cfg.resolve(value))
    return found


def _with_circuit(sim: LoadedConfig) -> list[LoadedConfig]:
    return [sim] if sim.circuit is None else [sim, sim.circuit]


__all__ = ["RunPlan", "check_engine", "check_output_location", "check_timeout", "plan_run"]
