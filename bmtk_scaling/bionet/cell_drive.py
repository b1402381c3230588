"""The ``attach_drive`` model-processing step: the IClamp each cell's node attributes describe.

The benchmark networks store their drive as node attributes (``drive_amp`` nA, ``drive_delay`` ms,
``drive_dur`` ms) drawn from the seed at build time, so the drive never depends on which rank builds
a cell. bmtk calls this function for every node whose type lists ``model_processing=attach_drive``.
"""

from __future__ import annotations

from bmtk.simulator.bionet.pyfunction_cache import add_cell_processor


def attach_drive(hobj, node, dynamics_params):
    """Give ``hobj`` (an RTMCell/WBCell template) its IClamp; cells with amplitude 0 get none."""
    amp = float(node["drive_amp"])
    if amp != 0.0:
        hobj.set_drive(amp, float(node["drive_delay"]), float(node["drive_dur"]))
    return hobj


add_cell_processor(attach_drive, "attach_drive", overwrite=True)
