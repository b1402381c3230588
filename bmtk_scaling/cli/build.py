"""``bmtk-scaling build NETWORK``: one subcommand per benchmark network, its options from the builder itself.

The options are read from the builder's ``*_spec`` signature (names, types, defaults), so the CLI
and the Python API always take the same parameters with the same defaults.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

import click

from network_builders.registry import BUILDERS, Builder

_CLICK_TYPES = {int: int, float: float, str: str}


class BuildGroup(click.Group):
    """The networks of the registry; a network's module is imported only when its command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(BUILDERS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return _command(BUILDERS[name]) if name in BUILDERS else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Networks"):  # from the registry: no builder module imported for this list
            formatter.write_dl([(b.name, b.summary) for b in BUILDERS.values()])


def _option_type(annotation) -> type:
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    return _CLICK_TYPES.get(args[0], str)


def _command(builder: Builder) -> click.Command:
    hints = typing.get_type_hints(builder.spec)

    def run(out: Path, overwrite: bool, compression: str, force: bool, **params) -> None:
        built = builder.build(out, overwrite=overwrite, compression=compression, force=force, **params)
        click.echo(f"{built.kind}: {built.n_nodes} cells, {built.n_edges} edges -> {built.path}")
        for name, count in built.edges_per_class.items():
            click.echo(f"  {name:<20} {count:>12,d} edges")
        click.echo("  time: " + ", ".join(f"{k} {v:.1f} s" for k, v in built.timings.items()))
        click.echo(f"run it: bmtk-scaling run {built.simulation_config} --ranks 2")

    params = [
        click.Option(["--out"], type=click.Path(path_type=Path), required=True, help="output folder"),
        click.Option(["--overwrite"], is_flag=True, help="replace a non-empty output folder"),
        click.Option(["--compression"], type=click.Choice(["none", "gzip"]), default="none", show_default=True,
                     help="HDF5 filter; gzip files are not readable by the libsonata wheel"),
        click.Option(["--force"], is_flag=True, help="build even if the estimated memory exceeds what is available"),
    ]
    for name, par in builder.parameters().items():
        if par.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        params.append(click.Option([f"--{name.replace('_', '-')}", name], type=_option_type(hints[name]),
                                   default=par.default, show_default=True))
    doc = builder.spec.__doc__ or ""
    return click.Command(builder.name, callback=run, params=params, short_help=builder.summary,
                         help=f"{builder.summary}\n\n{inspect.cleandoc(doc).splitlines()[0] if doc else ''}")


command = BuildGroup(name="build", help="Build a benchmark network as a ready-to-run BMTK/SONATA folder.")
