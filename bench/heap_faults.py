"""Page faults and forward-pass time with glibc's heap left to itself against pinned (``steady_heap``).

    python bench/heap_faults.py [--models resnet50:8,googlenet:1,mobilenet_dw:1] [--rounds 2] [--passes 7]

Each arm runs in a fresh interpreter (glibc's thresholds depend on the process's history, and pinning
them cannot be undone), the two arms interleaved, ``rounds`` times: per arm the median minor page
faults of a pass (4 KiB pages) and the median pass time, after 3 warm-up passes.  Why it matters and
what the profiler does about it: ``archstat/profiling/fresh_pages.py``.  Measure on an idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

ARM = """
import json, resource, statistics, sys, time, torch
sys.path.insert(0, {bench!r})
from roofline_accuracy import build
from archstat.profiling.fresh_pages import steady_heap
torch.set_num_threads({threads})
name, batch, pinned, passes = {name!r}, {batch}, {pinned}, {passes}
model, shape = build(name, torch.device("cpu"), small=False)
x = torch.randn(batch, *shape)
def run():
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        faults, times = [], []
        for _ in range(passes):
            f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    return statistics.median(faults), statistics.median(times)
if pinned:
    with steady_heap(torch.device("cpu")):
        print(json.dumps(run()))
else:
    print(json.dumps(run()))
"""


def arm(name: str, batch: int, pinned: bool, passes: int, threads: int) -> tuple[float, float]:
    """(median faults per pass, median seconds per pass) in a fresh interpreter."""
    code = ARM.format(bench=str(pathlib.Path(__file__).resolve().parent), threads=threads, name=name,
                      batch=batch, pinned=pinned, passes=passes)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    faults, seconds = json.loads(out.strip().splitlines()[-1])
    return float(faults), float(seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet50:8,googlenet:1,mobilenet_dw:1", help="name:batch, comma-separated")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--passes", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    print(f"load (1-min) at start: {os.getloadavg()[0]:.2f}")
    print("| model | batch | round | faults/pass left alone | ms left alone | faults/pass pinned | ms pinned |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for spec in a.models.split(","):
        name, batch = spec.split(":")
        for r in range(a.rounds):
            free = arm(name, int(batch), False, a.passes, a.threads)
            pinned = arm(name, int(batch), True, a.passes, a.threads)
            print(f"| {name} | {batch} | {r + 1} | {free[0]:.0f} | {free[1] * 1e3:.1f} | {pinned[0]:.0f} | "
                  f"{pinned[1] * 1e3:.1f} |", flush=True)
    print(f"load (1-min) at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
