"""The ``bmtk-scaling`` command line.

Builder options are generated from the builders' own signatures, so the CLI and the Python API
always take the same parameters with the same defaults. Bad input exits with status 2 and a message
that names the problem; no partial output is left behind.
"""

from __future__ import annotations

import inspect
import logging
import sys
from pathlib import Path

import click

NETWORK_HELP = {
    "ping": "PING-Assembly: N assemblies of K E/I cells with a gamma rhythm.",
    "pairs": "N-Pairs: N independent sender -> receiver pairs.",
    "cliques": "N-K-Cliques: N all-to-all cliques of K cells.",
}


class _ExitOnValueError(click.Group):
    """Turn the library's ValueErrors (bad parameters, bad paths) into exit status 2 and one line."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ValueError as err:
            click.echo(f"error: {err}", err=True)
            ctx.exit(2)


@click.group(cls=_ExitOnValueError)
@click.version_option(package_name="bmtk-scaling")
def main() -> None:
    """Benchmark networks, rank partitions and engine switches for BMTK's bionet."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("  %(message)s"))
    for name in ("network_builders", "bmtk_scaling"):  # our progress lines only, not bmtk's
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        if not logger.handlers:
            logger.addHandler(handler)


@main.group()
def build() -> None:
    """Build a benchmark network as a ready-to-run BMTK/SONATA folder."""


def _spec_options(spec_fn):
    """click options for every keyword parameter of a ``*_spec`` builder function."""

    def decorate(cmd):
        for name, par in reversed(list(inspect.signature(spec_fn).parameters.items())):
            default = par.default
            kind = float if default is None else type(default)
            cmd = click.option(f"--{name.replace('_', '-')}", name, type=kind, default=default,
                               show_default=True)(cmd)
        return cmd

    return decorate


def _register_build_command(key: str) -> None:
    import network_builders

    spec_fn = network_builders.SPECS[key]
    builder = network_builders.BUILDERS[key]

    @build.command(name=key, help=NETWORK_HELP[key])
    @click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="output folder")
    @click.option("--overwrite", is_flag=True, help="replace a non-empty output folder")
    @click.option("--compression", type=click.Choice(["none", "gzip"]), default="none", show_default=True,
                  help="HDF5 filter; gzip files are not readable by the libsonata wheel")
    @_spec_options(spec_fn)
    def _cmd(out: Path, overwrite: bool, compression: str, **params) -> None:
        built = builder(out, overwrite=overwrite, compression=compression, **params)
        click.echo(f"{built.kind}: {built.n_nodes} cells, {built.n_edges} edges -> {built.path}")
        for name, count in built.edges_per_class.items():
            click.echo(f"  {name:<20} {count:>12,d} edges")
        click.echo("  time: " + ", ".join(f"{k} {v:.1f} s" for k, v in built.timings.items()))
        click.echo(f"run it: cd {built.path} && python run_bionet.py simulation_config.json")


for _key in NETWORK_HELP:
    _register_build_command(_key)


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo_output"), show_default=True,
              help="output folder for the network, its spikes and the raster plot")
@click.option("--assemblies", type=int, default=2, show_default=True)
@click.option("--cells", type=int, default=250, show_default=True, help="cells per assembly")
@click.option("--tstop", type=float, default=600.0, show_default=True, help="ms")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--overwrite", is_flag=True, help="replace a non-empty output folder")
def demo(out: Path, assemblies: int, cells: int, tstop: float, seed: int, overwrite: bool) -> None:
    """Build a small PING network, simulate it on NEURON with bionet, summarise and plot it."""
    from bmtk_scaling.demo import run_demo

    run_demo(out, n_assemblies=assemblies, cells_per_assembly=cells, tstop=tstop, seed=seed,
             overwrite=overwrite)


def _register_partition_command() -> None:
    from bmtk_scaling.partition_cli import partition_command

    main.add_command(partition_command)


_register_partition_command()


if __name__ == "__main__":
    sys.exit(main())
