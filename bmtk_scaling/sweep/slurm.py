"""``bmtk-scaling sweep SPEC --slurm DIR``: the same sweep as SLURM batch scripts, for a cluster.

Nothing is rewritten for the cluster: every job runs ``bmtk-scaling sweep`` on the same spec (copied
into DIR), so results land in the same resumable layout and a job that dies is simply resubmitted.

    DIR/spec.yaml                 the spec
    DIR/prepare.sbatch            builds every network and partition map once (one task)
    DIR/points_<shape>.sbatch     a job array per resource shape (ranks, threads, GPU): task i runs the
    DIR/points_<shape>.txt        point on line i with srun (--launcher srun)
    DIR/collect.sbatch            assembles results.csv and draws the report
    DIR/submit.sh                 submits them in order (afterok: prepare; afterany: collect)

Nodes: CPU points place ``cores_per_node // threads`` ranks per node; GPU points one rank per GPU,
``gpus_per_node`` per node. NEURON loads MPI at run time: on a cluster set ``slurm.mpi_lib`` (or
export MPI_LIB_NRN_PATH in ``setup``) to the MPI library srun's PMI speaks to.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from bmtk_scaling.atomic import Protected, write_files_into
from bmtk_scaling.sweep.grid import Point
from bmtk_scaling.sweep.spec import SweepSpec

MARGIN_S = 600  # per array task, beyond the spec's timeout: process start, config writing, slack


@dataclass
class SlurmPlan:
    script_dir: Path
    files: list[Path] = field(default_factory=list)
    arrays: dict[str, int] = field(default_factory=dict)  # shape -> number of array tasks


def hhmmss(seconds: float) -> str:
    seconds = int(math.ceil(seconds))
    days, rest = divmod(seconds, 86400)
    clock = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}-{clock}" if days else clock


def layout(point: Point, spec: SweepSpec) -> dict[str, int]:
    """Nodes, tasks per node, CPUs per task and GPUs per node for one point."""
    opts = spec.slurm
    if point.gpu:  # one GPU per rank, as the paper ran CoreNEURON
        nodes = math.ceil(point.ranks / opts.gpus_per_node)
        per_node = math.ceil(point.ranks / nodes)
        return {"nodes": nodes, "ntasks_per_node": per_node, "cpus_per_task": point.threads, "gpus_per_node": per_node}
    per_node_max = max(1, opts.cores_per_node // point.threads)
    nodes = math.ceil(point.ranks / per_node_max)
    return {"nodes": nodes, "ntasks_per_node": math.ceil(point.ranks / nodes), "cpus_per_task": point.threads,
            "gpus_per_node": 0}


def _header(spec: SweepSpec, job: str, time: str, ntasks: int, lay: dict[str, int] | None, array: int | None) -> str:
    o = spec.slurm
    lines = ["#!/bin/bash", f"#SBATCH --job-name={spec.name}-{job}", f"#SBATCH --time={time}",
             f"#SBATCH --ntasks={ntasks}"]
    if lay:
        lines += [f"#SBATCH --nodes={lay['nodes']}", f"#SBATCH --ntasks-per-node={lay['ntasks_per_node']}",
                  f"#SBATCH --cpus-per-task={lay['cpus_per_task']}"]
        if lay["gpus_per_node"]:
            lines.append(f"#SBATCH --gpus-per-node={lay['gpus_per_node']}")
    else:
        lines += ["#SBATCH --nodes=1", "#SBATCH --cpus-per-task=1"]
    if array is not None:
        lines.append(f"#SBATCH --array=0-{array - 1}")
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(o, key):
            lines.append(f"#SBATCH --{key}={getattr(o, key)}")
    lines += [f"#SBATCH {extra}" for extra in o.extra]
    lines.append("#SBATCH --output=logs/%x-%A_%a.out" if array is not None else "#SBATCH --output=logs/%x-%j.out")
    lines += ["set -euo pipefail", 'cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")}"', *o.setup]
    if o.mpi_lib:
        lines.append(f"export MPI_LIB_NRN_PATH={shlex.quote(o.mpi_lib)}")
    return "\n".join(lines) + "\n"


SLURM_KIND = "slurm scripts"


def write_slurm_scripts(spec: SweepSpec, points: list[Point], script_dir: Path, results_dir: str,
                        reduced: bool = False, overwrite: bool = False) -> SlurmPlan:
    """Write the scripts for ``points`` into ``script_dir``; ``results_dir`` as the jobs will see it.

    Through the gate (:func:`~bmtk_scaling.atomic.write_files_into`): a folder of someone else's is
    refused, and scripts written there before are replaced only with ``overwrite``.
    """
    script_dir = Path(script_dir)
    plan = SlurmPlan(script_dir=script_dir)
    texts: dict[str, str] = {"spec.yaml": spec.text}
    base = f'"${{BMTK_SCALING:-bmtk-scaling}}" sweep spec.yaml --out {shlex.quote(results_dir)}' + \
        (" --reduced" if reduced else "")
    scripts = []

    def script(name: str, text: str) -> None:
        texts[name] = text
        scripts.append(name)

    script("prepare.sbatch", _header(spec, "prepare", spec.slurm.prepare_time or "02:00:00", 1, None, None)
           + f"{base} --prepare-only --no-progress\n")
    shapes: dict[str, list[Point]] = {}
    for p in points:
        shapes.setdefault(p.shape, []).append(p)
    time = spec.slurm.time or hhmmss(spec.timeout_s + MARGIN_S)
    for shape, members in shapes.items():
        first = members[0]
        lay = layout(first, spec)
        listing = f"points_{shape}.txt"
        texts[listing] = "".join(f"{p.id}\n" for p in members)
        body = (f"export OMP_NUM_THREADS={first.threads} SRUN_CPUS_PER_TASK={first.threads}\n"
                f"{base} --point-list {listing} --array-index \"${{SLURM_ARRAY_TASK_ID:?run as a job array}}\" "
                f"--launcher \"${{BMTK_SCALING_LAUNCHER:-srun}}\" --no-progress --no-report\n")
        script(f"points_{shape}.sbatch", _header(spec, shape, time, first.ranks, lay, len(members)) + body)
        plan.arrays[shape] = len(members)
    script("collect.sbatch", _header(spec, "collect", "00:30:00", 1, None, None) + f"{base} --collect\n")
    arrays = "\n".join(f"ids+=($(sbatch --parsable --dependency=afterok:$prep points_{s}.sbatch))" for s in shapes)
    script("submit.sh", "#!/bin/bash\n# Submit the sweep: prepare, then one job array per shape, then collect.\n"
           "set -euo pipefail\ncd \"$(dirname \"$0\")\"\nmkdir -p logs\n"
           "prep=$(sbatch --parsable prepare.sbatch)\nids=()\n" + arrays + "\n"
           "sbatch --dependency=afterany:$(IFS=:; echo \"${ids[*]}\") collect.sbatch\n")
    source = Path(spec.source)
    protected = Protected.of([source] if source.is_file() else [], [], owner=source.name)
    plan.files = write_files_into(script_dir, texts, SLURM_KIND, overwrite=overwrite, option="--slurm",
                                  protected=protected, also=["logs"], executable=scripts)
    return plan
