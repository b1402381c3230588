"""What one run measured: per-rank timings and memory from the ranks, summarised as a user waits for it."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bmtk_scaling.atomic import Protected, claim, is_json_with, register, write_text_atomic
from bmtk_scaling.config.settings import Engine
from bmtk_scaling.errors import BmtkScalingError, RunError


@dataclass
class RunResult:
    config: str
    ranks: int
    engine: str
    neuron_loop: str
    wall_s: float
    spikes_file: str
    spike_count: int
    per_rank: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the checks and the ranks said the user should know
    predicted_imbalance: float | None = None  # max/mean cost per rank of the partition map used, if any
    exchange: dict = field(default_factory=dict)  # the spike-exchange switches in force (rank 0's NEURON)
    sites: dict | None = None  # emulated sites: the model and the latency shim's counts per rank (whole run)
    output_dir: str | None = None  # where the run wrote
    beside: str | None = None  # the config's own output folder, left as it was, where the run wrote beside it

    def _col(self, key: str) -> np.ndarray:
        return np.array([r.get(key, 0.0) for r in self.per_rank], dtype=float)

    @property
    def summary(self) -> dict:
        """Slowest-rank times (what the user waits for), memory max and sum, and load balance."""
        step = self._col("step_time")
        out = {
            "engine": Engine(self.engine).label + (f" ({self.neuron_loop})" if self.engine == Engine.NEURON else ""),
            "ranks": self.ranks,
            "load_s": float(self._col("load_s").max()),
            "build_s": float(self._col("build_s").max()),
            "setup_s": float(self._col("initialize_s").max()),
            "simulate_s": float(self._col("simulate_s").max()),
            "total_s": float(self._col("total_s").max()),
            "wall_s": self.wall_s,
            "peak_rss_max_mib": float(self._col("peak_rss_mib").max()),
            "peak_rss_sum_mib": float(self._col("peak_rss_mib").sum()),
            "spikes": self.spike_count,
            "cells_per_rank": [int(c) for c in self._col("cells")],
        }
        if any("build_peak_rss_mib" in r for r in self.per_rank):  # CoreNEURON file mode: the two phases apart
            out["build_peak_rss_max_mib"] = float(self._col("build_peak_rss_mib").max())
            out["coreneuron_peak_rss_max_mib"] = float(self._col("coreneuron_peak_rss_mib").max())
        solver = [r for r in self.per_rank if "coreneuron_solver_s" in r]
        if solver:  # CoreNEURON in memory: rank 0's time loop, and the rest of its simulate (the model's hand-over)
            out["coreneuron_solver_s"] = float(solver[0]["coreneuron_solver_s"])
            out["coreneuron_transfer_s"] = float(solver[0]["simulate_s"] - solver[0]["coreneuron_solver_s"])
        # NEURON's per-rank compute time; CoreNEURON reports none (0), and then balance is unknown.
        out["load_balance"] = float(step.mean() / step.max()) if step.max() > 0 else None
        out["wait_max_s"] = float(self._col("wait_time").max()) if step.max() > 0 else None
        out["imbalance"] = float(step.max() / step.mean()) if step.max() > 0 else None  # measured: max/mean
        out["predicted_imbalance"] = self.predicted_imbalance  # the map's max/mean cost
        if self.sites is not None:
            out["sites"] = f"{len(set(self.sites['site_map']))} site(s), {self.sites['latency_ms']:g} ms one way"
            for key in ("cross_site_collectives", "cross_site_messages_sent", "model_delay_s"):
                # during the simulation, the slowest (most-counting) rank; the whole run's are in sites
                out[f"sim_{key}"] = float(max(r.get("sites", {}).get(key, 0.0) for r in self.per_rank))
        return out


def result_to_dict(result: RunResult) -> dict:
    return {**asdict(result), "summary": result.summary}


MEASUREMENTS = "run measurements"
_is_measurements = is_json_with("config", "ranks", "engine", "per_rank", "summary")


def claim_measurements(path: Path, config, outputs: tuple[Path, ...] = ()) -> Path:
    """Where ``run --json`` may write: not an input of ``config`` (a path or a LoadedConfig), not inside its
    output folder, the folder beside it a run may write instead, or ``outputs`` (the run replaces those), and
    only over a measurements file an earlier run wrote."""
    from bmtk_scaling.run.preflight import TOOL_SUFFIX
    from bmtk_scaling.sonata.configs import loaded, output_dir, protected_inputs

    sim = loaded(config)
    inputs = protected_inputs(sim)
    own = output_dir(sim)
    protected = Protected.of(inputs.files, [*inputs.folders, own, own.parent / f"{own.name}{TOOL_SUFFIX}", *outputs],
                             inputs.owner)
    return claim(path, MEASUREMENTS, folder=False, overwrite=True, option="--json", protected=protected,
                 recognise=_is_measurements)


def write_measurements(path: Path, config, data: dict, outputs: tuple[Path, ...] = ()) -> Path:
    """Write ``data`` through the gate; if that fails after the run, keep it in a temporary file and say where."""
    text = json.dumps(data, indent=2) + "\n"
    try:
        target = claim_measurements(path, config, outputs)
        write_text_atomic(target, text)
        register(target)  # a folder this tool wrote (a network) stays replaceable with the file in it
        return target
    except (OSError, BmtkScalingError) as err:
        fd, kept = tempfile.mkstemp(prefix="bmtk-scaling-run-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        raise RunError(f"the run finished but its measurements could not be written to {path} ({err}); they are "
                       f"kept in {kept}") from None
