"""Reports under psolve: recorded by NEURON itself (``Vector.record``) instead of read from Python each step.

bmtk's soma, membrane and netcon (synapse) reports read every recorded variable from Python after
each time step, which ``pc.psolve`` and CoreNEURON never call. :class:`RecordedReport` takes over
such a report: bmtk's own ``initialize`` chooses the cells, sections and synapses and sets up its
writer; the same variables are then recorded with vectors set up before the run (NEURON fills them
on both engines) and written through bmtk's writer afterwards, so the file is the one bmtk writes.
"""

from __future__ import annotations

import numpy as np
from bmtk.simulator.bionet import modules
from neuron import h

from bmtk_scaling._bmtk_private import initialize_report

pc = h.ParallelContext()

RECORDABLE = (modules.SomaReport, modules.MembraneReport, modules.NetconReport)


class RecordedReport:
    """A bmtk soma, membrane or netcon report recorded with ``Vector.record`` (see the module docstring).

    Sample k of bmtk's report is the state after step k+1, i.e. index k+1 of the recorded vector.
    """

    def __init__(self, report) -> None:
        self.report = report
        self._plan = None
        self._vectors: dict[int, list] = {}

    def initialize(self, sim) -> None:
        plan = self._plan = initialize_report(self.report, sim)
        if plan.transforms:
            raise NotImplementedError("transforms in reports are not supported with psolve/CoreNEURON; remove "
                                      "them or run with \"bmtk_scaling\": {\"neuron_loop\": \"bmtk\"}")
        if len(plan.variables) != 1:
            raise NotImplementedError(f"a report of {len(plan.variables)} variables ({list(plan.variables)}) under "
                                      "psolve: give each variable a report of its own")
        var = plan.variables[0]
        for gid, objects in plan.elements.items():
            vectors = []
            for obj in objects:
                vec = h.Vector()
                vec.record(getattr(obj, f"_ref_{var}"))
                vectors.append(vec)
            self._vectors[gid] = vectors

    def collect(self, sim) -> None:
        """Copy the recorded vectors into bmtk's report writer (after the run)."""
        plan = self._plan
        steps = np.arange(plan.start_step, int(round(plan.end_step)), plan.dt_step) + 1
        # each vector's samples as a strided view, copied once into a row of its own (contiguous writes): a
        # fancy-indexed copy per vector and a column stack of them took about as long as the simulation itself
        # on bio_14cells; bmtk's writer reads the transposed view
        taken = slice(int(steps[0]), int(steps[-1]) + 1, int(plan.dt_step)) if steps.size else slice(0, 0)
        for gid, vectors in self._vectors.items():
            if not vectors:
                continue
            pop_id = sim.net.gid_pool.get_pool_id(gid)
            rows = np.empty((len(vectors), steps.size))
            for row, vec in zip(rows, vectors, strict=True):
                row[:] = vec.as_numpy()[taken]  # a vector shorter than the report fails here, loudly
            plan.recorder.record_cell_block(pop_id.node_id, rows.T if len(vectors) > 1 else rows[0], 0,
                                            steps.size, population=pop_id.population)
        plan.recorder.flush()

    def finalize(self, sim) -> None:
        self.report.finalize(sim)
