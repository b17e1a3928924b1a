"""Sound timing primitives shared by profile, ceilings and the GPU script.

One code path for both devices: every timed call is bracketed by two events from
:func:`new_event`, with no host synchronisation between repeats and one :func:`sync` at the end.  On
CUDA the events are ``torch.cuda.Event``s recorded on the stream, so the queue stays full and the
numbers are GPU time; on CPU they are :class:`HostEvent`s reading ``time.perf_counter`` (CPU work is
synchronous, so wall time is the op's time).  Because the loop is the same, the CPU tests exercise
the GPU loop too, and a fake asynchronous device in the tests checks that it never synchronises
inside the timed region.  Spread is reported, never hidden:

    median, min, max, IQR = q75 - q25, CV = std / mean (population std)

The precisions and their TF32 switches live in ``archstat.profiling.precision``.
"""
from __future__ import annotations

import contextlib
import datetime
import math
import platform
import statistics
import time
from typing import Callable, Iterator, Optional

import torch

from archstat.errors import ArchstatError, is_oom

def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPU, whose work is synchronous)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class HostEvent:
    """The CPU stand-in for ``torch.cuda.Event(enable_timing=True)``: same two methods, same units.

    ``record()`` reads ``time.perf_counter``; ``start.elapsed_time(end)`` is in milliseconds, as CUDA's.
    """

    def __init__(self) -> None:
        self.t: Optional[float] = None

    def record(self) -> None:
        self.t = time.perf_counter()

    def elapsed_time(self, end: "HostEvent") -> float:
        if self.t is None or end.t is None:
            raise RuntimeError("elapsed_time on an event that was never recorded")
        return (end.t - self.t) * 1e3


def new_event(device: torch.device) -> object:
    """A timing event for ``device``: a CUDA event on the current stream, or a :class:`HostEvent`."""
    return torch.cuda.Event(enable_timing=True) if device.type == "cuda" else HostEvent()


def elapsed_s(start: object, end: object) -> float:
    """Seconds between two recorded events (both kinds report milliseconds)."""
    return start.elapsed_time(end) / 1e3  # type: ignore[attr-defined]


def stats(times: list[float]) -> dict[str, float]:
    """Median, min, max, IQR, CV (std / mean) of ``times`` (seconds)."""
    xs = sorted(times)
    n = len(xs)
    if n == 0:
        return {"n": 0, "median": math.nan, "min": math.nan, "max": math.nan, "iqr": math.nan, "cv": math.nan,
                "mean": math.nan}
    q = statistics.quantiles(xs, n=4, method="inclusive") if n > 1 else [xs[0]] * 3
    mean = statistics.fmean(xs)
    return {"n": n, "median": statistics.median(xs), "min": xs[0], "max": xs[-1], "iqr": q[2] - q[0],
            "mean": mean, "cv": statistics.pstdev(xs) / mean if mean > 0 else math.nan}


def time_calls(fn: Callable[[], object], device: torch.device, warmup: int, repeat: int,
               budget_s: Optional[float] = None) -> list[float]:
    """Seconds per call of ``fn`` after ``warmup`` calls; at most ``repeat`` timed calls.

    ``budget_s`` caps the timed loop: from the last warm-up call's duration we cut the repeat count
    so the loop takes about that long (at least 3 calls), so a slow model never stalls a sweep.
    """
    last = 0.0
    for _ in range(max(warmup, 1)):  # at least one: cudnn.benchmark picks its algorithms here
        t0 = time.perf_counter()
        fn()
        sync(device)
        last = time.perf_counter() - t0
    if budget_s is not None and last > 0:
        repeat = max(3, min(repeat, int(budget_s / last)))
    events = [(new_event(device), new_event(device)) for _ in range(repeat)]  # created before timing
    for start, end in events:
        start.record()
        fn()
        end.record()
    sync(device)  # once, after the last call: the device queue never drains inside the timed loop
    return [elapsed_s(start, end) for start, end in events]


@contextlib.contextmanager
def oom_guard(batch: int, device: torch.device, what: str) -> Iterator[None]:
    """Turn an out-of-memory error into a one-line ArchstatError naming the batch that failed."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - only OOM is translated, the rest re-raised
        if not is_oom(exc):
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        smaller = f"; try --batch {batch // 2}" if batch > 1 else "; batch 1 does not fit either, try a smaller --input"
        raise ArchstatError(f"out of memory at batch {batch} on {device.type} ({what}){smaller}") from None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_bytes(device: torch.device) -> Optional[int]:
    """The caching allocator's peak since :func:`reset_peak`; None on CPU (no allocator statistics)."""
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu} ({torch.get_num_threads()} threads)"


def environment(device: torch.device) -> dict[str, object]:
    """What every result records next to its numbers: card, versions, date."""
    env: dict[str, object] = {"device": device.type, "device_name": device_name(device), "torch": torch.__version__,
                              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if device.type == "cuda":
        env.update({"cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                    "capability": ".".join(map(str, torch.cuda.get_device_capability(device)))})
    return env
