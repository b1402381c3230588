"""bmtk-scaling: benchmark networks, rank partitions and engine switches for BMTK's bionet.

Importing the package only prepares the process environment (the MPI library NEURON must load);
it never imports NEURON or bmtk, so the CLI starts fast and MPI can still be initialised first.
"""

from bmtk_scaling.environment import configure_neuron_environment

__version__ = "0.1.0"

configure_neuron_environment()

__all__ = ["__version__", "configure_neuron_environment"]
