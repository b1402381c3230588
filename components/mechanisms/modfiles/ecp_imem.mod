COMMENT
The ECP's membrane currents on NEURON: after every step each segment's i_membrane_ (cvode.use_fast_imem) is copied
into one buffer of the rank, row = step of the psolve chunk, column = the segment's place in bmtk's order
(bmtk_scaling/bionet/ecp.py sets col, node, the buffer and the globals). NEURON's Vector.record of i_membrane_ reads
it through a data handle, about 0.15 us a sample; this reads the thread's array by node index. It runs in
nrn_state, after NEURON has computed i_membrane_ for the step; it adds no current. CoreNEURON compiles it as an
empty procedure (the plugin records the currents there with Vector.record).
ENDCOMMENT

NEURON {
    THREADSAFE
    SUFFIX ecp_imem
    RANGE col, node
    GLOBAL tstart, ncol, nrow
}

PARAMETER {
    col = 0
    node = 0
    tstart = 0 (ms)
    ncol = 0
    nrow = 0
}

VERBATIM
#ifndef CORENEURON_BUILD
static double* ecp_imem_buffer;
#endif
ENDVERBATIM

BREAKPOINT {
    SOLVE copy
}

PROCEDURE copy() {
VERBATIM
#ifndef CORENEURON_BUILD
    {
        long row = (long)((t - tstart) / dt + 0.5) - 1;
        if (ecp_imem_buffer && row >= 0 && row < (long)nrow) {
            ecp_imem_buffer[row * (long)ncol + (long)col] = _nt->node_sav_rhs_storage()[(long)node];
        }
    }
#endif
    return 0;
ENDVERBATIM
}

FUNCTION setbuf() {
    : setbuf(vector): copy into it from now on; setbuf(): stop copying
VERBATIM
#ifndef CORENEURON_BUILD
    ecp_imem_buffer = ifarg(1) ? vector_vec(vector_arg(1)) : (double*)0;
#endif
ENDVERBATIM
    setbuf = 0
}
