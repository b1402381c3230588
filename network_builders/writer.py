"""NetworkSpec -> SONATA folder, through bmtk's NetworkBuilder, atomically.

Folder layout (BMTK's): ``network/`` (nodes, edges, type CSVs), ``components/`` (mechanisms with
compiled libraries, templates, synaptic models), ``circuit_config.json``, ``simulation_config.json``,
``run_bionet.py`` and ``network_parameters.json`` (every parameter and the seed, for provenance).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
from bmtk.builder import NetworkBuilder

from bmtk_scaling import mechanisms
from bmtk_scaling.atomic import atomic_directory, check_output_dir, write_json
from bmtk_scaling.errors import BmtkScalingError
from bmtk_scaling.sonata.compat import add_spec_index_names, move_root_string_attributes, sign_type_ids
from network_builders import configs
from network_builders.sparse_adaptor import EdgeList, sparse_network
from network_builders.spec import NODE_COLUMNS, BuiltNetwork, NetworkSpec

log = logging.getLogger(__name__)

COMPRESSIONS = ("none", "gzip")

RUN_SCRIPT = '''"""Run this network with BMTK's bionet: python run_bionet.py [simulation_config.json]"""

import sys

from bmtk_scaling.run.rank_main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["simulation_config.json"]))
'''


NETWORK = "network"  # the kind of folder a build writes (what --overwrite may replace)


def build_network(spec_fn: Callable[..., NetworkSpec], out_dir: Path, overwrite: bool, compression: str,
                  parameters: dict) -> BuiltNetwork:
    """Check the output folder, draw the network with ``spec_fn(**parameters)``, write it; time each step."""
    check_output_dir(Path(out_dir), overwrite, kind=NETWORK)  # fail before drawing a large network
    t0 = time.perf_counter()
    spec = spec_fn(**parameters)
    log.info("drew %s: %d cells, %d edges in %.1f s", spec.kind, spec.n_nodes, spec.n_edges, time.perf_counter() - t0)
    built = write_network(spec, Path(out_dir), overwrite=overwrite, compression=compression)
    built.timings = {"draw": time.perf_counter() - t0 - sum(built.timings.values()), **built.timings}
    return built


def write_network(spec: NetworkSpec, out_dir: Path, overwrite: bool = False, compression: str = "none") -> BuiltNetwork:
    """Write ``spec`` as a ready-to-run BMTK/SONATA folder at ``out_dir``; nothing is left on failure."""
    if compression not in COMPRESSIONS:
        raise BmtkScalingError(
            f"compression must be one of {COMPRESSIONS}, got {compression!r} "
            "('none' keeps the files readable by the libsonata wheel)"
        )
    out_dir = check_output_dir(Path(out_dir), overwrite, kind=NETWORK)
    # Compile (or find cached) before writing anything, so a compiler problem leaves nothing behind.
    mechanisms.compile_mechanisms(mechanisms.project_components_dir() / "mechanisms" / "modfiles")

    timings = {}
    clock = time.perf_counter()
    with atomic_directory(out_dir, overwrite=overwrite, kind=NETWORK) as tmp:
        net_dir = tmp / "network"
        net = _builder(spec)
        net.build()
        timings["bmtk_build"], clock = time.perf_counter() - clock, time.perf_counter()
        log.info("bmtk NetworkBuilder.build: %.1f s; saving SONATA files ...", timings["bmtk_build"])
        net.save(output_dir=str(net_dir), compression=None if compression == "none" else compression)
        timings["bmtk_save"], clock = time.perf_counter() - clock, time.perf_counter()
        log.info("bmtk NetworkBuilder.save: %.1f s", timings["bmtk_save"])
        edges_file = net_dir / f"{spec.population}_{spec.population}_edges.h5"
        if spec.n_edges:
            add_spec_index_names(edges_file)
            sign_type_ids(edges_file)
        move_root_string_attributes(net_dir / f"{spec.population}_nodes.h5")
        sign_type_ids(net_dir / f"{spec.population}_nodes.h5")
        _check_node_order(spec, net_dir / f"{spec.population}_nodes.h5")

        _copy_components(tmp / "components")
        write_json(tmp / configs.CIRCUIT_CONFIG, configs.circuit_config(spec.population))
        write_json(tmp / configs.SIMULATION_CONFIG, configs.simulation_config(spec.run))
        (tmp / "run_bionet.py").write_text(RUN_SCRIPT)
        write_json(
            tmp / "network_parameters.json",
            {
                "kind": spec.kind,
                "population": spec.population,
                "parameters": spec.parameters,
                "n_nodes": spec.n_nodes,
                "n_edges": spec.n_edges,
                "edges_per_class": {e.name: int(e.sources.size) for e in spec.edges},
            },
        )

    timings["finish"] = time.perf_counter() - clock
    return BuiltNetwork(
        timings=timings,
        path=out_dir,
        population=spec.population,
        kind=spec.kind,
        n_nodes=spec.n_nodes,
        n_edges=spec.n_edges,
        edges_per_class={e.name: int(e.sources.size) for e in spec.edges},
    )


def _builder(spec: NetworkSpec) -> NetworkBuilder:
    net = NetworkBuilder(spec.population, adaptor_cls=sparse_network())
    for group in spec.groups:
        missing = set(NODE_COLUMNS) - set(group.columns)
        if missing:
            raise BmtkScalingError(f"cell group {group.template} lacks node columns {sorted(missing)}")
        net.add_nodes(
            N=group.n,
            model_type="biophysical",
            model_template=f"hoc:{group.template}",
            model_processing="attach_drive",
            **{name: np.asarray(group.columns[name]) for name in NODE_COLUMNS},
        )
    for edge in spec.edges:
        net.add_edges(
            connection_rule=EdgeList(edge.sources, edge.targets),
            edge_class=edge.name,
            model_template="exp2syn",
            dynamics_params=f"{edge.synapse}.json",
            syn_weight=edge.syn_weight,
            delay=edge.delay,
            target_sections=["soma"],
            distance_range=[0.0, 1.0e20],
        )
    return net


def _check_node_order(spec: NetworkSpec, nodes_file: Path) -> None:
    """Edges were drawn on node ids in group order: make sure bmtk assigned ids the same way."""
    with h5py.File(nodes_file, "r") as h5:
        pop = h5["nodes"][spec.population]
        ids = pop["node_id"][()]
        assembly = pop["0"]["assembly"][()]
    expected = np.concatenate([np.asarray(g.columns["assembly"]) for g in spec.groups])
    if not (np.array_equal(ids, np.arange(spec.n_nodes)) and np.array_equal(assembly, expected)):
        raise RuntimeError("bmtk assigned node ids in an unexpected order; the edges would be wrong")


def _copy_components(dest: Path) -> None:
    src = mechanisms.project_components_dir()
    dest.mkdir(parents=True)
    for sub in ("templates", "synaptic_models"):
        shutil.copytree(src / sub, dest / sub)
    (dest / "morphologies").mkdir()  # single-compartment cells: no morphology files
    mechanisms.install_mechanisms(dest / "mechanisms")


def read_parameters(network_dir: Path) -> dict:
    """The ``network_parameters.json`` a builder wrote beside the network."""
    return json.loads((Path(network_dir) / "network_parameters.json").read_text())
