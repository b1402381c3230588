"""Run the papers' experiments (sim_configs/experiments/*.yaml) and publish their figures under docs/.

Each experiment is a resumable sweep into sweeps/<name>/ (rerunning skips finished points); its report
figures, tables and report.md are copied to docs/experiments/<name>/. Prints how long each took and
writes bench/results/experiments.json.

    python bench/experiments.py                      # all, at their default (this machine's) sizes
    python bench/experiments.py omelyusik_fig1_e     # some
    python bench/experiments.py --reduced            # CI sizes, into sweeps/<name>-reduced, docs untouched
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_json  # noqa: E402

from bmtk_scaling.report.report import make_report  # noqa: E402
from bmtk_scaling.sweep.execute import run_sweep  # noqa: E402
from bmtk_scaling.sweep.grid import load_points  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "sim_configs" / "experiments"
DOCS = ROOT / "docs" / "experiments"


def publish(report_dir: Path, dest: Path) -> list[str]:
    """Copy a report's figures and tables (not its raw data) into the docs."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    copied = []
    for f in sorted(report_dir.iterdir()):
        if f.suffix in (".png", ".csv", ".md") and not f.name.startswith("memory_points"):
            shutil.copy2(f, dest / f.name)
            copied.append(f.name)
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="experiment names (default: all)")
    parser.add_argument("--reduced", action="store_true", help="CI sizes; docs are not touched")
    args = parser.parse_args(argv)
    specs = sorted(SPECS.glob("*.yaml"))
    if args.names:
        specs = [s for s in specs if s.stem in args.names]
    results = []
    for path in specs:
        spec, points = load_points(path, reduced=args.reduced)
        out = ROOT / "sweeps" / (spec.name + ("-reduced" if args.reduced else ""))
        t0 = time.perf_counter()
        outcome = run_sweep(spec, out, reduced=args.reduced, keep_going=True, points=points)
        seconds = time.perf_counter() - t0
        if outcome.complete:
            make_report(outcome.csv, out / "report")
        copied = [] if args.reduced or not outcome.complete else publish(out / "report", DOCS / spec.name)
        results.append({"name": spec.name, "points": outcome.total, "ran": outcome.ran, "skipped": outcome.skipped,
                        "failed": len(outcome.failed), "seconds": seconds, "published": copied})
    print(f"\n{'experiment':<26}{'points':>7}{'ran':>5}{'done before':>12}{'failed':>7}{'seconds':>9}")
    for r in results:
        print(f"{r['name']:<26}{r['points']:>7}{r['ran']:>5}{r['skipped']:>12}{r['failed']:>7}{r['seconds']:>9.0f}")
    write_json(ROOT / "bench" / "results" / "experiments.json", {"machine": machine(), "experiments": results})
    return 1 if any(r["failed"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
