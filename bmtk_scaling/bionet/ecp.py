"""The extracellular potential (ECP) under psolve: membrane currents gathered during psolve, folded in blocks.

bmtk's ``EcpMod`` reads every biophysical cell's ``i_membrane_`` from Python after each step and
multiplies it by the cell's electrode transfer matrix. :class:`RecordedEcp` keeps bmtk's module for
everything but the per-step work: its ``initialize`` computes the transfer matrices (the same
``RecXElectrode``), switches on ``cvode.use_fast_imem`` and creates ``ecp.h5`` and the per-cell
contribution files. The simulator then runs ``psolve`` in chunks of at most ``chunk_steps`` steps, and the
currents of each chunk (steps x segments) are gathered without Python:

- on NEURON by the plugin's ``ecp_imem`` mechanism (``components/mechanisms/modfiles/ecp_imem.mod``), inserted
  into every section of the ECP's cells: after each step it copies its segment's ``i_membrane_`` into one
  buffer of the rank (row: the step in the chunk; column: the segment in bmtk's order). NEURON's own
  ``Vector.record`` reads ``i_membrane_`` through a data handle per sample and tripled the simulate time of
  bio_450cells; the mechanism reads NEURON's array by node index;
- on CoreNEURON (or where the mechanism is not loaded, or NEURON runs several threads) with ``Vector.record``
  per segment, which CoreNEURON fills from its own arrays. :meth:`RecordedEcp.start` sizes the vectors once.

Between chunks each cell's currents go through its transfer matrix in one product, the rows are handed to
bmtk's own block buffer exactly where its ``step`` would have put them (bmtk's ``block`` writes the sum; each
cell's contribution file is written in whole HDF5 chunks by ``_bmtk_private.EcpRows`` from bmtk's own per-cell
buffers), and the buffer is reused. Memory stays at ``8 bytes x local segments x (chunk_steps + 1)`` (plus one
cell's currents when recorded, and bmtk's block buffers) whatever the run's length.

Row k of bmtk's ``ecp/data`` is the ECP after step k+1 (bmtk never stores t = 0; its ``ecp/time``
still says ``(0, tstop, dt)``): the copy starts after the first step, and the sample ``Vector.record`` takes
at t = 0 is dropped. The sum over cells is taken in bmtk's order, so the only difference from stock is one
matrix product per block instead of one matrix-vector product per step (rounding level, see
docs/real-networks.md).
"""

from __future__ import annotations

import time

from neuron import h
from threadpoolctl import threadpool_limits

from bmtk_scaling._bmtk_private import EcpRows, ecp_cell_gids, ecp_transfer_matrix

BYTES_PER_SAMPLE = 8
MECHANISM = "ecp_imem"


def mechanism_loaded() -> bool:
    """Whether NEURON has the plugin's ``ecp_imem`` mechanism (a network's mechanisms build carries it)."""
    return hasattr(h, f"setbuf_{MECHANISM}")


