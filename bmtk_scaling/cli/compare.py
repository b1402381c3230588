"""``bmtk-scaling compare CONFIG``: stock BMTK-NEURON, NEURON with psolve and CoreNEURON side by side."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="compare")
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--ranks", type=click.IntRange(min=1), default=1, show_default=True, help="MPI ranks")
@click.option("--output-dir", "--out", "out", type=click.Path(path_type=Path),
              help="results folder [default: ./compare_<config name>_<R>ranks in the current folder, or a folder "
                   "beside it named ..._bmtk-scaling where that holds files bmtk-scaling did not write]")
@click.option("--overwrite", is_flag=True, help="replace a results folder an earlier compare wrote")
@click.option("--timeout", "timeouts", multiple=True, metavar="[VARIANT=]SECONDS",
              help="seconds per run (default 3600), or for one variant: bmtk_neuron=, neuron_psolve=, coreneuron= "
                   "(repeat the option)")
def command(config: Path, ranks: int, out: Path | None, overwrite: bool, timeouts: tuple[str, ...]) -> None:
    """Run CONFIG on stock BMTK-NEURON, NEURON psolve and CoreNEURON; compare time, memory and spikes.

    The network's files are only read. A variant that fails while running is marked in the table and
    the results of the others are written all the same; the exit status is then 1.
    """
    from bmtk_scaling.errors import RunFailed
    from bmtk_scaling.run.compare import compare_engines, format_table, parse_timeouts

    report = compare_engines(config, ranks, out_dir=out, overwrite=overwrite, timeout=parse_timeouts(timeouts),
                             progress=lambda msg: click.echo(msg, err=True))
    click.echo(format_table(report))
    click.echo(f"wrote compare.json, compare.csv, compare.png to {report['out_dir']}")
    if report["failed"]:
        names = ", ".join(f["label"] for f in report["failed"])
        raise RunFailed(f"{names} failed while running (the reason is in the table and in compare.json); the "
                        f"variants that finished are compared in {report['out_dir']}")
