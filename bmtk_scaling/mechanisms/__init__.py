"""Compiling and caching NMODL mechanisms for NEURON and CoreNEURON."""

from bmtk_scaling.mechanisms.build import (
    compile_mechanisms,
    corenrn_library,
    ensure_compiled,
    export_coreneuron_library,
    install_mechanisms,
    project_components_dir,
)

__all__ = ["compile_mechanisms", "corenrn_library", "ensure_compiled", "export_coreneuron_library",
           "install_mechanisms", "project_components_dir"]
