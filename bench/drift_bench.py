"""Drift analysis benchmark: seconds and peak memory of one run of include/drift/drift_analysis.py
``analyse`` (the hourly Processing job's work) over 10k and 100k captured records.

    .venv/bin/python bench/drift_bench.py [--records 10000 100000] [--repeat 3]

The baseline is the churn data's (include/data/mlc_churn.csv, encoded as the churn pipeline's Glue
job encodes it; 73 feature columns); the records are held-out rows, one row per capture record as a
real-time endpoint captures them, in files of 1,000 records (the twin's flushes), half of them with
a shifted feature. Each run is a fresh interpreter (imports included, as in the container); peak
memory is its maximum resident set size. Prints figures and the README's table rows; no asserts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import drift_support as ds  # noqa: E402

START = dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)
PER_FILE = 1000


def write_capture(directory: Path, rows: np.ndarray) -> None:
    target = directory / "2026" / "03" / "01" / "10"
    target.mkdir(parents=True)
    for k in range(0, len(rows), PER_FILE):
        lines = [
            ds.capture_line([ds.format_row(row)], START + dt.timedelta(milliseconds=30 * (k + j)), [0.5])
            for j, row in enumerate(rows[k : k + PER_FILE])
        ]
        (target / f"{k // PER_FILE:05d}.jsonl").write_text("\n".join(lines) + "\n")


def run_once(inp: Path, out: Path) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of one analysis in a fresh interpreter."""
    code = (
        "import resource, runpy, sys, time\n"
        "t = time.perf_counter()\n"
        f"sys.argv = ['drift_analysis.py', 'analyse', '--input-dir', {str(inp)!r}, '--output-dir', {str(out)!r},\n"
        f"    '--start', {START.isoformat()!r}, '--end', {(START + dt.timedelta(hours=1)).isoformat()!r}]\n"
        "try:\n"
        f"    runpy.run_path({str(ds.ANALYSIS)!r}, run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print('BENCH', time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    line = next(x for x in proc.stdout.splitlines() if x.startswith("BENCH"))
    _, _, rss_kib = line.split()
    return wall, int(rss_kib) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    split = ds.churn_split()
    traffic = ds.traffic()
    _, pool = split["held_out"]
    rows_out = []
    with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
        root = Path(tmp)
        inp = ds.write_baseline_inputs(root / "b", split)
        baseline = root / "baseline"
        assert ds.analysis().main(["baseline", "--input-dir", str(inp), "--output-dir", str(baseline)]) == 0
        for count in args.records:
            half = count // 2
            calm = traffic.generate(pool, split["schema"], traffic.Profile(), half, seed=1)
            shifted = traffic.generate(
                pool,
                split["schema"],
                traffic.Profile(kind="sudden", features=["total_day_minutes"], shift=1.0),
                count - half,
                seed=2,
            )
            work = root / f"n{count}"
            (work / "input").mkdir(parents=True)
            (work / "input" / "baseline").symlink_to(baseline)
            write_capture(work / "input" / "capture", np.vstack([calm, shifted]))
            size = sum(p.stat().st_size for p in (work / "input" / "capture").rglob("*.jsonl"))
            runs = [run_once(work / "input", work / "out") for _ in range(args.repeat)]
            seconds = statistics.median(r[0] for r in runs)
            peak = max(r[1] for r in runs)
            result = json.loads((work / "out" / "result.json").read_text())
            assert result["records"]["rows"] == count, result["records"]
            print(
                f"{count:>7} records ({size / 2**20:.1f} MiB of capture): {seconds:.2f} s (median of "
                f"{args.repeat}), peak RSS {peak:.0f} MiB; drifted: {result['drifted_features']}"
            )
            rows_out.append(f"| drift analysis of {count:,} captured records | {seconds:.2f} | {peak:.0f} |")
    print(
        f"\nparent peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (not a figure)"
    )
    print(
        "\n| figure (`bench/drift_bench.py`, median of runs) | seconds | peak RSS MiB |\n| --- | --- | --- |"
    )
    print("\n".join(rows_out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
