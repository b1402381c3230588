"""The columns of a sweep's results.csv, in order: what a row holds and what a figure may name."""

from __future__ import annotations

VERSIONED = ("bmtk-scaling", "bmtk", "neuron", "numpy", "h5py", "pymetis", "mpi4py", "mpich")

# Column order of results.csv; parameter columns (param_<name>) follow, then provenance.
IDENTITY = ["spec", "point_id", "network", "builder", "network_key", "size_index", "seed", "repeat", "ranks",
            "threads", "cores", "strategy", "engine", "gpu", "latency_ms", "exchange", "n_cells", "n_synapses",
            "cells_per_rank"]
MEASURED = ["load_s", "build_s", "setup_s", "simulate_s", "total_s", "wall_s", "peak_rss_max_mib",
            "peak_rss_sum_mib", "model_rss_sum_mib", "spikes", "spikes_sha256", "load_balance", "imbalance",
            "step_time_max_s", "wait_max_s", "wait_mean_s", "netcons", "network_build_s", "cross_site_collectives",
            "cross_site_messages"]
PARTITION = ["synapses_cut", "cut_fraction", "communication_volume", "partition_imbalance", "min_cross_rank_delay"]
PROVENANCE = ["started_at", "finished_at", "hostname", "cpu", "cores_available", "memory_gib", "python", "platform",
              *[f"version_{d.replace('-', '_')}" for d in VERSIONED], "git_commit", "command", "params_json"]


def figure_columns() -> set[str]:
    """Columns a figure may name directly (parameters are named without their ``param_`` prefix)."""
    return set(IDENTITY + MEASURED + PARTITION)
