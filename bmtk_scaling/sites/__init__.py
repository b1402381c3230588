"""Emulated multi-site latency: ranks grouped into sites, MPI calls between sites delayed by a PMPI shim."""

from bmtk_scaling.sites.build import shim_library
from bmtk_scaling.sites.model import COUNTER_NAMES, SiteModel, rank_environment, read_rank_counts, shim_counters

__all__ = ["COUNTER_NAMES", "SiteModel", "rank_environment", "read_rank_counts", "shim_counters", "shim_library"]
