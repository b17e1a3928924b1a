"""The measurement cache: one JSON file per kind under ``$ARCHSTAT_CACHE_DIR`` (default ``~/.cache/archstat``).

Every entry carries the state of the machine while it was measured (:func:`machine_state`): UTC date,
torch version, torch's thread count, the 1-minute load average before and after the measurement, and the
CPU's private and last-level cache sizes (``cpu_caches``).
An entry is **busy** when that load was at least ``BUSY_LOAD_PER_CPU * cpu_count`` (0.6 on 2 cores):
its numbers are kept, marked, and measured again by the first run that finds the machine idle.

A file that cannot be read or parsed is one line on stderr and an empty cache (the caller measures
again); writes go to a temporary file in the same folder and ``os.replace`` it, so a crash or two
concurrent runs never leave a half-written file.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import pathlib
import sys
from typing import Any

import torch

from archstat.errors import ArchstatError
from archstat.files import write_text
from archstat.profiling.cpu_caches import last_level_cache_bytes, private_cache_bytes

BUSY_LOAD_PER_CPU = 0.3  # 1-minute load average per CPU above which a measurement counts as taken under load


def cache_dir() -> pathlib.Path:
    root = os.environ.get("ARCHSTAT_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "archstat")
    return pathlib.Path(root)


def load_average() -> float:
    """The 1-minute load average (NaN where the OS has none)."""
    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):
        return float("nan")


def busy_threshold() -> float:
    return BUSY_LOAD_PER_CPU * (os.cpu_count() or 1)


def is_busy(load: float) -> bool:
    """True when ``load`` (a 1-minute load average) says other work shared the CPUs."""
    return load == load and load >= busy_threshold()  # NaN (no load average) is never busy


def machine_state() -> dict[str, Any]:
    """What a cache entry records about the moment it was measured."""
    load = load_average()
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "load_before": load,
            "cpu_count": os.cpu_count(), "busy": is_busy(load),
            "private_cache_bytes": private_cache_bytes(torch.get_num_threads()),
            "last_level_cache_bytes": last_level_cache_bytes()}


def own_load(threads: int, seconds: float) -> float:
    """What a measurement's own ``threads`` add to the 1-minute load average after ``seconds`` of running:
    the kernel's average decays as ``exp(-t / 60 s)``, so ``threads * (1 - exp(-seconds / 60))``."""
    return threads * (1.0 - math.exp(-max(seconds, 0.0) / 60.0))


def finish_state(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with the load after the measurement; busy if the load before was, or if the load after,
    less what the measurement's own threads added (``own_load``), is.

    Without the correction every calibration marked itself busy (a minute on 2 threads lifts the
    1-minute load by 1.3 on an idle 2-core machine, above the 0.6 threshold), so each later run on the
    idle machine found it stale and measured it again."""
    after = load_average()
    try:
        began = datetime.datetime.fromisoformat(str(state.get("date")))
        seconds = (datetime.datetime.now(datetime.timezone.utc) - began).total_seconds()
    except ValueError:
        seconds = 0.0
    others = after - own_load(int(state.get("threads") or 1), seconds)
    return {**state, "load_after": after, "load_after_others": others,
            "busy": bool(state.get("busy")) or is_busy(others)}


def read_entries(path: pathlib.Path, notice: bool = True) -> dict[str, Any]:
    """The cache file's entries; a missing file is empty, an unreadable one is a notice and empty."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data
    except (OSError, ValueError) as exc:
        if not notice:
            return {}
        print(f"archstat: notice: cache {path} is unreadable ({type(exc).__name__}: {str(exc)[:80]}); "
              "ignored: what it held is measured again when needed, and the file replaced", file=sys.stderr)
        return {}


def write_entry(path: pathlib.Path, key: str, entry: dict[str, Any]) -> None:
    """Store ``entry`` under ``key``, atomically (temporary file + ``os.replace``)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = read_entries(path, notice=False)  # the reader already said if it was unreadable
        data[key] = entry
        write_text(path, json.dumps(data, indent=1, sort_keys=True))
    except ArchstatError as exc:  # a read-only home is not an error: the numbers were measured, just not kept
        print(f"archstat: notice: {exc} (the cache; nothing was lost)", file=sys.stderr)
    except OSError as exc:  # the folder itself could not be made
        print(f"archstat: notice: cannot write cache {path} ({exc.strerror or exc}; nothing was lost)", file=sys.stderr)


def stale(entry: dict[str, Any]) -> bool:
    """An entry measured under load, now that the machine is idle: worth measuring again."""
    return bool(entry.get("state", {}).get("busy")) and not is_busy(load_average())
