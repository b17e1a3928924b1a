"""Start-up of the command line against ``import torch``, measured in the same run.

    python bench/bench_startup.py [--repeat 5] [--model resnet50]

Times, as fresh processes (median of ``--repeat`` runs, interleaved so that a burst of load on a
shared machine hits every command alike):

- ``python -c "import torch"``: the floor any torch tool pays;
- ``archstat --help``: must import no torch (target <= 0.5 s);
- ``archstat table MODEL``: end to end (target <= 1.4 x ``import torch``).

and prints the ratios against ``import torch``, with the load average, since on a loaded 2-core
box every number grows (the ratios much less).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

PYTHON = sys.executable
# `python -m archstat.cli` is what the console script runs, without the launcher's own lookup
CLI = [PYTHON, "-m", "archstat.cli"]


def run_once(cmd: list[str]) -> float:
    """Wall-clock seconds of one fresh process; a non-zero exit is a broken benchmark, not a time."""
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--model", default="resnet50")
    args = parser.parse_args(argv)
    cases = {
        "import torch": [PYTHON, "-c", "import torch"],
        "archstat --help": [*CLI, "--help"],
        f"archstat table {args.model}": [*CLI, "table", args.model],
    }
    for cmd in cases.values():  # warm the file cache once, untimed
        run_once(cmd)
    times: dict[str, list[float]] = {label: [] for label in cases}
    for _ in range(args.repeat):
        for label, cmd in cases.items():
            times[label].append(run_once(cmd))
    medians = {label: statistics.median(ts) for label, ts in times.items()}
    base = medians["import torch"]
    load = os.getloadavg()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; median of {args.repeat}")
    for label, med in medians.items():
        spread = f"{min(times[label]):.2f}-{max(times[label]):.2f}"
        print(f"  {label:<28} {med:6.2f} s  (range {spread} s)  {med / base:5.2f} x import torch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
