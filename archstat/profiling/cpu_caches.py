"""The CPU's caches, from Linux's sysfs: how much data the cores a run uses keep to themselves, and how
large the last-level cache is.

The time model prices an op whose operands were all touched within the private bytes of traffic from
its back-to-back benchmark (``TimeModel``): on a host shared with other machines the last-level cache
is shared with them too, the per-core L2 is not.  The calibration flushes the linears' benchmarks
with twice the last-level cache (``microbench.flush_to_dram``: a pass reads their weights from DRAM), the
other families' with 64 MiB, which leaves a 480 MiB L3 holding their data as a pass would; every cache
entry records the last-level cache's size (``cache.machine_state``).
"""
from __future__ import annotations

import os
import pathlib

SYSFS = pathlib.Path("/sys/devices/system/cpu")


def parse_size(text: str) -> int:
    """sysfs cache sizes: ``1024K``, ``2M``, ``512`` (bytes)."""
    text = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(text.rstrip("KMG") or 0) * scale


def data_caches(root: pathlib.Path = SYSFS) -> dict[tuple[int, str], int]:
    """The distinct data (or unified) caches of the CPUs this process may use, as ``{(level,
    shared_cpu_list): bytes}``: a cache shared by several CPUs is listed once.  Empty where sysfs does not
    say (another OS, a container that hides it)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = list(range(os.cpu_count() or 1))
    caches: dict[tuple[int, str], int] = {}
    for cpu in cpus:
        for index in sorted((root / f"cpu{cpu}" / "cache").glob("index*")):
            try:
                if (index / "type").read_text().strip() == "Instruction":
                    continue
                level = int((index / "level").read_text().strip())
                caches[(level, (index / "shared_cpu_list").read_text().strip())] = parse_size((index / "size").read_text())
            except (OSError, ValueError):
                continue
    return caches


def private_cache_bytes(threads: int, root: pathlib.Path = SYSFS) -> int:
    """Bytes of level-2 cache private to the cores ``threads`` threads run on: the sizes of the distinct L2
    caches (by their ``shared_cpu_list``) of the CPUs this process may use, the ``threads`` largest
    summed.  0 where sysfs does not say."""
    sizes = [size for (level, _), size in data_caches(root).items() if level == 2]
    return sum(sorted(sizes, reverse=True)[:max(threads, 1)])


def last_level_cache_bytes(root: pathlib.Path = SYSFS) -> int:
    """Bytes of the highest-level cache of the CPUs this process may use (the largest instance where
    there are several, as on a CPU with several L3 slices).  0 where sysfs does not say."""
    caches = data_caches(root)
    if not caches:
        return 0
    top = max(level for level, _ in caches)
    return max(size for (level, _), size in caches.items() if level == top)
