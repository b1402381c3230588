"""``bmtk-scaling report RESULTS.csv``: the scaling figures and tables a sweep's results support."""

from __future__ import annotations

from pathlib import Path

import click


def print_report(outcome) -> None:
    click.echo(f"report -> {outcome.out_dir}: " + ", ".join(f for f in outcome.written if f.endswith(".png")))
    for name, why in outcome.skipped.items():
        click.echo(f"  skipped {name}: {why}")


@click.command(name="report")
@click.argument("results", metavar="RESULTS.csv", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="figures and tables folder [default: report/ beside]")
def command(results: Path, out: Path | None) -> None:
    """Draw the scaling figures and tables the results support (and say which were skipped, and why)."""
    from bmtk_scaling.report.report import make_report

    outcome = make_report(results, out)
    print_report(outcome)
