"""Device ceilings, measured on the device itself, cached, and distrusted when the facts say so.

* **Matmul FLOP/s per precision**: an ``n x n @ n x n`` product, ``2 n^3`` FLOPs (``n = 8192`` on CUDA,
  1024 on CPU).  ``fp32`` is strict, ``tf32`` has TF32 on.
* **Copy bandwidth**: ``dst.copy_(src)`` of a large buffer; bytes moved = read + write = ``2 * size``.

Each is the **best of** ``TRIALS`` trials, each trial the median of a few calls: a peak is what the
device can do, and a trial slowed by another process must not lower it.  An entry records the machine's
state while it was measured (``archstat.profiling.cache.machine_state``: date, torch, threads, load).

The ceilings defend themselves:

* an entry measured under load is marked ``busy`` and measured again by the first run on an idle machine;
* :func:`check_achieved` compares what a run achieved with its ceiling; above ``EXCEEDED`` (1.1x) the
  profile measures the ceilings again, and if the run still beats them says so in one line and in the JSON;
* an unreadable cache file is a one-line notice and a fresh measurement.

Cached in ``ceilings.json``, keyed by device name, torch version and thread count.
"""
from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, field
from typing import Iterable, Optional

import torch

from archstat.profiling.cache import cache_dir, finish_state, machine_state, read_entries, stale, write_entry
from archstat.profiling.precision import PRECISIONS, precision_flags
from archstat.progress import bar
from archstat.profiling.timing import device_name, environment, stats, time_calls

TRIALS = 3
EXCEEDED = 1.1  # achieved / ceiling above which a ceiling is not believed


@dataclass
class Ceilings:
    """Measured ceilings of one device (FLOP/s and bytes/s, all measured, none from a datasheet)."""

    device_name: str
    matmul: dict[str, float] = field(default_factory=dict)  # precision -> FLOP/s (best trial)
    copy_bw: float = math.nan  # bytes/s, read + write counted (best trial)
    trials: dict[str, list[float]] = field(default_factory=dict)  # what -> every trial's value
    state: dict = field(default_factory=dict)  # date, torch, threads, load while measured, busy
    env: dict = field(default_factory=dict)

    def peak(self, precision: str) -> float:
        return self.matmul.get(precision, math.nan)


def cache_path():  # noqa: ANN201 - a pathlib.Path
    return cache_dir() / "ceilings.json"


def entry_key(device: torch.device, quick: bool = False) -> str:
    return (f"{device_name(device)} | torch {torch.__version__} | {torch.get_num_threads()} threads"
            f"{' | quick' if quick else ''}")


def best_of(measure, trials: int) -> tuple[float, list[float]]:  # noqa: ANN001 - a () -> float
    """The largest of ``trials`` measurements, and all of them."""
    values = [float(measure()) for _ in range(trials)]
    return max(values), values


def measure_matmul(device: torch.device, precision: str, n: int, repeat: int = 5) -> float:
    """FLOP/s of an ``n x n @ n x n`` product: ``2 n^3 / median time``."""
    dtype = PRECISIONS[precision]
    with precision_flags(precision):
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        times = time_calls(lambda: torch.mm(a, b), device, warmup=1, repeat=repeat, budget_s=0.5)
    return 2 * n ** 3 / stats(times)["median"]


