"""`archstat report` for the whole zoo, timed: the target is under 60 s on 2 CPU cores.

    python bench/bench_report.py [--no-figures]

Writes into a temporary folder (reports/ is left alone), prints the wall time, the CPU time and
the size of what was written, per kind of file.
"""
from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

TARGET_S = 60.0


def main(argv: list[str]) -> int:
    figures = "--no-figures" not in argv
    wall, cpu = time.perf_counter(), time.process_time()
    from archstat.reporting.report import generate  # the imports (torch, sympy, matplotlib) count too

    with tempfile.TemporaryDirectory() as tmp:
        written = generate(Path(tmp), figures=figures)
        png = sorted(Path(tmp).glob("figures/*.png"))
        files = written + png
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        sizes = Counter()
        for p in files:
            sizes[p.suffix] += p.stat().st_size
    print(f"archstat report: {len(files)} files in {wall:.1f} s wall, {cpu:.1f} s CPU "
          f"(target < {TARGET_S:.0f} s on 2 cores): {'OK' if wall < TARGET_S else 'TOO SLOW'}")
    for suffix, size in sorted(sizes.items()):
        print(f"  {suffix:5s} {size / 1024:8,.0f} KB")
    return 0 if wall < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
