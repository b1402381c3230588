"""``bmtk-scaling configure``: a new simulation config with the plugin's settings changed.

Its options are generated from the settings schema (:mod:`bmtk_scaling.config.settings`), one per
setting, so the command, the config section and the docs always agree.
"""

from __future__ import annotations

from pathlib import Path

import click

from bmtk_scaling.config.settings import Engine, options


def _click_option(o) -> click.Option:
    flag = f"--{o.cli}"
    help_text = f"{o.doc} [config: {o.key}]"
    if o.kind is bool:
        return click.Option([f"{flag}/--no-{o.cli}", o.name], default=None, help=help_text)
    if o.choices:
        return click.Option([flag, o.name], type=click.Choice(o.choices, case_sensitive=False), help=help_text)
    if o.name == "partition":
        return click.Option([flag, o.name], type=click.Path(path_type=Path),
                            help=f"{o.doc}; checked against the network first [config: {o.key}]")
    if o.kind is int:
        kind = click.IntRange(o.minimum, o.maximum) if (o.minimum, o.maximum) != (None, None) else int
        return click.Option([flag, o.name], type=kind, help=help_text)
    if o.kind is float:
        return click.Option([flag, o.name], type=click.FloatRange(min=o.minimum), help=help_text)
    return click.Option([flag, o.name], type=str, help=help_text)


def _configure(config: Path, out: Path, overwrite: bool, **changes) -> None:
    from bmtk_scaling.api import configure_simulation
    from bmtk_scaling.config.settings import read_settings
    from bmtk_scaling.sonata.configs import load_config

    written = configure_simulation(config, out, overwrite=overwrite, **changes)
    settings = read_settings(load_config(written).data)
    click.echo(f"wrote {written} (engine {settings.engine.label}, synapses {settings.synapses}"
               + (f", partition {settings.partition}" if settings.partition else "") + ")")
    click.echo(f"run it: bmtk-scaling run {written} --ranks R")
    click.echo("or with your own run_bionet.py (mpiexec -n R nrniv -mpi -python run_bionet.py CONFIG, or srun): "
               "replace its line 'from bmtk.simulator import bionet' by 'from bmtk_scaling.run import bionet'")


command = click.Command(
    "configure", callback=_configure,
    params=[click.Argument(["config"], type=click.Path(path_type=Path)),
            *[_click_option(o) for o in options()],
            click.Option(["--out"], type=click.Path(path_type=Path), required=True,
                         help="the new config (never the input)"),
            click.Option(["--overwrite"], is_flag=True, help="replace --out if it exists")],
    help="Write a new simulation config with engine, partition and synapse settings changed.\n\n"
         f"Engines: {', '.join(e.value for e in Engine)}. Options left out keep the config's value.",
)
