"""``python -m bmtk_scaling.cli``: the same command line as ``bmtk-scaling``."""

from bmtk_scaling.cli import main

main(prog_name="bmtk-scaling")
