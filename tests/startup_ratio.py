"""How much `--jobs 2` gains over `--jobs 1` on a short grid, start-up and shutdown included (docs/scaling.md#start-up).

    .venv/bin/python -m tests.startup_ratio [--repeats 3] [--jobs 2]

Runs the 6-run, 60-epoch grid of docs/scaling.md with `--jobs 1` and `--jobs N`
alternated, `--repeats` times each, each into a fresh temporary folder (removed
afterwards), and prints every wall time and the ratio of the medians. One
sitting, so that a shared machine's load falls on both alike. Not a test.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRID = ["reproduce", "mnist-10-per-class", "--methods", "sgd,adam,dba", "--seeds", "2", "--epochs", "60",
        "--threads", "1", "--device", "cpu"]


def wall(jobs: int) -> float:
    """Seconds of one `dba reproduce` of the grid into a fresh folder."""
    with tempfile.TemporaryDirectory(prefix="dba-startup-") as folder:
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "dba_cli", *GRID, "--jobs", str(jobs), "--results", str(Path(folder) / "r")],
                       check=True, capture_output=True)
        return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each job count (default 3)")
    parser.add_argument("--jobs", type=int, default=2, help="the job count compared with 1 (default 2)")
    options = parser.parse_args()
    times: dict[int, list[float]] = {1: [], options.jobs: []}
    for repeat in range(options.repeats):
        for jobs in times:
            times[jobs].append(wall(jobs))
            print(f"--jobs {jobs}, run {repeat + 1}: {times[jobs][-1]:.2f} s", flush=True)
    one, many = statistics.median(times[1]), statistics.median(times[options.jobs])
    print(f"medians: --jobs 1 {one:.2f} s, --jobs {options.jobs} {many:.2f} s: {one / many:.2f}x")


if __name__ == "__main__":
    main()
