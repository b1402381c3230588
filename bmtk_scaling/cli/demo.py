"""``bmtk-scaling demo``: the project's point in two minutes.

Build a small PING network, place its cells on 2 ranks with METIS, run it on stock BMTK-NEURON and
with the plugin on NEURON and CoreNEURON, each under ``mpiexec -n 2`` through the runner, and show
what changed: the times and their ratios, whether the spikes are identical, the gamma rhythm.

    OUT/network/        the PING network (a BMTK/SONATA folder), its METIS map and config
    OUT/compare/        compare.json, compare.csv, compare.png (phase times, both rasters)
    OUT/raster.png      CoreNEURON's raster with the population spectrum
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

RANKS = 2


@click.command(name="demo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo_output"), show_default=True,
              help="folder for the network, the comparison and the plots")
@click.option("--cells", type=click.IntRange(min=10), default=250, show_default=True,
              help="cells per assembly (2 assemblies)")
@click.option("--tstop", type=click.FloatRange(min=300.0), default=600.0, show_default=True, help="ms")
@click.option("--seed", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--overwrite", is_flag=True, help="replace the results of an earlier demo in OUT")
def command(out: Path, cells: int, tstop: float, seed: int, overwrite: bool) -> None:
    """Build PING, partition it with METIS, compare stock BMTK-NEURON, NEURON and CoreNEURON on 2 ranks."""
    run_demo(out, cells_per_assembly=cells, tstop=tstop, seed=seed, overwrite=overwrite)


def run_demo(out: Path, cells_per_assembly: int = 250, tstop: float = 600.0, seed: int = 1,
             overwrite: bool = False) -> dict:
    """The demo (see the module docstring); returns the comparison report."""
    from bmtk_scaling.api import partition_network
    from bmtk_scaling.atomic import check_output_dir, claim
    from bmtk_scaling.report.activity import FIGURE_KIND, is_png
    from bmtk_scaling.run.compare import COMPARE_KIND, compare_engines, format_table
    from network_builders import ping_assembly
    from network_builders.writer import NETWORK

    out = Path(out).absolute()
    # every path refused before anything runs: another's files, or (without --overwrite) an earlier demo's
    check_output_dir(out / "network", overwrite, kind=NETWORK)
    check_output_dir(out / "compare", overwrite, kind=COMPARE_KIND)
    claim(out / "raster.png", FIGURE_KIND, folder=False, overwrite=overwrite, recognise=is_png)
    t0 = time.perf_counter()
    click.echo(f"[1/4] building PING-Assembly 2 x {cells_per_assembly} cells, {tstop:g} ms (seed {seed}) ...")
    net = ping_assembly(out / "network", n_assemblies=2, cells_per_assembly=cells_per_assembly, tstop=tstop,
                        seed=seed, overwrite=overwrite)
    click.echo(f"      {net.n_nodes} cells, {net.n_edges:,} synapses in {time.perf_counter() - t0:.1f} s")

    click.echo(f"[2/4] placing cells on {RANKS} ranks with METIS ...")
    placed = partition_network(net.simulation_config, RANKS, "metis", seed=seed, config_out=f"sim_metis{RANKS}.json",
                               overwrite=True)  # inside the network folder just built
    config, m = placed.config, placed.metrics
    click.echo(f"      {m['synapses_cut']:,} of {m['n_synapses']:,} synapses cross ranks "
               f"({100 * m['cut_fraction']:.2f} %), imbalance {m['imbalance']:.3f} -> {config.name}")

    click.echo(f"[3/4] running stock BMTK-NEURON, NEURON (psolve) and CoreNEURON under mpiexec -n {RANKS} ...")
    report = compare_engines(config, RANKS, out_dir=out / "compare", overwrite=overwrite,
                             progress=lambda msg: click.echo(f"      {msg}"))

    click.echo("[4/4] analysing ...")
    peak, raster = _gamma_and_raster(net.path, Path(report["variants"][-1]["spikes_file"]), out / "raster.png")
    click.echo()
    click.echo(format_table(report))
    if report["failed"]:  # the table above marks it; the comparison of the others is in report["out_dir"]
        from bmtk_scaling.errors import RunFailed

        raise RunFailed(", ".join(f["label"] for f in report["failed"]) + f" failed while running; the engines "
                        f"that finished are compared in {report['out_dir']}")
    same = all(v["spikes_vs_stock"]["identical"] for v in report["variants"])
    band = "inside" if 30.0 <= peak <= 40.0 else "outside"
    click.echo()
    click.echo(f"  spikes: {'identical on every engine' if same else 'DIFFER between engines (see the table)'}")
    click.echo(f"  gamma check: population peak {peak:.1f} Hz is {band} the 30-40 Hz band")
    click.echo(f"  plots: {raster}, {Path(report['out_dir']) / 'compare.png'}")
    click.echo(f"  total {time.perf_counter() - t0:.0f} s")
    return report


def _gamma_and_raster(network: Path, spikes_file: Path, png: Path) -> tuple[float, Path]:
    """The population spectrum's peak after the drive starts, and the raster (E red, I blue) with it."""
    from bmtk_scaling.report.activity import plot_raster, population_spectrum
    from bmtk_scaling.sonata.spikes import read_spikes

    info = json.loads((network / "network_parameters.json").read_text())
    p = info["parameters"]
    n_e = int(round(p["exc_fraction"] * p["cells_per_assembly"])) * p["n_assemblies"]
    spikes = read_spikes(spikes_file)
    times = spikes["timestamp"].to_numpy()
    spectrum = population_spectrum(times[times >= p["drive_start"]], p["drive_start"], p["tstop"])
    colors = {i: ("tab:red" if i < n_e else "tab:blue") for i in range(info["n_nodes"])}
    title = f"PING {p['n_assemblies']} x {p['cells_per_assembly']} on CoreNEURON, {RANKS} ranks (E red, I blue)"
    return spectrum.peak_hz, plot_raster(spikes, png, title, colors, spectrum)
