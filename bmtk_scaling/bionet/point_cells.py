"""NEURON's built-in artificial cells that CoreNEURON does not ship, built as the plugin's stand-ins on CoreNEURON.

bmtk's LIF point neurons are ``nrn:IntFire1``; CoreNEURON's library has no IntFire1. On a CoreNEURON
run the cells are made as ``BmtkScalingIntFire1`` (``components/mechanisms/modfiles/intfire1_core.mod``,
compiled into every build), with bmtk's own parameters: both NEURON (which sets the initial state)
and CoreNEURON then know the mechanism. Configs and node types stay as they are; NEURON runs keep
the built-in.
"""

from __future__ import annotations

from bmtk_scaling.mechanisms.network import STAND_INS

__all__ = ["STAND_INS", "use_stand_ins"]


def _intfire1(cell, template_name, dynamics_params):
    """bmtk's IntFire1 loader (tau and refrac given in seconds), making the stand-in."""
    from neuron import h

    hobj = h.BmtkScalingIntFire1()
    hobj.tau = dynamics_params["tau"] * 1000.0
    hobj.refrac = dynamics_params["refrac"] * 1000.0
    return hobj


def use_stand_ins() -> None:
    """Make bionet build ``nrn:IntFire1`` cells as the stand-in (for this process: a CoreNEURON run)."""
    from bmtk.simulator.bionet.pyfunction_cache import add_cell_model

    for model_type in ("point_process", "point_neuron"):
        add_cell_model(_intfire1, directive="nrn:IntFire1", model_type=model_type, overwrite=True)
