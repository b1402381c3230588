"""``bmtk-scaling partition``: make a node -> rank map, print what it costs, or compare all strategies."""

from __future__ import annotations

import time
from pathlib import Path

import click

from bmtk_scaling.partition import EDGE_WEIGHTS, STRATEGY_NAMES


def format_table(rows: list[dict]) -> str:
    """The comparison as a fixed-width text table."""
    head = (f"{'strategy':<14}{'seconds':>9}{'synapses cut':>14}{'cut %':>8}{'volume':>10}{'imbalance':>11}"
            f"{'min delay':>11}  cells per rank")
    lines = [head]
    for r in rows:
        if "skipped" in r:
            lines.append(f"{r['strategy']:<14}  skipped: {r['skipped']}")
            continue
        delay = "-" if r["min_cross_rank_delay"] is None else f"{r['min_cross_rank_delay']:g} ms"
        cells = " ".join(str(c) for c in r["cells_per_rank"])
        lines.append(f"{r['strategy']:<14}{r['seconds']:>9.2f}{r['synapses_cut']:>14,}{100 * r['cut_fraction']:>7.2f}%"
                     f"{r['communication_volume']:>10,}{r['imbalance']:>11.3f}{delay:>11}  {cells}")
    return "\n".join(lines)


def format_metrics(m) -> str:
    delay = "none (no edge crosses ranks)" if m.min_cross_rank_delay is None else f"{m.min_cross_rank_delay:g} ms"
    lines = [
        f"  cells                      {m.n_cells:>12,}",
        f"  synapses                   {m.n_synapses:>12,}",
        f"  synapses cut               {m.synapses_cut:>12,}  ({100 * m.cut_fraction:.2f} %)",
        f"  communication volume       {m.communication_volume:>12,}  (source cell, other rank) pairs",
        f"  imbalance (max/mean cost)  {m.imbalance:>12.3f}",
        f"  min cross-rank delay       {delay:>12}",
        "  rank        cells          cost",
    ]
    per_rank = zip(m.cells_per_rank, m.cost_per_rank, strict=True)
    lines += [f"  {r:<6}{c:>11,}{k:>14,}" for r, (c, k) in enumerate(per_rank)]
    return "\n".join(lines)


@click.command(name="partition")
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--ranks", "-n", "n_ranks", type=click.IntRange(min=1), required=True, help="MPI ranks the map is for")
@click.option("--strategy", "-s", type=click.Choice(STRATEGY_NAMES), default="metis", show_default=True,
              help="how cells are placed (docs/partitioning.md)")
@click.option("--seed", type=int, default=0, show_default=True, help="for random and METIS")
@click.option("--edge-weight", type=click.Choice(EDGE_WEIGHTS), default="synapses", show_default=True,
              help="METIS edge weight: synapses between two cells, or their summed |syn_weight|")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="map file  [default: <network folder>/partitions/<strategy>_<ranks>.h5]")
@click.option("--config-out", type=click.Path(path_type=Path), default=None,
              help="also write a NEW simulation config naming the map (a bare name goes beside CONFIG)")
@click.option("--overwrite", is_flag=True, help="replace an existing map / config-out file")
@click.option("--compare", is_flag=True, help="print every strategy side by side (writes nothing)")
@click.option("--cost", type=click.Choice(["auto", "measured", "synapses"]), default="auto", show_default=True,
              help="what a cell weighs: 1 + its synapses, or its type's NEURON complexity + its synapses "
                   "(auto: measured where cells have morphologies)")
def command(config: Path, n_ranks: int, strategy: str, seed: int, edge_weight: str, out: Path | None,
            config_out: Path | None, overwrite: bool, compare: bool, cost: str) -> None:
    """Place the cells of a built network (CONFIG: its simulation or circuit config) on MPI ranks."""
    from bmtk_scaling.api import cell_costs, partition_network
    from bmtk_scaling.errors import BmtkScalingError
    from bmtk_scaling.partition.compare import compare_strategies
    from bmtk_scaling.partition.metrics import PartitionMetrics
    from bmtk_scaling.sonata.graph import read_graph

    if compare:
        if out is not None or config_out is not None:
            raise BmtkScalingError("--compare only prints; drop --out/--config-out, or drop --compare to write a map")
        graph = read_graph(config)
        costs = cell_costs(config, cost)
        if costs:
            graph.set_cell_costs(costs)
            click.echo("cell cost: each type's NEURON complexity (LoadBalance.cell_complexity) + its synapses")
        click.echo(f"{graph.n_vertices:,} cells, {graph.n_synapses:,} synapses on {n_ranks} ranks "
                   f"(seed {seed}, METIS edge weight: {edge_weight})")
        click.echo(format_table(compare_strategies(graph, n_ranks, seed, edge_weight)))
        return
    t0 = time.perf_counter()
    done = partition_network(config, n_ranks, strategy, seed=seed, edge_weight=edge_weight, out=out,
                             config_out=config_out, overwrite=overwrite, cost=cost)
    click.echo(f"{strategy} on {n_ranks} ranks -> {done.map_file}  ({time.perf_counter() - t0:.1f} s)")
    click.echo(format_metrics(PartitionMetrics(**{k: v for k, v in done.metrics.items() if k != "cut_fraction"})))
    if done.config is not None:
        click.echo(f"wrote {done.config}")
        click.echo(f"run it: bmtk-scaling run {done.config} --ranks {n_ranks}")
