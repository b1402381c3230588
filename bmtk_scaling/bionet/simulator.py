"""One simulator class, two engines: bionet's ``BioSimulator`` run with ``pc.psolve``.

Stock ``BioSimulator.run`` calls ``h.run`` with a hoc ``advance()`` that calls back into Python
after every step; CoreNEURON cannot run that, and enabling it before the stock run silently runs
plain NEURON. :class:`ScalingBioSimulator` keeps everything bmtk builds (cells, synapses, inputs,
spike recording) and replaces only the time loop: ``finitialize`` then ``psolve`` on NEURON or on
CoreNEURON, chosen by the config's ``target_simulator``. Per-step Python modules are replaced by
recordings set up before the run (soma reports) or refused with a clear message.

``"bmtk_scaling": {"neuron_loop": "bmtk"}`` keeps stock bmtk's own ``h.run`` loop on NEURON, so the
two can be compared on the same model.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from bmtk.simulator.bionet import BioSimulator, modules
from bmtk.simulator.bionet.io_tools import io
from neuron import h

from bmtk_scaling.bionet.coreneuron_files import run_file_mode
from bmtk_scaling.bionet.gpu import require_gpu_support
from bmtk_scaling.config.settings import PluginSettings, read_settings
from bmtk_scaling.mechanisms import export_coreneuron_library
from bmtk_scaling.sonata.compat import fix_spike_file

pc = h.ParallelContext()

# Modules that only initialise or only use spike vectors work unchanged under psolve.
_PSOLVE_SAFE = (modules.SpikesMod, modules.IClampMod)


class VectorSomaReport(modules.SomaReport):
    """bmtk's soma report, recorded with ``Vector.record`` set up before the run (works on both engines).

    Sample k of bmtk's report is the state after step k+1, i.e. index k+1 of the recorded vector.
    """

    def initialize(self, sim):
        if self._transforms:
            raise NotImplementedError("transforms in soma reports are not supported with psolve/CoreNEURON")
        self._set_valid_steps(sim)
        n_steps = int(round((self._end_time - self._start_time) / self._dt))
        self._var_recorder = modules.record_cellvars.MembraneRecorder(
            self._file_name, mode="w", variable=self._report_name, buffer_size=max(1, n_steps),
            tstart=self._start_time, tstop=self._end_time, dt=self._dt,
        )
        self._gid_map = sim.net.gid_pool
        self._get_gids(sim)
        self._vectors = {}
        for gid in sorted(self._local_gids):
            pop_id = self._gid_map.get_pool_id(gid)
            self._var_recorder.add_cell(pop_id.node_id, population=pop_id.population, element_ids=[0],
                                        element_pos=[0.5])
            cell = sim.net.get_cell_gid(gid)
            vecs = []
            for var in self._variables:
                vec = h.Vector()
                vec.record(getattr(cell.soma[0](0.5), f"_ref_{var}"))
                vecs.append(vec)
            self._vectors[gid] = (pop_id, vecs)
        self._var_recorder.initialize()

    def step(self, sim, tstep, rel_time=0.0):
        pass

    def collect(self, sim) -> None:
        """Copy the recorded vectors into bmtk's report writer (after the run)."""
        steps = np.arange(self._start_step, int(round(self._end_step)), self._dt_step) + 1
        for pop_id, vecs in self._vectors.values():
            for vec in vecs:
                self._var_recorder.record_cell_block(pop_id.node_id, vec.as_numpy()[steps], 0, steps.size,
                                                     population=pop_id.population)
        self._var_recorder.flush()


