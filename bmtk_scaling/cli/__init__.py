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
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--engine", type=click.Choice(["neuron", "coreneuron"], case_sensitive=False),
              help="SONATA target_simulator")
@click.option("--gpu/--no-gpu", default=None, help="CoreNEURON on GPUs (checked before the config is written)")
@click.option("--cell-permute", type=click.IntRange(0, 2), help="CoreNEURON cell permutation (GPU default 2)")
@click.option("--file-mode/--no-file-mode", default=None, help="CoreNEURON reads the model from files")
@click.option("--threads", type=click.IntRange(min=1), help="threads per rank")
@click.option("--neuron-loop", type=click.Choice(["psolve", "bmtk"]),
              help="NEURON time loop: psolve, or bmtk's stock h.run with a Python call per step")
@click.option("--synapses", type=click.Choice(["shared", "per_edge", "bmtk"]),
              help="synapse instantiation: one per cell and type (shared), one per edge, or bmtk's own")
@click.option("--partition", type=click.Path(path_type=Path), help="node -> rank map file")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="the new config (never the input)")
@click.option("--overwrite", is_flag=True, help="replace --out if it exists")
def configure(config: Path, engine, gpu, cell_permute, file_mode, threads, neuron_loop, synapses, partition,
              out: Path, overwrite: bool) -> None:
    """Write a new simulation config with engine (and partition) switches set."""
    from bmtk_scaling.config.derive import derive_config, load_config, write_config

    if gpu and (engine or load_config(config).get("target_simulator", "NEURON")).upper() != "CORENEURON":
        raise ValueError("--gpu needs the CoreNEURON engine: add --engine coreneuron")
    if gpu:
        from bmtk_scaling.bionet.gpu import require_gpu_support

        require_gpu_support()
    part = None
    if partition is not None:  # checked against the network (fingerprint, nodes) before it is named
        from bmtk_scaling.config.partition_ref import partition_reference
        from bmtk_scaling.partition.map_file import load_checked_map
        from bmtk_scaling.sonata.configs import load_config as load_sonata
        from bmtk_scaling.sonata.configs import network_files
        from bmtk_scaling.sonata.graph import read_nodes

        files = network_files(config)
        load_checked_map(partition, files, read_nodes(files), n_ranks=None)
        part = partition_reference(partition, load_sonata(config))
    new = derive_config(load_config(config), engine=engine, gpu=gpu, cell_permute=cell_permute, file_mode=file_mode,
                        nthread=threads, neuron_loop=neuron_loop, synapses=synapses, partition=part)
    written = write_config(new, config, out, overwrite=overwrite)
    click.echo(f"wrote {written} (target_simulator {new.get('target_simulator', 'NEURON')})")


@main.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--ranks", type=click.IntRange(min=1), default=1, show_default=True, help="MPI ranks")
@click.option("--timeout", type=float, default=3600.0, show_default=True, help="seconds before the run is stopped")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="write the measurements here")
def run(config: Path, ranks: int, timeout: float, json_out: Path | None) -> None:
    """Run a simulation config under mpiexec and report time, memory, balance and spikes."""
    import json

    from bmtk_scaling.atomic import write_text_atomic
    from bmtk_scaling.run.launcher import RunFailed, result_to_dict, run_config

    try:
        result = run_config(config, ranks, timeout=timeout)
    except RunFailed as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(1)
    s = result.summary
    for key, val in s.items():
        click.echo(f"  {key:<18} {val:.3f}" if isinstance(val, float) else f"  {key:<18} {val}")
    click.echo(f"  spikes file        {result.spikes_file}")
    if json_out:
        write_text_atomic(json_out, json.dumps(result_to_dict(result), indent=2) + "\n")
        click.echo(f"wrote {json_out}")


@main.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--ranks", type=click.IntRange(min=1), default=1, show_default=True, help="MPI ranks")
@click.option("--out", type=click.Path(path_type=Path), help="results folder [default: NETWORK/compare_<R>ranks]")
@click.option("--overwrite", is_flag=True, help="replace a non-empty results folder")
@click.option("--timeout", type=float, default=3600.0, show_default=True, help="seconds per run")
def compare(config: Path, ranks: int, out: Path | None, overwrite: bool, timeout: float) -> None:
    """Run CONFIG on stock BMTK-NEURON, NEURON psolve and CoreNEURON; compare time, memory and spikes."""
    from bmtk_scaling.run.compare import compare_engines, format_table
    from bmtk_scaling.run.launcher import RunFailed

    try:
        report = compare_engines(config, ranks, out_dir=out, overwrite=overwrite, timeout=timeout,
                                 progress=lambda msg: click.echo(msg, err=True))
    except RunFailed as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(1)
    click.echo(format_table(report))
    click.echo(f"wrote compare.json, compare.csv, compare.png to {report['out_dir']}")


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
    from bmtk_scaling.cli.demo import run_demo

    run_demo(out, n_assemblies=assemblies, cells_per_assembly=cells, tstop=tstop, seed=seed,
             overwrite=overwrite)


def _register_partition_command() -> None:
    from bmtk_scaling.cli.partition import partition_command

    main.add_command(partition_command)


_register_partition_command()


def _register_sweep_commands() -> None:
    from bmtk_scaling.cli.sweep import report_command, sweep_command

    main.add_command(sweep_command)
    main.add_command(report_command)


_register_sweep_commands()


if __name__ == "__main__":
    sys.exit(main())
