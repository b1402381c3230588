"""``bmtk-scaling run CONFIG``: one simulation under MPI, measured (time, memory, balance, spikes)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="run")
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--ranks", type=click.IntRange(min=1), default=1, show_default=True, help="MPI ranks")
@click.option("--timeout", type=float, default=3600.0, show_default=True, help="seconds before the run is stopped")
@click.option("--launcher", type=click.Choice(["mpiexec", "srun"]), default="mpiexec", show_default=True,
              help="how ranks are started (srun inside a SLURM allocation)")
@click.option("--sites", "site_map", type=str, default=None,
              help="emulated sites: the site of each rank, e.g. 0,1 (overrides bmtk_scaling.sites; docs/sites.md)")
@click.option("--latency-ms", type=click.FloatRange(min=0), default=None, help="one-way latency between sites, ms")
@click.option("--bandwidth-mbit-s", type=click.FloatRange(min=0, min_open=True), default=None,
              help="bandwidth between sites, Mbit/s (default unlimited)")
@click.option("--output-dir", type=click.Path(path_type=Path), default=None,
              help="write the outputs here [default: the config's output_dir, or a folder beside it named "
                   "OUTPUT_bmtk-scaling where that holds files bmtk-scaling did not write]")
@click.option("--json", "json_out", type=click.Path(path_type=Path),
              help="write the measurements to this file (a new one, or one an earlier run wrote)")
def command(config: Path, ranks: int, timeout: float, launcher: str, site_map: str | None, latency_ms: float | None,
            bandwidth_mbit_s: float | None, output_dir: Path | None, json_out: Path | None) -> None:
    """Run a simulation config under MPI and report time, memory, balance and spikes.

    The first and the last line say where the outputs went.
    """
    from bmtk_scaling.config.settings import validate_sites
    from bmtk_scaling.run.launcher import run_config
    from bmtk_scaling.run.result import claim_measurements, result_to_dict, write_measurements
    from bmtk_scaling.sonata.configs import load_config

    sites = None  # the options first: they need no file
    if site_map is not None or latency_ms is not None or bandwidth_mbit_s is not None:
        sites = validate_sites(site_map, latency_ms or 0.0, bandwidth_mbit_s, where="--sites/--latency-ms")
    sim = load_config(config)  # read once; every step of the command is handed this
    outputs = (output_dir.absolute(),) if output_dir is not None else ()
    if json_out is not None:  # before the run: a path that cannot take the measurements costs no simulation
        json_out = claim_measurements(json_out, sim, outputs)
    result = run_config(sim, ranks, timeout=timeout, launcher=launcher, sites=sites, show_progress=True,
                        output_dir=output_dir, echo=click.echo)
    for note in result.notes:
        click.echo(f"  note: {note}")
    for key, val in result.summary.items():
        click.echo(f"  {key:<18} {val:.3f}" if isinstance(val, float) else f"  {key:<18} {val}")
    click.echo(f"  spikes file        {result.spikes_file}")
    if json_out:
        click.echo(f"wrote {write_measurements(json_out, sim, result_to_dict(result), outputs)}")
    click.echo(f"output: {result.output_dir}" + (f" (beside {result.beside}, left as it was)" if result.beside else ""))
