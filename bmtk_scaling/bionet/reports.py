"""Reports under psolve: recorded by NEURON itself (``Vector.record``) instead of read from Python each step.

bmtk's reports read every recorded variable from Python after each time step, which ``pc.psolve``
and CoreNEURON never call. :class:`RecordedSomaReport` takes over a bmtk soma report: it records
the same variables with vectors set up before the run (NEURON fills them on both engines) and writes
them through bmtk's own report writer afterwards, so the file is the one bmtk would have written.
"""

from __future__ import annotations

import numpy as np
from bmtk.simulator.bionet import modules
from neuron import h

from bmtk_scaling._bmtk_private import report_plan

pc = h.ParallelContext()


class RecordedSomaReport:
    """A bmtk ``SomaReport`` recorded with ``Vector.record`` (see the module docstring).

    Sample k of bmtk's report is the state after step k+1, i.e. index k+1 of the recorded vector.
    """

    def __init__(self, report: modules.SomaReport) -> None:
        self.report = report
        self._recorder = None
        self._vectors: dict[int, tuple] = {}
        self._plan = None

    def initialize(self, sim) -> None:
        plan = self._plan = report_plan(self.report, sim)
        if plan.transforms:
            raise NotImplementedError("transforms in soma reports are not supported with psolve/CoreNEURON")
        n_steps = int(round((plan.end_time - plan.start_time) / plan.dt))
        self._recorder = modules.record_cellvars.MembraneRecorder(
            plan.file_name, mode="w", variable=plan.variable, buffer_size=max(1, n_steps),
            tstart=plan.start_time, tstop=plan.end_time, dt=plan.dt,
        )
        for gid in plan.local_gids:
            pop_id = sim.net.gid_pool.get_pool_id(gid)
            self._recorder.add_cell(pop_id.node_id, population=pop_id.population, element_ids=[0], element_pos=[0.5])
            soma = sim.net.get_cell_gid(gid).soma[0](0.5)
            vecs = []
            for var in plan.variables:
                vec = h.Vector()
                vec.record(getattr(soma, f"_ref_{var}"))
                vecs.append(vec)
            self._vectors[gid] = (pop_id, vecs)
        self._recorder.initialize()

    def collect(self, sim) -> None:
        """Copy the recorded vectors into bmtk's report writer (after the run)."""
        plan = self._plan
        steps = np.arange(plan.start_step, int(round(plan.end_step)), plan.dt_step) + 1
        for pop_id, vecs in self._vectors.values():
            for vec in vecs:
                self._recorder.record_cell_block(pop_id.node_id, vec.as_numpy()[steps], 0, steps.size,
                                                 population=pop_id.population)
        self._recorder.flush()

    def finalize(self, sim) -> None:
        pc.barrier()
        self._recorder.close()
