"""Does this NEURON build run CoreNEURON on a GPU? Asked in a child process.

A wheel built without GPU support does not raise: ``coreneuron.gpu = True`` followed by a psolve
prints "GPU support was not enabled at build time" and exits the whole process with status 42. So
we try a one-cell model in a subprocess and read its exit status and output.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from dataclasses import dataclass

from bmtk_scaling.environment import configure_neuron_environment

_PROBE = """
from neuron import h, coreneuron
h.load_file("stdrun.hoc")
soma = h.Section(name="soma")
soma.insert("hh")
pc = h.ParallelContext()
pc.set_gid2node(0, 0)
nc = h.NetCon(soma(0.5)._ref_v, None, sec=soma)
pc.cell(0, nc)
h.cvode.cache_efficient(1)
coreneuron.enable = True
coreneuron.gpu = True
h.finitialize(-65)
pc.psolve(1.0)
print("GPU-PROBE-OK")
"""

HOW_TO_GET_GPU = (
    "GPU runs need NEURON built with CoreNEURON GPU support (NVIDIA HPC SDK, "
    "cmake -DCORENRN_ENABLE_GPU=ON; see nrn.readthedocs.io 'CoreNEURON' install docs) and an NVIDIA GPU; "
    "the PyPI 'neuron' wheel has none. Run without --gpu to use CoreNEURON on the CPU."
)


class GpuUnavailableError(ValueError):
    """GPU asked for where this NEURON build or machine cannot provide one (a configuration error)."""


@dataclass(frozen=True)
class GpuSupport:
    available: bool
    reason: str


@functools.lru_cache(maxsize=1)
def probe_gpu_support(timeout: float = 120.0) -> GpuSupport:
    """Run the probe once per process; never raises."""
    env = configure_neuron_environment(dict(os.environ))
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return GpuSupport(False, f"the GPU probe did not finish within {timeout:.0f} s")
    out = proc.stdout + proc.stderr
    if proc.returncode == 0 and "GPU-PROBE-OK" in out:
        return GpuSupport(True, "CoreNEURON ran a probe model on the GPU")
    if "GPU support was not enabled" in out or proc.returncode == 42:
        return GpuSupport(False, "this NEURON build has no CoreNEURON GPU support (probe exited with status "
                          f"{proc.returncode}: 'GPU support was not enabled at build time')")
    tail = " | ".join(out.strip().splitlines()[-3:])
    return GpuSupport(False, f"the GPU probe failed with status {proc.returncode}: {tail}")


def require_gpu_support() -> None:
    """Raise a clear error, before any run, when GPU execution is not possible here."""
    support = probe_gpu_support()
    if not support.available:
        raise GpuUnavailableError(f"GPU requested but unavailable: {support.reason}. {HOW_TO_GET_GPU}")
