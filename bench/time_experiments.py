"""Wall and CPU time of each of the lecture's experiments at full size (issue 16: ``all`` under 10 minutes).

Runs the same ``run_experiment`` calls as ``archstat experiment all`` (one torch thread each), prints
each result on stdout and one ``TIMING`` line per experiment on stderr: wall time, CPU time of this
process, and the 1-minute load average at its start and end.  The experiments are single-threaded,
so on a shared machine the CPU time is the better estimate of the wall time on an idle core.

    python bench/time_experiments.py OUT_DIR [NAME ...]
"""
from __future__ import annotations

import os
import sys
import time

from archstat.experiments import EXPERIMENTS, run_experiment


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    out, names = argv[0], argv[1:] or list(EXPERIMENTS)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        print(f"unknown experiment(s) {unknown}; choose from {list(EXPERIMENTS)}", file=sys.stderr)
        return 2
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for name in names:
        wall, cpu, load = time.perf_counter(), time.process_time(), os.getloadavg()[0]
        print(run_experiment(name, out), flush=True)
        print(f"TIMING {name}: wall {time.perf_counter() - wall:.1f} s, cpu {time.process_time() - cpu:.1f} s "
              f"(1-min load at start {load:.2f}, end {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)
    print(f"TIMING all: wall {time.perf_counter() - wall0:.1f} s, cpu {time.process_time() - cpu0:.1f} s",
          file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
