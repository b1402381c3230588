TITLE VecStim: artificial cell that emits events at the times stored in a Vector

COMMENT
Usage (NEURON side):  vs = h.VecStim(); vs.play(tvec)   (tvec sorted ascending, ms)

Each element of tvec becomes one output event (net_event) at that time. Times that
are already in the past when they come up (t < current time, e.g. negative times at
initialisation) are skipped instead of raising a negative-delay error.

Written for NEURON and CoreNEURON (nrnivmodl -coreneuron). The Vector lives behind a
BBCOREPOINTER: on the NEURON side it is a hoc Vector (referenced while held); when the
model is handed to CoreNEURON, bbcore_write copies its length (int data) and its
times (double data), and bbcore_read rebuilds a CoreNEURON vector from them.
ENDCOMMENT

NEURON {
    THREADSAFE
    ARTIFICIAL_CELL VecStim
    BBCOREPOINTER ptr
}

ASSIGNED {
    index
    etime (ms)
    ptr
}

INITIAL {
    index = 0
    element()
    if (index > 0) {
        net_send(etime - t, 1)
    }
}

NET_RECEIVE (w) {
    if (flag == 1) {
        net_event(t)
        element()
        if (index > 0) {
            net_send(etime - t, 1)
        }
    }
}

PROCEDURE element() {
    : advance index to the next event time not earlier than t; index = -1 when exhausted
VERBATIM
    {
        IvocVect* vec = (IvocVect*)(_p_ptr);
        int i = (int)index;
        int n;
        double* tv;
        if (i < 0 || !vec) {
            index = -1.;
        } else {
            n = vector_capacity(vec);
            tv = vector_vec(vec);
            while (i < n && tv[i] < t) {
                ++i;
            }
            if (i < n) {
                etime = tv[i];
                index = (double)(i + 1);
            } else {
                index = -1.;
            }
        }
    }
ENDVERBATIM
}

PROCEDURE play() {
    : play(vec) holds a reference to vec; play() with no argument releases it
VERBATIM
#if !NRNBBCORE
    {
        IvocVect* held = (IvocVect*)(_p_ptr);
        IvocVect* fresh = NULL;
        if (ifarg(1)) {
            fresh = vector_arg(1);
            hoc_obj_ref(*vector_pobj(fresh));
        }
        if (held) {
            hoc_obj_unref(*vector_pobj(held));
        }
        _p_ptr = fresh;
    }
#endif
ENDVERBATIM
}

DESTRUCTOR {
VERBATIM
#if !NRNBBCORE
    {
        IvocVect* held = (IvocVect*)(_p_ptr);
        if (held) {
            hoc_obj_unref(*vector_pobj(held));
        }
    }
#endif
ENDVERBATIM
}

VERBATIM
/* Layout per instance: ints [n], doubles [t_0 ... t_{n-1}]. Called once with null
   buffers to size them, then again to fill them. */
static void bbcore_write(double* xbuf, int* ibuf, int* xoff, int* ioff, _threadargsproto_) {
    int n = 0;
    int k;
    double* tv;
    IvocVect* vec = (IvocVect*)(_p_ptr);
    if (vec) {
        n = vector_capacity(vec);
    }
    if (xbuf && ibuf) {
        ibuf[*ioff] = n;
        if (n > 0) {
            tv = vector_vec(vec);
            for (k = 0; k < n; ++k) {
                xbuf[*xoff + k] = tv[k];
            }
        }
    }
    *ioff += 1;
    *xoff += n;
}

static void bbcore_read(double* xbuf, int* ibuf, int* xoff, int* ioff, _threadargsproto_) {
    int n = ibuf[*ioff];
    int k;
    double* tv;
    IvocVect* vec = vector_new1(n);
    tv = vector_vec(vec);
    for (k = 0; k < n; ++k) {
        tv[k] = xbuf[*xoff + k];
    }
    _p_ptr = vec;
    *ioff += 1;
    *xoff += n;
}
ENDVERBATIM
