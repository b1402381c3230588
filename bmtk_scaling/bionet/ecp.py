"""The extracellular potential (ECP) under psolve: membrane currents recorded by NEURON, folded in blocks.

bmtk's ``EcpMod`` reads every biophysical cell's ``i_membrane_`` from Python after each step and
multiplies it by the cell's electrode transfer matrix. :class:`RecordedEcp` keeps bmtk's module for
everything but the per-step work: its ``initialize`` computes the transfer matrices (the same
``RecXElectrode``), switches on ``cvode.use_fast_imem`` and creates ``ecp.h5`` and the per-cell
contribution files; NEURON then records every segment's ``i_membrane_`` with ``Vector.record``
(on NEURON and on CoreNEURON), and the simulator runs ``psolve`` in chunks of at most
``chunk_steps`` steps. Between chunks the recorded currents (segments x steps) go through the transfer
matrix in one product per cell, the rows are handed to bmtk's own block writer exactly where its
``step`` would have put them, and the vectors are emptied (their room kept: :meth:`RecordedEcp.reserve` sizes them
once, so NEURON appends each sample without re-allocating). Memory stays at
``8 bytes x local segments x (chunk_steps + 1)`` plus one cell's currents whatever the run's length.

Row k of bmtk's ``ecp/data`` is the ECP after step k+1 (bmtk never stores t = 0; its ``ecp/time``
still says ``(0, tstop, dt)``), so each fold takes the chunk's last samples and drops the one NEURON
records at t = 0. The sum over cells is taken in bmtk's order, so the only
difference from stock is one matrix product per block instead of one matrix-vector product per step
(rounding level, see docs/real-networks.md).
"""

from __future__ import annotations

from neuron import h
from threadpoolctl import threadpool_limits

from bmtk_scaling._bmtk_private import ecp_cell_gids, ecp_transfer_matrix, release_unused_ecp_buffers, write_ecp_rows

BYTES_PER_SAMPLE = 8


class RecordedEcp:
    """bmtk's ``EcpMod`` with ``i_membrane_`` recorded by NEURON and folded between psolve chunks."""

    def __init__(self, module) -> None:
        self.module = module
        self._vectors: dict[int, list] = {}
        self._steps_done = 0

    @property
    def local_segments(self) -> int:
        return sum(len(v) for v in self._vectors.values())

    def initialize(self, sim) -> None:
        self.module.initialize(sim)
        release_unused_ecp_buffers(self.module)
        for gid in ecp_cell_gids(self.module):
            cell = sim.net.get_cell_gid(gid)
            vectors = []
            for sec in cell.hobj.all:  # bmtk's order (BioCell.set_im_ptr), the transfer matrix's columns
                for seg in sec:
                    vec = h.Vector()
                    vec.record(seg._ref_i_membrane_)
                    vectors.append(vec)
            self._vectors[gid] = vectors
        self._steps_done = 0

    def chunk_steps(self, budget_bytes: int) -> int:
        """How many steps of currents fit in ``budget_bytes`` on this rank (at least 1)."""
        return max(1, budget_bytes // max(1, BYTES_PER_SAMPLE * self.local_segments) - 1)  # + the t = 0 sample

    def reserve(self, steps: int) -> None:
        """Give every current's vector room for a chunk (and the t = 0 sample) before the run: NEURON then appends
        each sample without growing, copying and re-allocating ~1e5 vectors over the first chunk."""
        for vectors in self._vectors.values():
            for vec in vectors:
                vec.buffer_size(steps + 1)

    def fold(self, sim, n_steps: int) -> None:
        """Take the last ``n_steps`` samples of every recorded current, add their ECP to bmtk's blocks, empty the
        vectors (the samples before them: t = 0, which bmtk does not store, or none)."""
        if n_steps <= 0:
            return
        contributions = []
        joined = h.Vector()  # one cell's currents, segments x samples: one hoc call, not one per segment
        # one BLAS thread: each MPI rank has its core, and a threaded product between ranks ran 8x slower here
        with threadpool_limits(limits=1, user_api="blas"):
            for gid, vectors in self._vectors.items():
                samples = int(vectors[0].size())
                joined.resize(0)
                joined.append(*vectors)
                currents = joined.as_numpy().reshape(len(vectors), samples)[:, samples - n_steps:]
                contributions.append((gid, (ecp_transfer_matrix(self.module, gid) @ currents).T))
                for vec in vectors:
                    vec.resize(0)
        write_ecp_rows(self.module, sim, contributions, self._steps_done, n_steps)
        self._steps_done += n_steps

    def finalize(self, sim) -> None:
        self.module.finalize(sim)

