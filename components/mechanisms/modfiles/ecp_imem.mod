COMMENT
The ECP's membrane currents, on NEURON and on CoreNEURON: one instance per rank (bmtk_scaling/bionet/ecp.py
places it), which after every step copies the i_membrane_ (cvode.use_fast_imem) of every segment the ECP reads
into row (step after tstart) - 1 of one buffer, in bmtk's segment order (the columns of the transfer matrices).

Why not Vector.record: NEURON reads each sample through a data handle (about 0.15 us a sample) and CoreNEURON
calls one record object per segment and step; both then need one hoc call per vector to hand the samples back.
This is one loop over an index array per step: a gather from the thread's i_membrane_ array into a row.

Its parameters hold addresses as doubles (exact below 2^53, which every user-space address is): the buffer
(ncol x nrow doubles) and the node indices (ncol ints, each segment's node in its NrnThread). They are the
instance's parameters, not POINTERs or GLOBALs: CoreNEURON's in-memory transfer copies an instance's parameters
at every psolve (its GLOBALs only at the process's first), so its copy of this mechanism sees them; that
copy reads CoreNEURON's own i_membrane_ array by the same node indices, valid while CoreNEURON keeps NEURON's
node order (cell_permute 0, the CPU's default; ecp.py records with Vector.record otherwise). Address 0 stops
the copy. It runs in nrn_state, after i_membrane_ is computed for the step; it adds no current.
ENDCOMMENT

NEURON {
    THREADSAFE
    POINT_PROCESS EcpImem
    RANGE buffer, nodes, ncol, nrow, tstart
}

PARAMETER {
    buffer = 0
    nodes = 0
    ncol = 0
    nrow = 0
    tstart = 0 (ms)
}

BREAKPOINT {
    SOLVE copy
}

PROCEDURE copy() {
VERBATIM
    {
        double* into = (double*)(size_t)buffer;
        const int* node_of = (const int*)(size_t)nodes;
        long row = (long)((t - tstart) / dt + 0.5) - 1;
        if (into && node_of && row >= 0 && row < (long)nrow) {
#ifdef CORENEURON_BUILD
            const double* imem = nt->nrn_fast_imem ? nt->nrn_fast_imem->nrn_sav_rhs : (double*)0;
#else
            const double* imem = _nt->node_sav_rhs_storage();
#endif
            long width = (long)ncol;
            into += row * width;
            if (imem) {
                for (long k = 0; k < width; ++k) {
                    into[k] = imem[node_of[k]];
                }
            }
        }
    }
    return 0;
ENDVERBATIM
}
