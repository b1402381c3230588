"""Which rank sits on which site, what crossing costs, and what the shim counted.

The latency model (stated in docs/sites.md): a collective on a communicator that spans sites returns
``latency + bytes / bandwidth`` after the real one did, where bytes is what the rank receives from
ranks on other sites; a point-to-point message between sites is delivered ``latency + bytes /
bandwidth`` after it was sent. Ranks on one site talk at the machine's own speed.
"""

from __future__ import annotations

import ctypes
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bmtk_scaling.errors import BmtkScalingError

COUNTER_NAMES = ("cross_site_collectives", "local_collectives", "cross_site_messages_sent",
                 "cross_site_messages_received", "cross_site_bytes", "model_delay_s", "waited_s",
                 "undelayed_messages")  # the order of shim.c's counters


@dataclass(frozen=True)
class SiteModel:
    """Site of each MPI rank, one-way latency between sites, and an optional bandwidth between them."""

    site_map: tuple[int, ...]
    latency_ms: float = 0.0
    bandwidth_mbit_s: float | None = None

    @property
    def n_sites(self) -> int:
        return len(set(self.site_map))

    def check_ranks(self, ranks: int) -> None:
        """Refuse a map that does not name one site per rank."""
        if len(self.site_map) != ranks:
            raise BmtkScalingError(f"sites: the map names {len(self.site_map)} rank(s) ({_join(self.site_map)}) "
                                   f"but the run has {ranks}: give one site per rank, e.g. --sites "
                                   + _join([r * 2 // ranks for r in range(ranks)]))

    def describe(self) -> str:
        bw = f", {self.bandwidth_mbit_s:g} Mbit/s" if self.bandwidth_mbit_s else ""
        return f"{self.n_sites} site(s) [{_join(self.site_map)}], {self.latency_ms:g} ms one way{bw}"


def _join(values: Sequence[int]) -> str:
    return ",".join(str(v) for v in values)


def parse_site_map(value: str | Sequence[int]) -> tuple[int, ...]:
    """``"0,0,1,1"`` or ``[0, 0, 1, 1]`` as a tuple of site numbers (each >= 0); ValueError otherwise."""
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        sites = tuple(int(str(v).strip()) for v in items)
    except ValueError:
        raise ValueError(f"sites must list one site number per rank, like 0,0,1,1; got {value!r}") from None
    if not sites or min(sites) < 0:
        raise ValueError(f"sites must list one site number (0, 1, ...) per rank; got {value!r}")
    return sites


def rank_environment(model: SiteModel, library: Path, out_dir: Path) -> list[str]:
    """``env VAR=... `` words to put between the launcher and python: the shim is preloaded into the ranks only
    (preloading it into mpiexec itself would load MPI into the launcher)."""
    bandwidth = model.bandwidth_mbit_s * 1e6 / 8 if model.bandwidth_mbit_s else 0.0
    return ["env", f"LD_PRELOAD={library}", f"BMTK_SCALING_SITE_MAP={_join(model.site_map)}",
            f"BMTK_SCALING_LATENCY_US={model.latency_ms * 1000:.6g}", f"BMTK_SCALING_BANDWIDTH_BPS={bandwidth:.6g}",
            f"BMTK_SCALING_SITES_OUT={out_dir}"]


def read_rank_counts(out_dir: Path, ranks: int) -> list[dict]:
    """What the shim counted in each rank over the whole run (written at MPI_Finalize)."""
    out = []
    for k in range(ranks):
        path = Path(out_dir) / f"rank{k}.sites.json"
        if not path.is_file():
            raise RuntimeError(f"the latency shim wrote no counts for rank {k} ({path}): was it loaded?")
        out.append(json.loads(path.read_text()))
    return out


def shim_counters() -> dict[str, float] | None:
    """The shim's counters in this process so far; None when the shim is not loaded."""
    try:
        fn = ctypes.CDLL(None).bmtk_scaling_sites_counters
    except AttributeError:
        return None
    values = (ctypes.c_double * len(COUNTER_NAMES))()
    fn(values, len(COUNTER_NAMES))
    return dict(zip(COUNTER_NAMES, (float(v) for v in values), strict=True))