class RecordedEcp:
    """bmtk's ``EcpMod`` with ``i_membrane_`` gathered during psolve and folded between psolve chunks.

    ``copy``: gather with the ``ecp_imem`` mechanism (NEURON, one thread), else with ``Vector.record``.
    """

    def __init__(self, module, copy: bool = False) -> None:
        self.module = module
        self.copy = copy
        self._segments: dict[int, list] = {}  # gid -> its segments, in bmtk's order (its matrix's columns)
        self._vectors: dict[int, list] = {}
        self._buffer = None
        self._rows: EcpRows | None = None
        self._steps_done = 0
        self.write_s = 0.0  # of the folds' time: the block buffers and the blocks written to the files

    @property
    def local_segments(self) -> int:
        return sum(len(v) for v in self._segments.values())

    @property
    def how(self) -> str:
        return f"copied by {MECHANISM}" if self.copy else "recorded by Vector.record"

    def initialize(self, sim) -> None:
        self.module.initialize(sim)
        self._rows = EcpRows(self.module)
        column = 0
        for gid in ecp_cell_gids(self.module):
            cell = sim.net.get_cell_gid(gid)
            segments = []
            for sec in cell.hobj.all:  # bmtk's order (BioCell.set_im_ptr), the transfer matrix's columns
                if self.copy:
                    sec.insert(MECHANISM)
                for seg in sec:
                    if self.copy:
                        getattr(seg, MECHANISM).col = column
                        column += 1
                    segments.append(seg)
            self._segments[gid] = segments
            if not self.copy:
                vectors = []
                for seg in segments:
                    vec = h.Vector()
                    vec.record(seg._ref_i_membrane_)
                    vectors.append(vec)
                self._vectors[gid] = vectors
        self._steps_done = 0

    def chunk_steps(self, budget_bytes: int) -> int:
        """How many steps of currents fit in ``budget_bytes`` on this rank (at least 1)."""
        return max(1, budget_bytes // max(1, BYTES_PER_SAMPLE * self.local_segments) - 1)  # + the t = 0 sample

    def start(self, steps: int) -> None:
        """Before the first chunk (after ``finitialize``): room for ``steps`` steps of every current, made once."""
        if not self.copy:
            # NEURON then appends each sample without growing, copying and re-allocating ~1e5 vectors
            for vectors in self._vectors.values():
                for vec in vectors:
                    vec.buffer_size(steps + 1)
            return
        n = self.local_segments
        self._buffer = h.Vector(max(1, steps * n))
        setattr(h, f"ncol_{MECHANISM}", n)
        setattr(h, f"nrow_{MECHANISM}", steps)
        for segments in self._segments.values():
            for seg in segments:  # the model is set up now: node indices are final
                getattr(seg, MECHANISM).node = seg.node_index()
        if n:
            getattr(h, f"setdata_{MECHANISM}")(next(iter(self._segments.values()))[0])
            getattr(h, f"setbuf_{MECHANISM}")(self._buffer)

    def before_chunk(self) -> None:
        """The next chunk's first step goes to the buffer's first row."""
        if self.copy:
            setattr(h, f"tstart_{MECHANISM}", h.t)

    def fold(self, sim, n_steps: int) -> None:
        """Add the ECP of the chunk's ``n_steps`` steps to bmtk's blocks (recorded currents: the vectors' last
        ``n_steps`` samples; the samples before them, t = 0 or none, are dropped) and empty the vectors."""
        if n_steps <= 0:
            return
        contributions = []
        # one BLAS thread: each MPI rank has its core, and a threaded product between ranks ran 8x slower here
        with threadpool_limits(limits=1, user_api="blas"):
            if self.copy:
                n = self.local_segments
                copied = self._buffer.as_numpy()[:n_steps * n].reshape(n_steps, n)
                first = 0
                for gid, segments in self._segments.items():
                    currents = copied[:, first:first + len(segments)]
                    first += len(segments)
                    contributions.append((gid, (ecp_transfer_matrix(self.module, gid) @ currents.T).T))
            else:
                joined = h.Vector()  # one cell's currents, segments x samples: one hoc call, not one per segment
                for gid, vectors in self._vectors.items():
                    samples = int(vectors[0].size())
                    joined.resize(0)
                    joined.append(*vectors)
                    currents = joined.as_numpy().reshape(len(vectors), samples)[:, samples - n_steps:]
                    contributions.append((gid, (ecp_transfer_matrix(self.module, gid) @ currents).T))
                    for vec in vectors:
                        vec.resize(0)
        started = time.perf_counter()
        self._rows.add(sim, contributions, self._steps_done, n_steps)
        self.write_s += time.perf_counter() - started
        self._steps_done += n_steps

    def finalize(self, sim) -> None:
        if self.copy and self._segments:
            getattr(h, f"setbuf_{MECHANISM}")()  # the buffer goes with this module: no copy into it after the run
        self._buffer = None
        self._rows.close()
        self.module.finalize(sim)
