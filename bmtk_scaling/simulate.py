"""Run a SONATA simulation config with BMTK's bionet (the body of every generated ``run_bionet.py``).

Order matters: MPI must be initialised before ``bmtk.simulator.bionet`` is imported (bmtk reads the
rank count at import time), and NEURON must be told where the MPI library is before it is imported.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bmtk_scaling.mpi_env import configure_neuron_environment, finalize_mpi


def run_bionet(config: Path) -> None:
    """Build the network of ``config`` with bionet and simulate it (one MPI rank or many)."""
    configure_neuron_environment()
    # SONATA resolves relative paths against the config's folder, bmtk against the working directory.
    config = Path(config).absolute()
    os.chdir(config.parent)
    from neuron import h

    h.nrnmpi_init()
    from bmtk.simulator import bionet

    import bmtk_scaling.cell_drive  # noqa: F401  (registers the attach_drive cell processor)
    from bmtk_scaling.bionet_network import PartitionedBioNetwork

    conf = bionet.Config.from_json(str(config), validate=True)
    conf.build_env()
    net = PartitionedBioNetwork.from_config(conf)  # stock round-robin unless the config names a partition
    sim = bionet.BioSimulator.from_config(conf, network=net)
    sim.run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_bionet.py", description=__doc__)
    parser.add_argument("config", type=Path, help="SONATA simulation config (simulation_config.json)")
    args = parser.parse_args(argv)
    if not args.config.is_file():
        print(f"error: simulation config {args.config} not found", file=sys.stderr)
        return 2
    run_bionet(args.config)
    finalize_mpi()  # else mpiexec may kill ranks that are still exiting (see mpi_env.finalize_mpi)
    return 0


if __name__ == "__main__":
    sys.exit(main())
