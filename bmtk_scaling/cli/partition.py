"""``bmtk-scaling partition``: make a node -> rank map, print what it costs, or compare all strategies."""

from __future__ import annotations

import time
from pathlib import Path

import click

from bmtk_scaling.partition.metrics import PartitionMetrics, evaluate
from bmtk_scaling.partition.strategies import EDGE_WEIGHTS, STRATEGIES, partition
from bmtk_scaling.sonata.graph import NetworkGraph, read_graph

_METIS_STRATEGIES = ("metis", "metis_volume")


def compare_strategies(graph: NetworkGraph, n_ranks: int, seed: int = 0, edge_weight: str = "synapses",
                       strategies: tuple[str, ...] = tuple(STRATEGIES)) -> list[dict]:
    """Every strategy on the same graph: seconds taken and metrics, one dict per strategy."""
    rows = []
    for name in strategies:
        options = {"edge_weight": edge_weight} if name in _METIS_STRATEGIES else {}
        t0 = time.perf_counter()
        ranks = partition(graph, n_ranks, name, seed=seed, **options)
        seconds = time.perf_counter() - t0
        rows.append({"strategy": name, "seconds": seconds, **evaluate(graph, ranks, n_ranks).as_dict()})
    return rows


def format_table(rows: list[dict]) -> str:
    """The comparison as a fixed-width text table."""
    head = (f"{'strategy':<14}{'seconds':>9}{'synapses cut':>14}{'cut %':>8}{'volume':>10}{'imbalance':>11}"
            f"{'min delay':>11}  cells per rank")
    lines = [head]
    for r in rows:
        delay = "-" if r["min_cross_rank_delay"] is None else f"{r['min_cross_rank_delay']:g} ms"
        cells = " ".join(str(c) for c in r["cells_per_rank"])
        lines.append(f"{r['strategy']:<14}{r['seconds']:>9.2f}{r['synapses_cut']:>14,}{100 * r['cut_fraction']:>7.2f}%"
                     f"{r['communication_volume']:>10,}{r['imbalance']:>11.3f}{delay:>11}  {cells}")
    return "\n".join(lines)


def format_metrics(m: PartitionMetrics) -> str:
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
@click.option("--ranks", "-n", "n_ranks", type=int, required=True, help="MPI ranks the map is for")
@click.option("--strategy", "-s", default="metis", show_default=True,
              help=f"one of: {', '.join(STRATEGIES)}")
@click.option("--seed", type=int, default=0, show_default=True, help="for random and METIS")
@click.option("--edge-weight", type=click.Choice(EDGE_WEIGHTS), default="synapses", show_default=True,
              help="METIS edge weight: synapses between two cells, or their summed |syn_weight|")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="map file  [default: <network folder>/partitions/<strategy>_<ranks>.h5]")
@click.option("--config-out", type=click.Path(path_type=Path), default=None,
              help="also write a NEW simulation config naming the map (a bare name goes beside CONFIG)")
@click.option("--overwrite", is_flag=True, help="replace an existing map / config-out file")
@click.option("--compare", is_flag=True, help="print every strategy side by side (writes nothing)")
def partition_command(config: Path, n_ranks: int, strategy: str, seed: int, edge_weight: str, out: Path | None,
                      config_out: Path | None, overwrite: bool, compare: bool) -> None:
    """Place the cells of a built network (CONFIG: its simulation or circuit config) on MPI ranks."""
    from bmtk_scaling.config.partition_ref import config_out_path, write_config_with_partition
    from bmtk_scaling.partition.map_file import default_map_path, make_map, write_map
    from bmtk_scaling.sonata.configs import network_files

    if n_ranks < 1:
        raise ValueError(f"--ranks must be a positive integer, got {n_ranks}")
    if compare:
        if out is not None or config_out is not None:
            raise ValueError("--compare only prints; drop --out/--config-out, or drop --compare to write a map")
        graph = read_graph(config)
        click.echo(f"{graph.n_vertices:,} cells, {graph.n_synapses:,} synapses on {n_ranks} ranks "
                   f"(seed {seed}, METIS edge weight: {edge_weight})")
        click.echo(format_table(compare_strategies(graph, n_ranks, seed, edge_weight)))
        return
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown partition strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    options = {"edge_weight": edge_weight} if strategy in _METIS_STRATEGIES else {}
    files = network_files(config)
    out = out if out is not None else default_map_path(files, strategy, n_ranks, seed)
    if Path(out).exists() and not overwrite:  # fail before the work, not after
        raise ValueError(f"{out} exists: choose another --out, or pass --overwrite to replace it")
    if config_out is not None:
        config_out_path(config, config_out, overwrite)
    t0 = time.perf_counter()
    pmap = make_map(config, n_ranks, strategy, seed=seed, **options)
    seconds = time.perf_counter() - t0
    path = write_map(pmap, out, overwrite=overwrite)
    click.echo(f"{strategy} on {n_ranks} ranks -> {path}  ({seconds:.1f} s)")
    click.echo(format_metrics(PartitionMetrics(**{k: v for k, v in pmap.metrics.items() if k != "cut_fraction"})))
    if config_out is not None:
        written = write_config_with_partition(config, path, config_out, overwrite=overwrite)
        click.echo(f"wrote {written}")
        click.echo(f"run it: cd {written.parent} && mpiexec -n {n_ranks} python run_bionet.py {written.name}")
