"""Each cell type's compute cost, as NEURON's own load balancer measures it, from one cell of each type.

A multi-compartment cell costs its segments times its mechanisms, not one unit: NEURON's
``LoadBalance.cell_complexity`` counts exactly that (each mechanism instance in each segment, the
measure NEURON's multisplit balancing uses). One cell of every node type is built with bionet in a
child process (``python -m bmtk_scaling.bionet.complexity CONFIG OUT.json``), so the caller never
imports NEURON; partition strategies then weigh each cell by its type's complexity plus its synapses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bmtk_scaling.environment import configure_neuron_environment
from bmtk_scaling.errors import BmtkScalingError


def measure_cell_costs(config: Path, mechanisms_dir: Path | None = None, timeout: float = 1800.0
                       ) -> dict[str, dict[int, float]]:
    """population -> node type id -> ``LoadBalance.cell_complexity`` of one cell of that type."""
    with tempfile.TemporaryDirectory(prefix="bmtk-scaling-complexity-") as tmp:
        out = Path(tmp) / "costs.json"
        cmd = [sys.executable, "-m", "bmtk_scaling.bionet.complexity", str(Path(config).absolute()), str(out),
               *([str(mechanisms_dir)] if mechanisms_dir else [])]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp,
                              env=configure_neuron_environment(dict(os.environ)))
        if proc.returncode != 0 or not out.is_file():
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
            raise BmtkScalingError(f"could not build one cell of each type of {config} to measure its cost "
                                   f"(exit {proc.returncode}); use --cost synapses to partition without it:\n{tail}")
        data = json.loads(out.read_text())
    return {pop: {int(k): float(v) for k, v in types.items()} for pop, types in data.items()}


def _measure(config: Path, out: Path, mechanisms_dir: Path | None) -> None:
    from neuron import h

    h.nrnmpi_init()
    from bmtk.simulator import bionet

    import bmtk_scaling.bionet.cell_drive  # noqa: F401  (the builders' cells need their processing step)
    from bmtk_scaling._bmtk_private import build_cell, nodes_at_rows
    from bmtk_scaling.sonata.configs import resolved_for_bmtk

    os.chdir(config.parent)
    conf = bionet.Config.from_dict(resolved_for_bmtk(config, out.parent / "output", mechanisms_dir), validate=False)
    conf.build_env()
    h.load_file("loadbal.hoc")
    balance = h.LoadBalance()
    net = bionet.BioNetwork.from_config(conf)
    costs: dict[str, dict[int, float]] = {}
    for pop in net.node_populations:
        seen: dict[int, int] = {}
        for row, node in enumerate(nodes_at_rows(pop, range(len(pop.node_ids)))):
            type_id = int(node["node_type_id"])
            if node.model_type != "virtual" and type_id not in seen:
                seen[type_id] = row
        for type_id, row in seen.items():
            node = next(nodes_at_rows(pop, [row]))
            cell = build_cell(net, node, pop.name)
            hobj = getattr(cell, "hobj", None)
            soma = getattr(hobj, "soma", None) if hobj is not None else None
            costs.setdefault(pop.name, {})[type_id] = float(balance.cell_complexity(sec=soma[0])) if soma else 1.0
    out.write_text(json.dumps(costs))


if __name__ == "__main__":
    configure_neuron_environment()
    _measure(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]) if len(sys.argv) > 3 else None)
