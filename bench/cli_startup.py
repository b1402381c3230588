"""Start-up time of the command line: ``bmtk-scaling --help`` and ``bmtk-scaling COMMAND --help``.

Each command line runs ``python -m bmtk_scaling.cli ... --help`` in a fresh process, ``--repeats``
times, alternating between this checkout and (with ``--baseline REV``) a git worktree of an earlier
revision, so both are measured side by side on the same, possibly busy, machine. Prints a table of
the median seconds and the ratio, and writes bench/results/cli_startup.json.

    python bench/cli_startup.py [--baseline REV] [--repeats 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["", "build", "build ping", "partition", "configure", "run", "compare", "sweep", "report", "demo"]
GOAL_S = 0.3


def _time(tree: Path, args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bmtk_scaling.cli", *args, "--help"], cwd=tree, env=env,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} --help failed in {tree}:\n{proc.stderr[-1500:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", help="git revision to compare against (a temporary worktree)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    trees = {"now": ROOT}
    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline:
            base = Path(tmp) / "baseline"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.baseline],
                           check=True, capture_output=True)
            trees["baseline"] = base
        try:
            times: dict[str, dict[str, list[float]]] = {k: {c: [] for c in COMMANDS} for k in trees}
            for _ in range(args.repeats):  # interleaved: a disturbed second hits both trees alike
                for command in COMMANDS:
                    for key, tree in trees.items():
                        times[key][command].append(_time(tree, command.split()))
        finally:
            if args.baseline:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(trees["baseline"])],
                               capture_output=True)

    rows = []
    for command in COMMANDS:
        row = {"command": f"bmtk-scaling {command} --help".replace("  ", " ")}
        for key in trees:
            row[f"{key}_median_s"] = statistics.median(times[key][command])
            row[f"{key}_min_s"] = min(times[key][command])
        if "baseline" in trees:
            row["baseline_over_now"] = row["baseline_median_s"] / row["now_median_s"]
        rows.append(row)

    head = f"{'command':<36}{'now s':>8}" + (f"{'baseline s':>12}{'x faster':>10}" if args.baseline else "")
    print(head)
    for r in rows:
        line = f"{r['command']:<36}{r['now_median_s']:>8.3f}"
        if args.baseline:
            line += f"{r['baseline_median_s']:>12.3f}{r['baseline_over_now']:>10.1f}"
        print(line)
    worst = max(r["now_median_s"] for r in rows)
    print(f"median of {args.repeats} runs each; slowest now {worst:.3f} s (goal < {GOAL_S} s): "
          + ("met" if worst < GOAL_S else "NOT met"))
    write_json(args.out / "cli_startup.json", {"machine": machine(), "baseline": args.baseline,
                                                "repeats": args.repeats, "rows": rows, "goal_s": GOAL_S})
    print(f"wrote {args.out / 'cli_startup.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