def measure_copy(device: torch.device, nbytes: int, repeat: int = 5) -> float:
    """Bytes/s of a device-to-device copy, counting the read and the write."""
    src = torch.empty(nbytes, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    times = time_calls(lambda: dst.copy_(src), device, warmup=1, repeat=repeat, budget_s=0.5)
    return 2 * nbytes / stats(times)["median"]


def sizes(device: torch.device, quick: bool, precision: str) -> tuple[int, int]:
    """(matmul n, copy bytes): large enough to reach the peak, small enough to be quick."""
    if device.type == "cuda":
        return (256 if quick else 8192), (1 << 24 if quick else 1 << 30)
    n = 128 if quick else (1024 if precision in ("fp32", "tf32") else 512)  # CPU half-precision matmul is slow
    return n, (1 << 22 if quick else 1 << 27)


def from_entry(entry: dict) -> Ceilings:
    known = Ceilings.__dataclass_fields__
    return Ceilings(**{k: v for k, v in entry.items() if k in known})


def cached_ceilings(device: torch.device, quick: bool = False) -> Optional[Ceilings]:
    """The cached entry of ``device`` (for ``archstat ceilings``), without measuring anything."""
    entry = read_entries(cache_path()).get(entry_key(device, quick))
    return from_entry(entry) if isinstance(entry, dict) else None


def get_ceilings(device: torch.device, precisions: Iterable[str] = ("fp32",), *, quick: bool = False,
                 refresh: bool = False, use_cache: bool = True, quiet: Optional[bool] = None) -> Ceilings:
    """Ceilings of ``device`` for ``precisions``, from the cache when it can be trusted.

    Measures (and stores) everything when ``refresh``, when the entry is missing or unreadable, or when
    it was measured under load and the machine is now idle; otherwise only what the entry lacks.
    """
    path, key = cache_path(), entry_key(device, quick)
    entry = read_entries(path).get(key) if use_cache and not refresh else None
    if isinstance(entry, dict) and stale(entry):
        entry = None  # measured under load; the machine is idle now
    ceil = from_entry(entry) if isinstance(entry, dict) else Ceilings(device_name(device), env=environment(device))
    todo = [p for p in dict.fromkeys(precisions) if p not in ceil.matmul] + (["copy"] if not math.isfinite(ceil.copy_bw) else [])
    if not todo:
        return ceil
    state = machine_state() if not ceil.state or not ceil.matmul else {**ceil.state, **machine_state()}
    trials = 1 if quick else TRIALS
    for what in bar(todo, f"measuring {device.type} ceilings (best of {trials})", quiet):
        if what == "copy":
            ceil.copy_bw, ceil.trials["copy"] = best_of(lambda: measure_copy(device, sizes(device, quick, "fp32")[1]),
                                                        trials)
        else:
            n = sizes(device, quick, what)[0]
            ceil.matmul[what], ceil.trials[what] = best_of(lambda: measure_matmul(device, what, n), trials)
    ceil.state = finish_state(state)
    if use_cache:
        write_entry(path, key, asdict(ceil))
    return ceil


def check_achieved(achieved: float, ceiling: float, what: str) -> Optional[str]:
    """One line when ``achieved`` exceeds ``EXCEEDED`` times ``ceiling`` (a ceiling not to be believed)."""
    if not (math.isfinite(achieved) and math.isfinite(ceiling) and ceiling > 0):
        return None
    ratio = achieved / ceiling
    if ratio <= EXCEEDED:
        return None
    return f"{what} achieved {ratio:.2f}x its measured ceiling ({achieved:.3g} vs {ceiling:.3g})"


def defend(ceil: Ceilings, achieved: float, device: torch.device, precision: str, what: str, *,
           quick: bool = False, quiet: Optional[bool] = None, remeasure: bool = True) -> tuple[Ceilings, dict]:
    """Re-measure ``ceil`` once when ``achieved`` FLOP/s beats its peak by more than ``EXCEEDED``
    (only a warning when ``remeasure`` is False: ceilings the caller passed in).

    Returns the ceilings to use and a flag for the JSON: ``{"exceeded", "remeasured", "message"}``.
    A run that still beats the fresh ceiling (a conv algorithm that multiplies less than 2 per MAC,
    or a noisy measurement) keeps the fresh ceiling and says so in one line on stderr.
    """
    msg = check_achieved(achieved, ceil.peak(precision), what)
    if msg is None:
        return ceil, {"exceeded": False, "remeasured": False, "message": None}
    if not remeasure:
        print(f"archstat: warning: {msg}", file=sys.stderr)
        return ceil, {"exceeded": True, "remeasured": False, "message": msg}
    print(f"archstat: notice: {msg}; measuring the ceilings again", file=sys.stderr)
    fresh = get_ceilings(device, tuple(ceil.matmul) or (precision,), quick=quick, refresh=True, quiet=quiet)
    again = check_achieved(achieved, fresh.peak(precision), what)
    if again:
        print(f"archstat: warning: {again} even after measuring it again", file=sys.stderr)
    return fresh, {"exceeded": again is not None, "remeasured": True, "message": again or msg,
                   "old_peak_flops_per_s": ceil.peak(precision), "new_peak_flops_per_s": fresh.peak(precision)}
