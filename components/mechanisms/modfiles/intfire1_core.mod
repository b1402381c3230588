COMMENT
bmtk-scaling's stand-in for NEURON's built-in IntFire1 on CoreNEURON, which does not ship IntFire1.

Same state and parameters as the built-in: a leaky integrator m (time constant tau) that fires when
m exceeds 1, then ignores input for refrac ms. The built-in ends the refractory period with a
self-event (net_send); a self-event still pending at tstop crashes NEURON when CoreNEURON hands the
queue back. Here the refractory period ends at the first input that arrives at or after its end,
with the state the self-event would have left (m = 0, t0 = the end), so every spike is the built-in's.
m reads 2 until that input (the built-in's M() is not provided).
ENDCOMMENT

NEURON {
    ARTIFICIAL_CELL BmtkScalingIntFire1
    RANGE tau, refrac, m
    THREADSAFE
}

PARAMETER {
    tau = 10 (ms)
    refrac = 5 (ms)
}

ASSIGNED {
    m
    t0 (ms)
    tend (ms)
    refractory
}

INITIAL {
    m = 0
    t0 = t
    tend = t
    refractory = 0
}

NET_RECEIVE (w) {
    if (refractory == 1) {
        if (t >= tend) {
            t0 = tend
            refractory = 0
            m = 0
        }
    }
    if (refractory == 0) {
        m = m*exp(-(t - t0)/tau)
        t0 = t
        m = m + w
        if (m > 1) {
            refractory = 1
            m = 2
            tend = t + refrac
            net_event(t)
        }
    }
}
