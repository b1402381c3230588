"""bmtk's ``bionet`` module with the plugin inside: a user's own ``run_bionet.py`` runs the plugin by one import line.

In bmtk's run script replace ::

    from bmtk.simulator import bionet

by ::

    from bmtk_scaling.run import bionet

and ``mpiexec -n N nrniv -mpi -python run_bionet.py config.json``, ``mpiexec -n N python run_bionet.py
config.json`` or ``srun ... run_bionet.py`` honour the config's ``bmtk_scaling`` section (partition, engine,
lean instantiation, spike exchange). Everything else of ``bmtk.simulator.bionet`` stays as it was;
``Config``, ``BioNetwork`` and ``BioSimulator`` are the plugin's:

- ``Config.from_json`` / ``Config.load`` check the config on rank 0 as ``bmtk-scaling run`` does (settings,
  network files, delays between ranks, partition map, mechanisms compiled into the plugin's cache, the
  output folder), then every rank learns the verdict: bad input prints one ``error:`` line (rank 0) and
  every rank exits with status 2, none left waiting.
- ``BioNetwork`` and ``BioSimulator`` are :class:`~bmtk_scaling.bionet.network.ScalingBioNetwork` and
  :class:`~bmtk_scaling.bionet.simulator.ScalingBioSimulator`.

The outputs go where the config says, as in stock bmtk (which empties that folder first): the output
folder may hold an earlier run's files, but not the config itself or any input of the run.
Importing this module initialises MPI (NEURON's, through the ``mpich`` wheel) before bmtk reads the rank
count, so ``python run_bionet.py`` under ``mpiexec`` runs on every rank, not N copies of one.
"""

from __future__ import annotations

import atexit
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from bmtk_scaling.environment import configure_neuron_environment, finalize_mpi

configure_neuron_environment()
from neuron import h  # noqa: E402  (NEURON reads the environment at import)

h.nrnmpi_init()
_pc = h.ParallelContext()

from bmtk.simulator import bionet as _stock  # noqa: E402  (bmtk reads the rank count at import)
from bmtk.simulator.bionet import *  # noqa: E402,F403  (everything bionet offers stays available)

import bmtk_scaling.bionet.cell_drive  # noqa: E402,F401  (registers the attach_drive cell processor)
from bmtk_scaling.bionet.network import ScalingBioNetwork as BioNetwork  # noqa: E402,F401  (exported)
from bmtk_scaling.bionet.simulator import ScalingBioSimulator as BioSimulator  # noqa: E402,F401  (exported)

nrn = _stock.nrn


class Config(_stock.Config):
    """bionet's ``Config``, read after rank 0 checked it (see the module docstring)."""

    @classmethod
    def from_json(cls, config_file, validator=None, **opts):
        return cls.from_dict(checked_config(config_file), validator, **opts)

    @classmethod
    def load(cls, config_file, validator=None, **opts):
        if isinstance(config_file, str | Path) and str(config_file).endswith(".json"):
            return cls.from_json(config_file, validator, **opts)
        return super().load(config_file, validator, **opts)


def checked_config(config_file: str | Path) -> dict[str, Any]:
    """The config as bionet should read it (paths resolved, the cache's mechanisms), once rank 0 found it runnable.

    Every rank takes part; on bad input rank 0 prints the reason and every rank exits with status 2.
    """
    from bmtk_scaling.sonata.configs import resolved_for_bmtk

    path = Path(config_file).absolute()
    verdict = _check_on_rank_0(path) if int(_pc.id()) == 0 else None
    verdict = _pc.py_broadcast(verdict, 0)
    if verdict["status"] != "ok":
        if int(_pc.id()) == 0:
            sys.stderr.write(verdict["message"] + "\n")
            sys.stderr.flush()
        finalize_mpi()
        os._exit(2 if verdict["status"] == "refused" else 1)
    if int(_pc.id()) == 0:
        for note in verdict["notes"]:
            print(f"bmtk-scaling: {note}", flush=True)
    mechanisms = Path(verdict["mechanisms_dir"]) if verdict["mechanisms_dir"] else None
    return resolved_for_bmtk(path, mechanisms_dir=mechanisms)


def _check_on_rank_0(path: Path) -> dict[str, Any]:
    from bmtk_scaling.errors import BmtkScalingError
    from bmtk_scaling.run.preflight import check_output_location, plan_run

    try:
        plan = plan_run(path, int(_pc.nhost()), check_output=False)
        check_output_location(plan.sim, plan.output_dir, earlier_outputs_ok=True)
    except BmtkScalingError as err:
        return {"status": "refused", "message": f"error: {err}"}
    except Exception:  # a bug: its traceback, and no rank goes on
        return {"status": "bug", "message": traceback.format_exc() + "bmtk-scaling: internal error while checking "
                "the config: please report it with the traceback above"}
    return {"status": "ok", "notes": list(plan.notes),
            "mechanisms_dir": str(plan.mechanisms_dir) if plan.mechanisms_dir else None}


def _fail_fast(kind, value, tb) -> None:
    """An uncaught error on one rank: show it and leave now (mpiexec stops the others), no barrier at exit."""
    traceback.print_exception(kind, value, tb)
    sys.stderr.flush()
    os._exit(1)


sys.excepthook = _fail_fast
atexit.register(finalize_mpi)  # a clean exit (bionet.nrn.quit_execution()): every rank leaves together
