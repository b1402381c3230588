"""One simulator class, two engines: bionet's ``BioSimulator`` run with ``pc.psolve``.

Stock ``BioSimulator.run`` calls ``h.run`` with a hoc ``advance()`` that calls back into Python
after every step; CoreNEURON cannot run that, and enabling it before the stock run silently runs
plain NEURON. :class:`ScalingBioSimulator` keeps everything bmtk builds (cells, synapses, inputs,
spike recording) and replaces only the time loop: ``finitialize`` then ``psolve`` on NEURON or on
CoreNEURON, chosen by the config's ``target_simulator``. Per-step Python modules are replaced by
recordings set up before the run (soma, membrane and synapse reports, :mod:`reports`) or refused with a clear message.

``"bmtk_scaling": {"neuron_loop": "bmtk"}`` keeps stock bmtk's own ``h.run`` loop on NEURON, so the
two can be compared on the same model.
"""

from __future__ import annotations

import contextlib
import functools
import time
from pathlib import Path

from bmtk.simulator.bionet import BioSimulator, modules
from bmtk.simulator.bionet.io_tools import io
from neuron import h

from bmtk_scaling._bmtk_private import (
    ecp_without_extracellular,
    record_spike,
    set_simulation_modules,
    simulation_modules,
)
from bmtk_scaling.bionet.build_cycles import build_part
from bmtk_scaling.bionet.coreneuron_files import run_file_mode
from bmtk_scaling.bionet.ecp import RecordedEcp, mechanism_loaded
from bmtk_scaling.bionet.reports import RECORDABLE, RecordedReport
from bmtk_scaling.config.settings import Settings, read_settings
from bmtk_scaling.mechanisms import export_coreneuron_library
from bmtk_scaling.progress import report, simulate_detail
from bmtk_scaling.sites import shim_counters
from bmtk_scaling.sonata.spikes import fix_spike_file

pc = h.ParallelContext()

# Modules that only initialise or only use spike vectors work unchanged under psolve.
_PSOLVE_SAFE = (modules.SpikesMod, modules.IClampMod)


