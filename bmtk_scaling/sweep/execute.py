"""Run a sweep: every point of a spec, each a real run through the runner, resumable at any moment.

Layout of a results folder (``--out``):

    spec.yaml             the spec as it was last run
    points/<id>.json      one per finished point (atomic, fsync'ed): the row and the runner's full result
    failed/<id>.json      the last error of a point that failed (removed when it later succeeds)
    results.csv           the tidy table, rebuilt from points/ after every point
    networks/<key>/       each (network, size, seed) built once, with its partition maps in partitions/
    runs/<id>/            each point's derived config and its output (spikes)
    report/               figures and tables (bmtk-scaling report)

A rerun skips every point whose record exists, so an interrupted sweep (Ctrl-C, a killed job, a
point that failed) loses nothing it finished; ``max_points`` stops on purpose after N points.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bmtk_scaling.atomic import (
    MARKER,
    Protected,
    claim,
    exclusive_lock,
    resolve_target,
    write_json,
    write_text_atomic,
    written_by_us,
)
from bmtk_scaling.errors import BmtkScalingError, SpecError, SweepStopped
from bmtk_scaling.sweep.grid import NetworkPoint, Point, check_points, expand_points, gpu_problem
from bmtk_scaling.sweep.records import (
    FAILED_DIR,
    RESULTS_CSV,
    SCHEMA_VERSION,
    csv_text,
    make_row,
    point_file,
    provenance,
    read_point,
    write_json_durable,
)
from bmtk_scaling.sweep.spec import EXCHANGE_PRESETS, SweepSpec

log = logging.getLogger(__name__)
SPEC_COPY = "spec.yaml"


@dataclass
class SweepOutcome:
    out_dir: Path
    total: int
    skipped: int  # finished before this call
    ran: int  # finished in this call
    failed: dict[str, str] = field(default_factory=dict)  # point id -> error
    remaining: int = 0
    csv: Path | None = None
    complete: bool = False  # every point of this call's selection is finished, none stopped on purpose


SWEEP_KIND = "sweep results"


def default_out_dir(spec: SweepSpec, reduced: bool) -> Path:
    return Path("sweeps") / (spec.name + ("-reduced" if reduced else ""))


def select_points(points: list[Point], point_list: Path | None, array_index: int | None) -> list[Point]:
    """The points a SLURM array task runs: line ``array_index`` of ``point_list`` (ids, blank-separated)."""
    if point_list is None:
        return points
    lines = [ln.split() for ln in Path(point_list).read_text().splitlines() if ln.strip()]
    chosen = lines if array_index is None else (
        [lines[array_index]] if 0 <= array_index < len(lines) else None)
    if chosen is None:
        raise BmtkScalingError(f"array index {array_index} is outside {point_list} (0..{len(lines) - 1})")
    wanted = {pid for line in chosen for pid in line}
    by_id = {p.id: p for p in points}
    unknown = sorted(wanted - set(by_id))
    if unknown:
        raise BmtkScalingError(f"{point_list} names points this spec does not have: {unknown[:3]}; regenerate "
                               "the scripts (--slurm) after editing the spec")
    return [p for p in points if p.id in wanted]


def run_sweep(spec: SweepSpec, out_dir: Path | None = None, *, reduced: bool = False, max_points: int | None = None,
              keep_going: bool = False, point_list: Path | None = None, array_index: int | None = None,
              prepare_only: bool = False, collect_only: bool = False, launcher: str = "mpiexec",
              progress: bool = True, points: list[Point] | None = None, force: bool = False,
              echo: Callable[[str], None] = print) -> SweepOutcome:
    """Run (or resume) the sweep of ``spec`` into ``out_dir``; see the module docstring.

    ``point_list``/``array_index``: run only those points (a SLURM array task); ``prepare_only``: build
    networks, maps and configs, run nothing; ``collect_only``: assemble the CSV only;
    ``points``: the spec's points when already expanded and checked (``sweep_grid.load_points``).
    Points that this call runs on a GPU need GPU support here (a SpecError before anything runs).
    """
    if points is None:
        points = expand_points(spec, reduced, force=force)
        check_points(spec, points, local=False)  # GPU support is checked below, for the points that run
    all_points = points
    points = select_points(all_points, point_list, array_index)
    out_dir = Path(out_dir or default_out_dir(spec, reduced)).absolute()
    done = {p.id for p in points if read_point(out_dir, p.id) is not None}
    todo = [] if collect_only else [p for p in points if p.id not in done]
    if not prepare_only and (gpu := gpu_problem(todo)):  # only the points this call runs need a GPU here
        raise SpecError(spec.source, [gpu])
    if out_dir.exists() and not out_dir.is_dir():
        raise BmtkScalingError(f"--out {out_dir} is a file: give a folder for the sweep's results")
    source = Path(spec.source)  # the gate: never the spec or a folder holding it, a symlink loop, a read-only place
    protected = Protected.of([source] if source.is_file() else [], [], owner=source.name)
    if not (out_dir / SPEC_COPY).is_file():  # an existing sweep's folder is checked by _claim (its sweep's name)
        out_dir = claim(out_dir, SWEEP_KIND, folder=True, option="--out", protected=protected, resume=True)
    else:
        protected.check(resolve_target(out_dir, "--out"), "--out", folder=True)
    # One local sweep per results folder at a time; SLURM array tasks share it and lock each point instead.
    with exclusive_lock(out_dir) if point_list is None else contextlib.nullcontext():
        return _execute(spec, out_dir, points, all_points, done, todo, max_points=max_points, keep_going=keep_going,
                        prepare_only=prepare_only, launcher=launcher, progress=progress, echo=echo,
                        array_task=point_list is not None)


def _execute(spec: SweepSpec, out_dir: Path, points: list[Point], all_points: list[Point], done: set[str],
             todo: list[Point], *, max_points: int | None, keep_going: bool, prepare_only: bool, launcher: str,
             progress: bool, echo: Callable[[str], None], array_task: bool) -> SweepOutcome:
    _claim(out_dir, spec)
    outcome = SweepOutcome(out_dir=out_dir, total=len(points), skipped=len(done), ran=0)
    echo(f"sweep {spec.name}: {len(points)} points, {len(done)} already finished, {len(todo)} to run -> {out_dir}")
    runner = _PointRunner(spec, out_dir, launcher)
    if prepare_only:
        for point in todo:
            runner.prepare(point)
        echo(f"prepared {len({p.network.key for p in todo})} networks and the maps and configs of {len(todo)} points")
        return outcome
    bar = _progress(todo, spec.name, progress)
    stopped_on_purpose = False
    try:
        for point in todo:
            if max_points is not None and outcome.ran + len(outcome.failed) >= max_points:
                stopped_on_purpose = True
                break
            bar.set_postfix_str(f"{outcome.ran + len(outcome.failed) + 1}/{len(todo)} {point.id}", refresh=True)
            try:
                runner.run(point)
                outcome.ran += 1
            except (RuntimeError, ValueError, OSError) as err:
                outcome.failed[point.id] = f"{type(err).__name__}: {err}"
                write_json_durable(out_dir / FAILED_DIR / f"{point.id}.json",
                                   {"point_id": point.id, "error": outcome.failed[point.id], "at": time.time()})
                if not keep_going:
                    raise SweepStopped(f"point {point.id} failed: {err}\n{outcome.ran} point(s) finished in this run "
                                       f"are kept in {out_dir}; fix the cause and rerun the same command to continue "
                                       "(or pass --keep-going to record failures and go on)") from err
            finally:
                bar.update(_work(point))
                outcome.csv = assemble_csv(out_dir, all_points)
    finally:
        bar.close()
    finished = {p.id for p in points if read_point(out_dir, p.id) is not None}
    outcome.remaining = len(points) - len(finished)
    outcome.csv = assemble_csv(out_dir, all_points)
    outcome.complete = bool(finished) and not array_task and not stopped_on_purpose  # report it then
    return outcome


def assemble_csv(out_dir: Path, points: list[Point]) -> Path:
    """Rebuild results.csv (atomically) from the stored records of ``points``, in grid order."""
    rows = [rec["row"] for p in points if (rec := read_point(out_dir, p.id)) is not None]
    path = Path(out_dir) / RESULTS_CSV
    write_text_atomic(path, csv_text(rows))
    return path


def _claim(out_dir: Path, spec: SweepSpec) -> None:
    """A results folder belongs to one sweep name: refuse to mix two studies in one table."""
    copy = out_dir / SPEC_COPY
    if copy.is_file():
        import yaml

        try:
            old = (yaml.safe_load(copy.read_text()) or {}).get("name")
        except yaml.YAMLError:
            old = None
        if old not in (None, spec.name):
            raise BmtkScalingError(f"{out_dir} holds the results of sweep {old!r}, not {spec.name!r}: "
                                   "choose another --out")
    elif out_dir.exists() and any(out_dir.iterdir()):
        raise BmtkScalingError(f"{out_dir} exists and is not a sweep results folder (no {SPEC_COPY}): "
                               "choose another --out")
    write_text_atomic(copy, spec.text)
    if not written_by_us(out_dir):
        write_json(out_dir / MARKER, {"written_by": "bmtk-scaling", "kind": SWEEP_KIND, "sweep": spec.name})


def _work(point: Point) -> float:
    """Rough seconds a point takes on one core (launch overhead + cell-steps), for a weighted ETA."""
    p = point.network.params
    return 3.0 + point.network.n_cells * p["tstop"] / p["dt"] / 5e6


def _progress(todo: list[Point], name: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=sum(_work(p) for p in todo), desc=name, file=sys.stderr, disable=not enabled or not todo,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]{postfix}", dynamic_ncols=True)


class _PointRunner:
    """Builds each network once, makes each partition map once, writes each point's config, runs it."""

    def __init__(self, spec: SweepSpec, out_dir: Path, launcher: str) -> None:
        self.spec, self.out_dir, self.launcher = spec, out_dir, launcher
        self.meta = provenance()
        self.networks: dict[str, dict] = {}

    def network(self, net: NetworkPoint) -> dict:
        """Build (or find) the network; return its folder, cell and edge counts and build seconds."""
        if net.key in self.networks:
            return self.networks[net.key]
        from network_builders.registry import BUILDERS
        from network_builders.writer import read_parameters

        path = self.out_dir / "networks" / net.key
        timing = path / "sweep_build.json"
        if not (path / "network_parameters.json").is_file():
            log.info("building %s", net.key)
            t0 = time.perf_counter()
            BUILDERS[net.builder].build(path, overwrite=path.exists(), **net.params)
            write_text_atomic(timing, json.dumps({"build_s": time.perf_counter() - t0}) + "\n")
        info = read_parameters(path)
        if json.dumps(info["parameters"], sort_keys=True) != net.params_json:
            raise BmtkScalingError(f"{path} holds a network with other parameters than {net.key}; delete that folder")
        build_s = json.loads(timing.read_text())["build_s"] if timing.is_file() else None
        self.networks[net.key] = {"path": path, "n_nodes": info["n_nodes"], "n_edges": info["n_edges"],
                                  "build_s": build_s}
        return self.networks[net.key]

    def partition(self, point: Point, network_dir: Path) -> tuple[str, dict]:
        """The map for (network, ranks, strategy, seed), made with the partition API once and reused."""
        from bmtk_scaling.partition.map_file import default_map_path, make_map, read_map, write_map
        from bmtk_scaling.sonata.configs import network_files

        config = network_dir / "simulation_config.json"
        path = default_map_path(network_files(config), point.strategy, point.ranks, point.network.seed)
        if path.is_file():
            pmap = read_map(path)
        else:
            pmap = make_map(config, point.ranks, point.strategy, seed=point.network.seed)
            write_map(pmap, path, overwrite=True)
        return "$BASE_DIR/" + path.relative_to(network_dir).as_posix(), pmap.metrics

    def prepare(self, point: Point) -> tuple[Path, dict, dict]:
        """Network, map and the point's own config (in runs/<id>/, output beside it)."""
        from bmtk_scaling.config.derive import derive_config, write_config
        from bmtk_scaling.sonata.configs import load_config

        net = self.network(point.network)
        map_ref, metrics = self.partition(point, net["path"])
        run_dir = self.out_dir / "runs" / point.id
        if run_dir.exists():  # left by an interrupted run of this point: start it afresh
            shutil.rmtree(run_dir)
        source = net["path"] / "simulation_config.json"
        new = derive_config(load_config(source).data, engine=point.engine,
                            nthread=point.threads if point.engine.is_coreneuron else None, partition=map_ref,
                            site_map=point.site_map, latency_ms=point.latency_ms, **EXCHANGE_PRESETS[point.exchange])
        run_dir.mkdir(parents=True)
        config = write_config(new, source, run_dir / "config.json", output_dir="./output")
        return config, net, metrics

    def run(self, point: Point) -> None:
        started = time.time()
        with exclusive_lock(self.out_dir / "runs" / point.id):  # array tasks of one sweep share the folder
            self._run(point, started)

    def _run(self, point: Point, started: float) -> None:
        from bmtk_scaling.run.launcher import run_config
        from bmtk_scaling.run.result import result_to_dict
        from bmtk_scaling.sonata.spikes import read_spikes

        config, net, metrics = self.prepare(point)
        result = run_config(config, point.ranks, timeout=self.spec.timeout_s, launcher=self.launcher)
        spikes = read_spikes(Path(result.spikes_file))
        row = make_row(self.spec.name, point, result_to_dict(result), net, metrics, _spikes_sha(spikes), started,
                       self.meta)
        write_json_durable(point_file(self.out_dir, point.id),
                           {"schema": SCHEMA_VERSION, "row": row, "run": result_to_dict(result)})
        (self.out_dir / FAILED_DIR / f"{point.id}.json").unlink(missing_ok=True)


def _spikes_sha(spikes) -> str:
    """A short hash of the spike train (node id, exact time): identical networks must give identical hashes
    whatever the ranks, strategy or engine."""
    order = np.lexsort((spikes["timestamp"].to_numpy(), spikes["node_id"].to_numpy()))
    h = hashlib.sha256(spikes["node_id"].to_numpy(np.int64)[order].tobytes())
    h.update(spikes["timestamp"].to_numpy(np.float64)[order].tobytes())
    return h.hexdigest()[:16]
