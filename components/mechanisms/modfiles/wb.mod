TITLE wb: Wang-Buzsaki inhibitory cell (Na, K, leak)

COMMENT
Single-compartment Wang-Buzsaki (WB) model of a fast-spiking interneuron, as in
C. Boergers, "An Introduction to Modeling Neuronal Dynamics", Springer 2017, ch. 5
(Wang and Buzsaki, J. Neurosci. 1996). The temperature factor phi = 5 is folded into
the h and n rates below.

  I = gna m_inf(v)^3 h (v - ena) + gk n^4 (v - ek) + gl (v - el)

The Na activation m follows its steady state instantaneously; h and n are gating
states (dx/dt = alpha (1 - x) - beta x, solved exactly for fixed v by cnexp).

m = m_inf(v) is set in the state update (with h and n, at the newest v), not in
BREAKPOINT. In BREAKPOINT, NEURON's numerical di/dv would include the steep
dm_inf/dv of the Na current; during the upstroke that negative slope conductance
exceeds C/dt, the linearised implicit step overshoots and v jumps from about -50 mV
to -108 mV: spikes vanish and RTM at 1.4 nA fired at half its true rate. Treated like
a gate with zero time constant, m lags v by one step (first-order error, as NEURON's
default fixed step): 1.4 nA rates are within 0.6 % (RTM) and 3 % (WB) of the exact
ODE at dt = 0.025 ms; at dt = 0.1 ms WB fires about 13 % too fast.
Each current is NONSPECIFIC with its own reversal potential, so the cell does not
interact with NEURON's na/k ion pools (no concentrations in this model).
Written for NEURON and CoreNEURON (nrnivmodl -coreneuron): THREADSAFE, no VERBATIM.
ENDCOMMENT

NEURON {
    SUFFIX wb
    NONSPECIFIC_CURRENT i_na, i_k, i_leak
    RANGE gnabar, gkbar, gl, ena, ek, el
    RANGE m, minf, hinf, ninf, htau, ntau
    THREADSAFE
}

UNITS {
    (mA) = (milliamp)
    (mV) = (millivolt)
    (S) = (siemens)
}

PARAMETER {
    gnabar = 0.035 (S/cm2)
    gkbar = 0.009 (S/cm2)
    gl = 0.0001 (S/cm2)
    ena = 55 (mV)
    ek = -90 (mV)
    el = -65 (mV)
}

ASSIGNED {
    v (mV)
    i_na (mA/cm2)
    i_k (mA/cm2)
    i_leak (mA/cm2)
    m
    minf
    hinf
    ninf
    htau (ms)
    ntau (ms)
}

STATE {
    h
    n
}

BREAKPOINT {
    SOLVE states METHOD cnexp
    i_na = gnabar * m * m * m * h * (v - ena)
    i_k = gkbar * n * n * n * n * (v - ek)
    i_leak = gl * (v - el)
}

INITIAL {
    rates(v)
    m = minf
    h = hinf
    n = ninf
}

DERIVATIVE states {
    rates(v)
    m = minf
    h' = (hinf - h) / htau
    n' = (ninf - n) / ntau
}

FUNCTION m_inf(v (mV)) {
    LOCAL a, b
    UNITSOFF
    a = 0.1 * vtrap(v + 35, 10)
    b = 4 * exp(-(v + 60) / 18)
    UNITSON
    m_inf = a / (a + b)
}

PROCEDURE rates(v (mV)) {
    LOCAL a, b
    UNITSOFF
    minf = m_inf(v)
    a = 0.35 * exp(-(v + 58) / 20)
    b = 5 / (1 + exp(-(v + 28) / 10))
    htau = 1 / (a + b)
    hinf = a * htau
    a = 0.05 * vtrap(v + 34, 10)
    b = 0.625 * exp(-(v + 44) / 80)
    ntau = 1 / (a + b)
    ninf = a * ntau
    UNITSON
}

FUNCTION vtrap(x, k) {
    : x / (1 - exp(-x/k)), continuous through its removable singularity at x = 0
    if (fabs(x / k) < 1e-6) {
        vtrap = k * (1 + x / (2 * k))
    } else {
        vtrap = x / (1 - exp(-x / k))
    }
}