class ScalingBioSimulator(BioSimulator):
    """``BioSimulator`` whose ``run`` uses ``pc.psolve`` on NEURON or CoreNEURON (see module docstring)."""

    settings: Settings
    timings: dict

    @classmethod
    def from_config(cls, config, network, set_recordings=True):
        settings = read_settings(config)
        cycles = settings.coreneuron.build_cycles if settings.uses_file_mode else 1
        if cycles > 1 and getattr(network, "build_part", None) is None:
            network.build_part = (0, cycles)  # the first build cycle; the others are built in run()
        # bmtk inserts the extracellular mechanism for an ECP: CoreNEURON lacks it, NEURON then uses its sparse solver
        # (~100x slower), and the ECP needs only use_fast_imem (see ecp.py)
        lean_ecp = settings.uses_psolve and not settings.ecp_extracellular
        with ecp_without_extracellular() if lean_ecp else contextlib.nullcontext():
            sim = super().from_config(config, network, set_recordings)
        sim.settings = settings
        sim.source_config = config
        sim.timings = {}
        sim.memory = {}
        sim.later_parts = {"cells": 0, "netcons": 0, "synapse_objects": 0}  # what build cycles 2..N made
        sim.exchange_in_force = {}
        sim.sites_counts = None
        sim.spike_file = config.get("output", {}).get("spikes_file")
        sim.mechanisms_dir = config.get("components", {}).get("mechanisms_dir")
        sim.output_dir = Path(config.output_dir)
        if settings.uses_psolve:
            set_simulation_modules(sim, [sim._psolve_module(mod) for mod in simulation_modules(sim)])
        if settings.uses_file_mode and any(isinstance(m, (RecordedReport, RecordedEcp))
                                           for m in simulation_modules(sim)):
            raise NotImplementedError("reports are recorded in NEURON's memory, which CoreNEURON file mode "
                                      "frees before the run: remove the report or set coreneuron.file_mode false")
        return sim

    def _psolve_module(self, mod):
        if type(mod) in RECORDABLE:
            return RecordedReport(mod)
        if type(mod) is modules.EcpMod:
            # The mechanism's buffer is in its globals: one ECP report per run copies, others record
            taken = any(isinstance(m, RecordedEcp) and m.copy for m in getattr(self, "_converted", []))
            ecp = RecordedEcp(mod, copy=self._ecp_can_copy() and not taken)
            self._converted = [*getattr(self, "_converted", []), ecp]
            return ecp
        if isinstance(mod, _PSOLVE_SAFE):
            return mod
        raise NotImplementedError(
            f"{type(mod).__name__} needs a Python call after every step, which pc.psolve and CoreNEURON do not "
            "make: remove it from the config, or run on NEURON with \"bmtk_scaling\": {\"neuron_loop\": \"bmtk\"}"
        )

    def _ecp_can_copy(self) -> bool:
        """Whether the ``EcpImem`` copy serves this run: one thread reads one NrnThread's nodes, and on CoreNEURON its
        node indices are NEURON's only without a permutation, on the host's memory (not a GPU's)."""
        settings = self.settings
        if not mechanism_loaded() or int(pc.nthread()) != 1:
            return False
        if settings.engine.is_coreneuron:
            return not settings.engine.gpu and settings.cell_permute == 0 and settings.coreneuron.nthread == 1
        return True

    def run(self):
        t0 = time.perf_counter()
        if not self.settings.uses_psolve:
            c0 = time.process_time()
            super().run()
            self.timings["simulate"] = time.perf_counter() - t0
            self.timings["simulate_cpu"] = time.process_time() - c0
            self._fix_outputs()
            return
        for mod in simulation_modules(self):
            mod.initialize(self)
        self._configure_exchange()
        if self.settings.uses_file_mode:
            return self._run_from_files(t0)
        self._configure_engine()
        pc.set_maxstep(self._max_step())
        h.finitialize(self.v_init)
        pc.barrier()
        t1 = time.perf_counter()
        self.timings["initialize"] = t1 - t0
        io.log_info(f"Running {self.settings.engine.label} (psolve) for {self.tstop:.3f} ms, dt {self.dt:.3f} ms")
        before = shim_counters()
        c1 = time.process_time()
        ecps = [mod for mod in simulation_modules(self) if isinstance(mod, RecordedEcp)]
        if ecps:
            self._psolve_in_chunks(ecps)
        else:
            # CoreNEURON takes the model over from NEURON on every psolve call (bench/progress.py measures it): one
            # call, and CoreNEURON's own progress bar (rank 0's stdout), which the runner relays
            self._psolve(self.tstop, 0.0 if self.settings.engine.is_coreneuron else self.settings.progress_interval_s)
        self._count_sites(before)
        pc.barrier()
        t2 = time.perf_counter()
        self.timings["simulate"] = t2 - t1
        # this process's CPU seconds: on a shared machine, what the model costs apart from waiting for a core
        self.timings["simulate_cpu"] = time.process_time() - c1
        for mod in simulation_modules(self):
            if isinstance(mod, modules.SpikesMod):
                mod.block(self, (0, self.n_steps))
            elif isinstance(mod, RecordedReport):
                mod.collect(self)
        self._finish(t1, t2)

    def _psolve(self, tstop: float, interval_s: float) -> int:
        """``pc.psolve(tstop)``, in pieces of about ``interval_s`` of wall time with a progress update after each.

        The pieces end on whole steps, and every rank ends each at the same time (rank 0's measure decides, as
        psolve is collective), so the simulation is the one a single call makes: the same steps, the same spike
        exchanges. Each call has a fixed cost (CoreNEURON takes the model over from NEURON on each), so the first
        two pieces (1 % and 2 % of ``tstop``) measure it: wall = fixed + per_step * steps; later pieces are long
        enough that the fixed cost stays under 1 % of their time, and at least 1 % of ``tstop``.
        Returns the number of psolve calls made.
        """
        if interval_s <= 0:
            pc.psolve(tstop)
            return 1
        rank, steps, wall0 = int(pc.id()), int(round(tstop / self.dt)), time.perf_counter()
        least = max(1, steps // 100)
        chunk = least
        done, calls, measured = int(round(h.t / self.dt)), 0, []
        while done < steps:
            target = min(steps, done + chunk)
            started = time.perf_counter()
            pc.psolve(target * self.dt if target < steps else tstop)
            measured.append((target - done, time.perf_counter() - started))
            calls, done = calls + 1, target
            wall = time.perf_counter() - wall0
            t = done * self.dt
            report("simulate", round(min(t, tstop), 3), tstop, "ms", simulate_detail(t, tstop, wall), rank)
            chunk = int(pc.py_broadcast(_next_piece(measured, interval_s, least), 0))
        return calls

    def _psolve_in_chunks(self, ecps: list[RecordedEcp]) -> None:
        """psolve in chunks whose recorded membrane currents fit ``ecp_buffer_mib`` on every rank, folding them into
        the ECP after each chunk (psolve is collective: every rank takes the chunk length of the fullest one)."""
        budget = self.settings.ecp_buffer_mib * 2**20
        chunk = int(pc.allreduce(min(e.chunk_steps(budget) for e in ecps), 3))
        for ecp in ecps:
            ecp.start(min(chunk, int(self.n_steps)))
        total, done, folding, chunks, wall0 = int(self.n_steps), 0, 0.0, 0, time.perf_counter()
        while done < total:
            target = min(done + chunk, total)
            for ecp in ecps:
                ecp.before_chunk()
            pc.psolve(self.tstop if target == total else target * self.dt)
            reached = total if target == total else int(round(h.t / self.dt))
            if reached <= done:
                raise RuntimeError(f"psolve to step {target} stopped at t = {h.t} ms (step {done} before)")
            t_fold = time.perf_counter()
            for ecp in ecps:
                ecp.fold(self, reached - done)
            folding += time.perf_counter() - t_fold
            chunks += 1
            done = reached
            t = min(done * self.dt, self.tstop)
            wall = time.perf_counter() - wall0
            report("simulate", round(t, 3), self.tstop, "ms", simulate_detail(t, self.tstop, wall), int(pc.id()))
        self.timings["ecp_fold"] = folding
        self.timings["ecp_write"] = writing = sum(ecp.write_s for ecp in ecps)
        how = ", ".join(sorted({ecp.how for ecp in ecps}))
        io.log_info(f"ECP: {chunks} psolve chunk(s) of up to {chunk} steps, currents {how}, {folding:.3f} s folding "
                    f"currents (of which {writing:.3f} s the block buffers and the files' writes)")

    def _finish(self, t_start: float, t_end: float) -> None:
        """Let every module write its output, mend the spike file, record the time it took."""
        for mod in simulation_modules(self):
            mod.finalize(self)
        pc.barrier()
        self._fix_outputs()
        self.timings["write_output"] = time.perf_counter() - t_end
        io.log_info(f"Simulation completed in {t_end - t_start:.3f} s")

    def _run_from_files(self, t0: float) -> None:
        """CoreNEURON file mode: NEURON writes the model and frees it, CoreNEURON runs it from the files
        (see :mod:`coreneuron_files`); the spikes go to bionet's spike writer as if recorded."""
        opts = self.settings.coreneuron
        extra = ["--cell-permute", str(self.settings.cell_permute)]
        if self.settings.engine.gpu:
            extra.append("--gpu")
        extra += self._coreneuron_exchange_args()
        t1 = time.perf_counter()
        self.timings["initialize"] = t1 - t0
        io.log_info(f"Running CORENEURON from files for {self.tstop:.3f} ms, dt {self.dt:.3f} ms")
        before = shim_counters()
        pc.set_maxstep(self._max_step())  # NEURON's finitialize before writing checks it too
        parts = [functools.partial(self._build_part, k) for k in range(1, opts.build_cycles)]
        stats: dict = {}
        times, gids = run_file_mode(self, self.tstop, self.dt, self.v_init, self.celsius,
                                    self.output_dir / "coreneuron_files", verbose=opts.verbose, extra_args=extra,
                                    mindelay=self._max_step(), more_parts=parts, stats=stats)
        self._count_sites(before)
        t2 = time.perf_counter()
        # build: later cycles' cells and edges; set-up: writing and freeing; simulate: CoreNEURON (load and run)
        self.timings["build_parts"] = stats["build_parts_s"]
        self.timings["initialize"] += stats["write_s"]
        self.timings["simulate"] = stats["coreneuron_s"]
        self.memory = {k: stats[k] for k in ("build_peak_rss_mib", "coreneuron_peak_rss_mib")}
        for mod in simulation_modules(self):
            if isinstance(mod, modules.SpikesMod):
                for t, gid in zip(times.tolist(), gids.tolist(), strict=True):
                    pop_id = self.net.gid_pool.get_pool_id(gid)
                    record_spike(mod, pop_id.node_id, t, pop_id.population)
        self._finish(t1, t2)

    def _build_part(self, part: int) -> ScalingBioSimulator:
        """Build cycle ``part`` (1..N-1) of this rank's cells (:mod:`build_cycles`); count what it made."""
        part_sim = build_part(self, part)
        netcons, synapses = part_sim.net.connection_counts()
        counts = self.later_parts
        counts["cells"] += len(part_sim.net.get_local_cells())
        counts["netcons"] += netcons
        counts["synapse_objects"] += synapses
        pc.set_maxstep(self._max_step())  # as before the first write: NEURON's finitialize checks it
        return part_sim

    def _configure_exchange(self) -> None:
        """NEURON's spike-exchange switches; CoreNEURON reads them back from NEURON (neuron/coreneuron.py)."""
        ex = self.settings.exchange
        if ex.spike_compress or ex.multisend:
            pc.spike_compress(ex.spike_compress, int(ex.gid_compress), ex.xchng_meth)
        if ex.bin_queue:
            h.CVode().queue_mode(1, 0)
        if not ex.step_wait:
            pc.step_wait(-1)
        core = self.settings.engine.is_coreneuron
        multisend = int(pc.send_time(8))  # NEURON's exchange-method bits, as neuron/coreneuron.py reads them
        self.exchange_in_force = {
            "spike_compress": int(pc.spike_compress(-1)),
            # CoreNEURON is passed nspike only (--spkcompress); it has no gid compression switch
            "gid_compress": bool(ex.gid_compress) and not core,
            "multisend": bool(multisend & 1), "xchng_meth": ex.xchng_meth,
            "bin_queue": bool(int(h.CVode().queue_mode()) & 1),
            "step_wait": True if core else ex.step_wait,  # CoreNEURON keeps its barrier whatever NEURON's is
        }

    def _max_step(self) -> float:
        """The longest exchange interval, ms: 10, or under 255 steps with spike compression, whose 1-byte
        in-interval spike times NEURON asserts on (``usable_mindelay_ * dt1_ < 255``): a placement where
        nothing crosses ranks (by-assembly on N-Pairs) would otherwise abort the run."""
        if not self.settings.exchange.spike_compress:
            return 10.0
        return min(10.0, 250 * self.dt)

    def _coreneuron_exchange_args(self) -> list[str]:
        """The exchange switches as CoreNEURON's command line (file mode), as neuron/coreneuron.py writes them."""
        ex, args = self.settings.exchange, []
        if ex.bin_queue:
            args.append("--binqueue")
        if ex.spike_compress:
            args += ["--spkcompress", str(ex.spike_compress)]
        if ex.multisend:
            args += ["--multisend", "--ms-subintervals", str(ex.multisend_subintervals),
                     "--ms-phases", str(ex.multisend_phases)]
        return args

    def _count_sites(self, before: dict | None) -> None:
        """What the latency shim counted during the simulation itself (None when no shim is loaded)."""
        after = shim_counters()
        if before is not None and after is not None:
            self.sites_counts = {k: after[k] - before[k] for k in after}

    def _configure_engine(self) -> None:
        from neuron import coreneuron

        opts = self.settings.coreneuron
        coreneuron.enable = self.settings.engine.is_coreneuron
        if not coreneuron.enable:
            return
        if self.mechanisms_dir:
            export_coreneuron_library(Path(self.mechanisms_dir))
        coreneuron.gpu = self.settings.engine.gpu  # GPU support was checked before the network was built
        coreneuron.cell_permute = self.settings.cell_permute
        coreneuron.verbose = opts.verbose
        if opts.nthread > 1:
            pc.nthread(opts.nthread)

    def _fix_outputs(self) -> None:
        if int(pc.id()) == 0 and self.spike_file:
            fix_spike_file(self.spike_file)
        pc.barrier()

    def rank_load(self) -> dict:
        """This rank's compute and wait time (NEURON only: CoreNEURON reports 0), and what the latency shim
        counted during the simulation."""
        load = {"step_time": float(pc.step_time()), "wait_time": float(pc.wait_time())}
        if self.sites_counts is not None:
            load["sites"] = self.sites_counts
        return load


def _next_piece(measured: list[tuple[int, float]], interval_s: float, least: int) -> int:
    """Steps of the next psolve piece, from the (steps, seconds) of those so far (see ``_psolve``)."""
    if len(measured) < 2:
        return 2 * least  # a second, longer piece: two sizes measure the fixed cost of a call
    (s1, w1), (s2, w2) = measured[0], measured[1]
    per_step = (w2 - w1) / (s2 - s1) if s2 != s1 else 0.0
    if per_step <= 0:  # the fixed cost hides the pace: pieces twice as long each time until it shows
        return 2 * measured[-1][0]
    fixed = max(0.0, w1 - per_step * s1)
    return max(least, int(interval_s / per_step), int(99 * fixed / per_step))
