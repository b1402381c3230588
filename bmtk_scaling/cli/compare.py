"""``bmtk-scaling compare CONFIG``: stock BMTK-NEURON, NEURON with psolve and CoreNEURON side by side."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="compare")
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--ranks", type=click.IntRange(min=1), default=1, show_default=True, help="MPI ranks")
@click.option("--out", type=click.Path(path_type=Path), help="results folder [default: NETWORK/compare_<R>ranks]")
@click.option("--overwrite", is_flag=True, help="replace a non-empty results folder")
@click.option("--timeout", type=float, default=3600.0, show_default=True, help="seconds per run")
def command(config: Path, ranks: int, out: Path | None, overwrite: bool, timeout: float) -> None:
    """Run CONFIG on stock BMTK-NEURON, NEURON psolve and CoreNEURON; compare time, memory and spikes."""
    from bmtk_scaling.run.compare import compare_engines, format_table

    report = compare_engines(config, ranks, out_dir=out, overwrite=overwrite, timeout=timeout,
                             progress=lambda msg: click.echo(msg, err=True))
    click.echo(format_table(report))
    click.echo(f"wrote compare.json, compare.csv, compare.png to {report['out_dir']}")
