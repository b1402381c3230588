"""``bmtk-scaling sweep SPEC.yaml``: a scaling study, resumable, into one CSV (and its report).

A bad spec (or any ValueError) exits 2 before anything runs; a point that fails exits 1 after
keeping every finished point; a sweep stopped on purpose (``--max-points``) exits 0 and says how
many points remain.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from bmtk_scaling.errors import BmtkScalingError, Interrupted


@click.command(name="sweep")
@click.argument("spec_file", metavar="SPEC.yaml", type=click.Path(path_type=Path))
@click.option("--output-dir", "--out", "out", type=click.Path(path_type=Path),
              help="results folder; every point writes inside it  [default: sweeps/<spec name>]")
@click.option("--reduced", is_flag=True, help="the spec's reduced sizes (and reduced axes): a quick check, e.g. in CI")
@click.option("--max-points", type=click.IntRange(min=1), help="stop after running this many points (resume later)")
@click.option("--keep-going", is_flag=True, help="record a failing point and go on (default: stop at the first)")
@click.option("--list", "list_only", is_flag=True, help="print the points (and which are done) and exit")
@click.option("--slurm", "slurm_dir", type=click.Path(path_type=Path),
              help="write SLURM batch scripts for this sweep into DIR instead of running it")
@click.option("--overwrite", is_flag=True, help="with --slurm: replace the scripts an earlier --slurm wrote in DIR")
@click.option("--point-list", type=click.Path(path_type=Path), hidden=True)
@click.option("--array-index", type=int, hidden=True)
@click.option("--prepare-only", is_flag=True, help="build the networks, maps and configs; run nothing")
@click.option("--collect", is_flag=True, help="only assemble results.csv and draw the report")
@click.option("--launcher", type=click.Choice(["mpiexec", "srun"]), default="mpiexec", show_default=True,
              help="how ranks are started")
@click.option("--no-report", is_flag=True, help="do not draw the report at the end")
@click.option("--no-progress", is_flag=True, help="no progress bar (batch jobs, logs)")
@click.option("--force", is_flag=True, help="expand a grid beyond the point limit (100,000)")
def command(spec_file: Path, out: Path | None, reduced: bool, max_points: int | None, keep_going: bool,
            list_only: bool, slurm_dir: Path | None, overwrite: bool, point_list: Path | None, array_index: int | None,
            prepare_only: bool, collect: bool, launcher: str, no_report: bool, no_progress: bool, force: bool) -> None:
    """Run a scaling study: every point of SPEC.yaml's grid through the runner, resumable, into one CSV."""
    from bmtk_scaling.sweep.execute import default_out_dir, run_sweep
    from bmtk_scaling.sweep.grid import load_points
    from bmtk_scaling.sweep.records import read_point

    # GPU points need a GPU where they run: a full local sweep checks here; scripts, listings, the prepare and
    # collect jobs do not run them, and an array task checks its own points (run_sweep).
    runs_all_here = not (slurm_dir or list_only or point_list or prepare_only or collect)
    for option, path in (("--out", out), ("--slurm", slurm_dir)):
        if path is not None and path.exists() and not path.is_dir():
            raise BmtkScalingError(f"{option} {path} is a file, not a folder: give a folder (a new one, or one this "
                                   "command wrote)")
    if overwrite and slurm_dir is None:
        raise BmtkScalingError("--overwrite applies to --slurm DIR only: a sweep's results folder is resumed, never "
                               "replaced (choose another --out for a fresh sweep)")
    spec, points = load_points(spec_file, reduced, local=runs_all_here, force=force)
    if slurm_dir is not None:
        from bmtk_scaling.sweep.slurm import write_slurm_scripts

        plan = write_slurm_scripts(spec, points, slurm_dir, str(out) if out else "results", reduced=reduced,
                                   overwrite=overwrite)
        click.echo(f"wrote {len(plan.files)} files to {slurm_dir}: "
                   + ", ".join(f"{s} ({n} point{'s' if n > 1 else ''})" for s, n in plan.arrays.items()))
        click.echo(f"submit: {slurm_dir}/submit.sh")
        return
    if list_only:
        where = (out or default_out_dir(spec, reduced)).absolute()
        for p in points:
            click.echo(f"{'done' if read_point(where, p.id) else 'todo'}  {p.id}")
        return
    try:
        outcome = run_sweep(spec, out, reduced=reduced, max_points=max_points, keep_going=keep_going,
                            point_list=point_list, array_index=array_index, prepare_only=prepare_only,
                            collect_only=collect, launcher=launcher, progress=not no_progress,
                            points=points, echo=lambda m: click.echo(m, err=True))
    except (KeyboardInterrupt, Interrupted) as err:
        signum = getattr(err, "signum", signal.SIGINT)
        click.echo(f"interrupted ({signal.Signals(signum).name}): every finished point is kept, the running one "
                   "stays to do; rerun the same command to continue", err=True)
        sys.exit(128 + signum)
    if prepare_only:
        return
    click.echo(f"{outcome.ran} point(s) run, {outcome.skipped} were already done, {len(outcome.failed)} failed, "
               f"{outcome.remaining} remain -> {outcome.csv}")
    for pid, err in outcome.failed.items():
        click.echo(f"  failed {pid}: {err}", err=True)
    if outcome.complete and not no_report:
        from bmtk_scaling.cli.report import print_report
        from bmtk_scaling.report.report import make_report

        print_report(make_report(outcome.csv, outcome.out_dir / "report", spec=spec))
    if outcome.remaining and not outcome.failed and max_points is not None:
        click.echo(f"stopped after {outcome.ran} point(s) as asked; rerun the same command for the other "
                   f"{outcome.remaining}")
    if outcome.failed:
        sys.exit(1)
