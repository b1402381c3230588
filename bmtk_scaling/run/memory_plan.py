"""The memory a run will need, per rank and on this machine, before any rank starts; and the build cycles that fit.

Why: a model that does not fit is found out only after minutes of building, when the kernel kills a
rank. NEURON's copy of a model costs several times CoreNEURON's, and CoreNEURON's file mode with
``build_cycles`` N holds only 1/N of NEURON's copy at a time (:mod:`bmtk_scaling.bionet.build_cycles`),
so the plan says what each N is expected to need and which is the smallest that fits.

The model, per rank, with S synapses (NetCons) and C cells on the rank (the network's totals over
the ranks, times the partition map's predicted imbalance where one is named):

- ``base``: the interpreter, NEURON, bmtk and the network's metadata, before any cell is built;
- NEURON's model: ``NEURON_PER_SYNAPSE * S + NEURON_PER_CELL * C`` (lean instantiation; held whole by
  NEURON and online CoreNEURON, 1/N of it at a time in file mode with N build cycles);
- CoreNEURON's model, with what NEURON's freed heap leaves: ``CORENEURON_PER_SYNAPSE * S +
  CORENEURON_PER_CELL * C``.

Peak per rank: NEURON: base + NEURON's; CoreNEURON online: base + both; file mode with N cycles:
base + the larger of NEURON's / N and CoreNEURON's. The coefficients were measured here (PING,
single-compartment HH cells, lean shared synapses, NEURON 9.0.2; ``bench/build_cycles.py`` measures
them again); cells with morphologies cost more per cell, so for those the plan is a floor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bmtk_scaling.config.settings import Settings

BASE_MIB = 200.0  # per rank before the build: measured 174-195 MiB
# bytes: NetCon, its share of the synapse, the writer's buffers: fit 279-293 on PING 2x1250 and 2x2500, 323 on 2x12500
NEURON_PER_SYNAPSE = 320.0
NEURON_PER_CELL = 28_000.0  # bytes: section, HH, PreSyn, bionet's Python cell (fit 26.7 MiB per 1000 cells)
# bytes: CoreNEURON's NetCon and weight, with what NEURON's freed heap leaves: fit 124-141 on PING 2x5000, 2 ranks,
# 500 ms (bench/build_cycles.py), 38-79 on 2x1250 and 2x2500, 1 rank, 100 ms
CORENEURON_PER_SYNAPSE = 130.0
CORENEURON_PER_CELL = 20_000.0  # bytes: CoreNEURON's cell and the hollowed bionet cell objects (fit 19.8 KiB)
MAX_CYCLES = 64  # the plan looks no further: beyond, CoreNEURON's own copy (or the base) is the peak


@dataclass(frozen=True)
class MemoryPlan:
    """Expected peak memory of one run, per rank and summed over the ranks on this machine."""

    ranks: int
    cells: int
    synapses: int
    imbalance: float  # the largest rank's share over the mean (the partition map's prediction, or 1)
    settings: Settings

    @property
    def cells_per_rank(self) -> float:
        return self.cells / self.ranks * self.imbalance

    @property
    def synapses_per_rank(self) -> float:
        return self.synapses / self.ranks * self.imbalance

    def neuron_model_mib(self) -> float:
        return (NEURON_PER_SYNAPSE * self.synapses_per_rank + NEURON_PER_CELL * self.cells_per_rank) / 2**20

    def coreneuron_model_mib(self) -> float:
        return (CORENEURON_PER_SYNAPSE * self.synapses_per_rank + CORENEURON_PER_CELL * self.cells_per_rank) / 2**20

    def peak_per_rank_mib(self, cycles: int | None = None) -> float:
        """Expected peak of the largest rank with ``cycles`` build cycles (default: the config's)."""
        s = self.settings
        if not s.engine.is_coreneuron:
            return BASE_MIB + self.neuron_model_mib()
        cycles = s.coreneuron.build_cycles if cycles is None else cycles
        if not s.uses_file_mode and cycles == 1:
            return BASE_MIB + self.neuron_model_mib() + self.coreneuron_model_mib()
        return BASE_MIB + max(self.neuron_model_mib() / cycles, self.coreneuron_model_mib())

    def peak_gib(self, cycles: int | None = None) -> float:
        """Expected peak summed over the ranks (all on this machine), GiB."""
        return self.peak_per_rank_mib(cycles) * self.ranks / 1024

    def smallest_cycles(self, available_bytes: float) -> int | None:
        """The fewest build cycles whose expected peak fits ``available_bytes``; None if none does."""
        for cycles in range(1, MAX_CYCLES + 1):
            if self.peak_gib(cycles) * 2**30 <= available_bytes:
                return cycles
            if self.neuron_model_mib() / cycles <= self.coreneuron_model_mib():
                return None  # more cycles no longer lower the peak: CoreNEURON's copy sets it
        return None

    def table(self, cycles: tuple[int, ...] = (1, 2, 4, 8, 16)) -> str:
        """One line per N: the expected peak per rank and on the machine."""
        return ", ".join(f"N={n}: {self.peak_per_rank_mib(n) / 1024:.2f} GiB per rank, {self.peak_gib(n):.2f} GiB "
                         "in all" for n in cycles)


def plan_memory(settings: Settings, ranks: int, cells: int, synapses: int, imbalance: float | None = None
                ) -> MemoryPlan:
    """The memory plan of a network of ``cells`` and ``synapses`` run with ``settings`` on ``ranks`` ranks."""
    imbalance = imbalance if imbalance is not None and math.isfinite(imbalance) and imbalance >= 1 else 1.0
    return MemoryPlan(ranks=ranks, cells=cells, synapses=synapses, imbalance=imbalance, settings=settings)


def refusal(plan: MemoryPlan, available_bytes: float | None) -> str | None:
    """Why this run cannot fit the memory available now (None: it is expected to fit, or nothing is known)."""
    if available_bytes is None or plan.peak_gib() * 2**30 <= available_bytes:
        return None
    s = plan.settings
    need = (f"this run is expected to need about {plan.peak_gib():.1f} GiB ({plan.ranks} rank(s), "
            f"{plan.peak_per_rank_mib() / 1024:.1f} GiB each for {plan.cells:,} cells and {plan.synapses:,} synapses) "
            f"but {available_bytes / 2**30:.1f} GiB are available")
    best = plan.smallest_cycles(available_bytes) if s.engine.is_coreneuron else None
    if best is not None:
        return (f"{need}: build the model in cycles, e.g. configure --engine coreneuron --build-cycles {best} "
                f"(expected {plan.peak_gib(best):.1f} GiB; {plan.table()})")
    if not s.engine.is_coreneuron:
        core = plan_memory(Settings(engine="coreneuron"), plan.ranks, plan.cells, plan.synapses, plan.imbalance)
        best = core.smallest_cycles(available_bytes)
        if best is not None:
            return (f"{need}: run it on CoreNEURON built in cycles (configure --engine coreneuron --build-cycles "
                    f"{best}: expected {core.peak_gib(best):.1f} GiB)")
    return (f"{need}, and CoreNEURON's own copy alone needs more: run it on more machines (SLURM, "
            "--launcher srun) or choose a smaller network")