class ScalingBioSimulator(BioSimulator):
    """``BioSimulator`` whose ``run`` uses ``pc.psolve`` on NEURON or CoreNEURON (see module docstring)."""

    settings: PluginSettings
    timings: dict

    @classmethod
    def from_config(cls, config, network, set_recordings=True):
        settings = read_settings(config)
        sim = super().from_config(config, network, set_recordings)
        sim.settings = settings
        sim.timings = {}
        sim.spike_file = config.get("output", {}).get("spikes_file")
        sim.mechanisms_dir = config.get("components", {}).get("mechanisms_dir")
        sim.output_dir = Path(config.output_dir)
        if sim.uses_psolve:
            sim._sim_mods = [sim._psolve_module(mod) for mod in sim._sim_mods]
        if sim.uses_file_mode and any(isinstance(m, VectorSomaReport) for m in sim._sim_mods):
            raise NotImplementedError("soma reports are recorded in NEURON's memory, which CoreNEURON file mode "
                                      "frees before the run: remove the report or set coreneuron.file_mode false")
        return sim

    @property
    def uses_file_mode(self) -> bool:
        return self.settings.engine == "CORENEURON" and self.settings.coreneuron.file_mode

    @property
    def uses_psolve(self) -> bool:
        return self.settings.engine == "CORENEURON" or self.settings.neuron_loop == "psolve"

    def _psolve_module(self, mod):
        if type(mod) is modules.SomaReport:
            swapped = VectorSomaReport.__new__(VectorSomaReport)
            swapped.__dict__.update(mod.__dict__)
            return swapped
        if isinstance(mod, _PSOLVE_SAFE):
            return mod
        raise NotImplementedError(
            f"{type(mod).__name__} needs a Python call after every step, which pc.psolve and CoreNEURON do not "
            "make: remove it from the config, or run on NEURON with \"bmtk_scaling\": {\"neuron_loop\": \"bmtk\"}"
        )

    def run(self):
        t0 = time.perf_counter()
        if not self.uses_psolve:
            super().run()
            self.timings["simulate"] = time.perf_counter() - t0
            self._fix_outputs()
            return
        for mod in self._sim_mods:
            mod.initialize(self)
        if self.uses_file_mode:
            return self._run_from_files(t0)
        self._configure_engine()
        pc.set_maxstep(10)
        h.finitialize(self.v_init)
        pc.barrier()
        t1 = time.perf_counter()
        self.timings["initialize"] = t1 - t0
        io.log_info(f"Running {self.settings.engine} (psolve) for {self.tstop:.3f} ms, dt {self.dt:.3f} ms")
        pc.psolve(self.tstop)
        pc.barrier()
        t2 = time.perf_counter()
        self.timings["simulate"] = t2 - t1
        for mod in self._sim_mods:
            if isinstance(mod, modules.SpikesMod):
                mod.block(self, (0, self.n_steps))
            elif isinstance(mod, VectorSomaReport):
                mod.collect(self)
        self._finish(t1, t2)

    def _finish(self, t_start: float, t_end: float) -> None:
        """Let every module write its output, mend the spike file, record the time it took."""
        for mod in self._sim_mods:
            mod.finalize(self)
        pc.barrier()
        self._fix_outputs()
        self.timings["write_output"] = time.perf_counter() - t_end
        io.log_info(f"Simulation completed in {t_end - t_start:.3f} s")

    def _run_from_files(self, t0: float) -> None:
        """CoreNEURON file mode: NEURON writes the model and frees it, CoreNEURON runs it from the files
        (see :mod:`coreneuron_files`); the spikes go to bionet's spike writer as if recorded."""
        opts = self.settings.coreneuron
        if opts.gpu:
            require_gpu_support()
        extra = ["--cell-permute", str(2 if opts.gpu and opts.cell_permute == 0 else opts.cell_permute)]
        if opts.gpu:
            extra.append("--gpu")
        t1 = time.perf_counter()
        self.timings["initialize"] = t1 - t0
        io.log_info(f"Running CORENEURON from files for {self.tstop:.3f} ms, dt {self.dt:.3f} ms")
        times, gids = run_file_mode(self, self.tstop, self.dt, self.v_init, self.celsius,
                                    self.output_dir / "coreneuron_files", verbose=opts.verbose, extra_args=extra)
        t2 = time.perf_counter()
        self.timings["simulate"] = t2 - t1
        for mod in self._sim_mods:
            if isinstance(mod, modules.SpikesMod):
                for t, gid in zip(times.tolist(), gids.tolist(), strict=True):
                    pop_id = self.net.gid_pool.get_pool_id(gid)
                    mod._spike_writer.add_spike(node_id=pop_id.node_id, timestamp=t, population=pop_id.population)
        self._finish(t1, t2)

    def _configure_engine(self) -> None:
        from neuron import coreneuron

        opts = self.settings.coreneuron
        coreneuron.enable = self.settings.engine == "CORENEURON"
        if not coreneuron.enable:
            return
        if self.mechanisms_dir:
            export_coreneuron_library(Path(self.mechanisms_dir))
        if opts.gpu:
            require_gpu_support()
        coreneuron.gpu = opts.gpu
        coreneuron.cell_permute = 2 if opts.gpu and opts.cell_permute == 0 else opts.cell_permute
        coreneuron.verbose = opts.verbose
        if opts.nthread > 1:
            pc.nthread(opts.nthread)

    def _fix_outputs(self) -> None:
        if int(pc.id()) == 0 and self.spike_file:
            fix_spike_file(self.spike_file)
        pc.barrier()

    def rank_load(self) -> dict:
        """This rank's compute and wait time (NEURON only: CoreNEURON reports 0)."""
        return {"step_time": float(pc.step_time()), "wait_time": float(pc.wait_time())}
