"""The time model's calibration: measured once per device, torch, thread count, precision and layout.

``get_time_model(device, precision, channels_last)`` returns a fitted
:class:`~archstat.profiling.time_model.TimeModel` and its cache entry.  The points come from
``microbench.run_grid`` (synthetic, seeded: out of sample for every model) and are cached in
``timemodel.json`` with the machine's state while measured (``cache.machine_state``).  As for the
ceilings, an entry measured under load is measured again on an idle machine, ``refresh`` forces a new
measurement, and an unreadable file is a one-line notice and a new measurement.
"""
from __future__ import annotations

from typing import Any, Optional

import torch

from archstat.profiling.cache import cache_dir, finish_state, machine_state, read_entries, stale, write_entry
from archstat.profiling.cpu_caches import last_level_cache_bytes, private_cache_bytes
from archstat.profiling.microbench import GRID_VERSION, SEED, run_grid
from archstat.profiling.precision import PRECISIONS, precision_flags
from archstat.profiling.time_model import TimeModel
from archstat.profiling.timing import device_name


def cache_path():  # noqa: ANN201 - a pathlib.Path
    return cache_dir() / "timemodel.json"


def entry_key(device: torch.device, precision: str, channels_last: bool, quick: bool = False) -> str:
    """The calibration's cache key.  On the CPU it names the cache sizes too: guests that report the same
    processor name came with 1 MiB of L2 per core and a 32 MiB L3, or 2 MiB and 480 MiB, and the grid's
    flushes and the model's private-cache rule depend on both (``cpu_caches``)."""
    caches = (f" | L2 {private_cache_bytes(torch.get_num_threads()) >> 10} KiB, L3 {last_level_cache_bytes() >> 10} KiB"
              if device.type == "cpu" else "")
    return (f"{device_name(device)} | torch {torch.__version__} | {torch.get_num_threads()} threads | {precision} | "
            f"{'channels_last' if channels_last else 'contiguous'} | seed {SEED} | grid {GRID_VERSION}{caches}"
            f"{' | quick' if quick else ''}")


def cached_entries(device: torch.device) -> dict[str, dict]:
    """Every cached calibration of ``device`` (for ``archstat ceilings``)."""
    name = device_name(device)
    return {k: v for k, v in read_entries(cache_path()).items() if k.startswith(name) and isinstance(v, dict)}


MEASURED_NOW = "measured_now"  # an entry key get_time_model adds to a calibration it has just measured


def get_time_model(device: torch.device, precision: str = "fp32", channels_last: bool = False, *,
                   quick: bool = False, refresh: bool = False, use_cache: bool = True,
                   quiet: Optional[bool] = None) -> tuple[TimeModel, dict[str, Any]]:
    """The fitted time model and its cache entry (``points``, ``state``), measuring when needed; an entry
    measured by this call carries ``MEASURED_NOW`` (not written to the cache): ``profile`` re-reads only a
    calibration from another time at the machine's pace (``TimeModel.reread``)."""
    path, key = cache_path(), entry_key(device, precision, channels_last, quick)
    entry = read_entries(path).get(key) if use_cache and not refresh else None
    valid = isinstance(entry, dict) and isinstance(entry.get("points"), list) and entry["points"]
    if not valid or stale(entry):
        state = machine_state()
        with precision_flags(precision):
            points = run_grid(device, PRECISIONS[precision], channels_last, quick=quick, quiet=quiet)
        entry = {"points": points, "state": finish_state(state), "precision": precision,
                 "channels_last": channels_last, "seed": SEED, "device_name": device_name(device)}
        if use_cache:
            write_entry(path, key, entry)
        entry = {**entry, MEASURED_NOW: True}
    return TimeModel(entry["points"], entry.get("state")), entry
