"""The extracellular potential (ECP) under psolve: membrane currents gathered during psolve, folded in blocks.

bmtk's ``EcpMod`` reads every biophysical cell's ``i_membrane_`` from Python after each step and
multiplies it by the cell's electrode transfer matrix. :class:`RecordedEcp` keeps bmtk's module for
everything but the per-step work: its ``initialize`` computes the transfer matrices (the same
``RecXElectrode``), switches on ``cvode.use_fast_imem`` and creates ``ecp.h5`` and the per-cell
contribution files. The simulator then runs ``psolve`` in chunks of at most ``chunk_steps`` steps, and the
currents of each chunk (steps x segments) are gathered without Python:

- by the plugin's ``EcpImem`` mechanism (``components/mechanisms/modfiles/ecp_imem.mod``), one instance per rank
  on NEURON and on CoreNEURON: after each step it copies every segment's ``i_membrane_`` into one buffer of the
  rank (row: the step in the chunk; column: the segment in bmtk's order), one gather by node index. NEURON's
  ``Vector.record`` reads ``i_membrane_`` through a data handle per sample, CoreNEURON's calls one record object per
  segment and step, and both then hand each vector back through hoc: on bio_450cells that tripled the simulate
  time;
- with ``Vector.record`` per segment where the copy cannot run: the mechanism not loaded, more than one thread,
  a GPU, or a CoreNEURON node permutation (``cell_permute`` 1 or 2). :meth:`RecordedEcp.start` sizes the vectors
  once.

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

import numpy as np
from neuron import h
from threadpoolctl import threadpool_limits

from bmtk_scaling._bmtk_private import EcpRows, ecp_cell_gids, ecp_transfer_matrix

BYTES_PER_SAMPLE = 8
MECHANISM = "EcpImem"


def mechanism_loaded() -> bool:
    """Whether NEURON has the plugin's ``EcpImem`` mechanism (a network's mechanisms build carries it)."""
    return hasattr(h, MECHANISM)


def _address(array) -> float:
    """An array's address as the mechanism's globals hold it: a double, exact below 2^53."""
    address = array.ctypes.data
    assert address < 2**53, address
    return float(address)


class RecordedEcp:
    """bmtk's ``EcpMod`` with ``i_membrane_`` gathered during psolve and folded between psolve chunks.

    ``copy``: gather with the ``EcpImem`` mechanism (one thread, CoreNEURON's nodes in NEURON's order), else with
    ``Vector.record``.
    """

    def __init__(self, module, copy: bool = False) -> None:
        self.module = module
        self.copy = copy
        self._segments: dict[int, list] = {}  # gid -> its segments, in bmtk's order (its matrix's columns)
        self._vectors: dict[int, list] = {}
        self._buffer = None
        self._nodes = None
        self._copier = None
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
        for gid in ecp_cell_gids(self.module):
            cell = sim.net.get_cell_gid(gid)
            # bmtk's order (BioCell.set_im_ptr), the transfer matrix's columns
            self._segments[gid] = segments = [seg for sec in cell.hobj.all for seg in sec]
            if self.copy and self._copier is None:
                self._copier = getattr(h, MECHANISM)(segments[0])  # where it sits does not matter: it adds no current
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
        if not self._segments:
            return
        n = self.local_segments
        self._buffer = np.empty((steps, n))  # pages are touched by the first chunk's copy, not here
        # the model is set up now: node indices are final
        self._nodes = np.array([seg.node_index() for segments in self._segments.values() for seg in segments],
                               dtype=np.intc)
        self._copy_into(buffer=_address(self._buffer), nodes=_address(self._nodes), ncol=n, nrow=steps)

    def before_chunk(self) -> None:
        """The next chunk's first step goes to the buffer's first row."""
        if self.copy and self._buffer is not None:
            self._copy_into(tstart=h.t)
            self._buffer[:, 0] = np.nan  # a row the copy missed shows in fold

    def _copy_into(self, **values: float) -> None:
        for name, value in values.items():
            setattr(self._copier, name, value)

    def fold(self, sim, n_steps: int) -> None:
        """Add the ECP of the chunk's ``n_steps`` steps to bmtk's blocks (recorded currents: the vectors' last
        ``n_steps`` samples; the samples before them, t = 0 or none, are dropped) and empty the vectors."""
        if n_steps <= 0:
            return
        contributions = []
        # one BLAS thread: each MPI rank has its core, and a threaded product between ranks ran 8x slower here
        with threadpool_limits(limits=1, user_api="blas"):
            if self.copy and self._buffer is not None:  # None: no ECP cell on this rank, nothing to fold
                copied = self._buffer[:n_steps]
                if np.isnan(copied[:, 0]).any():
                    raise RuntimeError(f"bug: {MECHANISM} left rows of the chunk before t = {h.t} ms unfilled")
                first = 0
                for gid, segments in self._segments.items():
                    currents = copied[:, first:first + len(segments)]
                    first += len(segments)
                    contributions.append((gid, (ecp_transfer_matrix(self.module, gid) @ currents.T).T))
            elif not self.copy:
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
        if self._copier is not None:
            self._copy_into(buffer=0, nodes=0)  # the arrays go with this module: no copy into them after the run
        self._buffer = self._nodes = self._copier = None
        self._rows.close()
        self.module.finalize(sim)
