"""What a fresh output buffer costs on the CPU: the kernel's page faults on its first touch.

glibc's ``malloc`` serves a request from ``mmap`` when it is at least its *mmap threshold*, which
starts at 128 KiB and rises to the largest mmapped chunk freed so far, but never above 32 MiB; freed
mmapped chunks go straight back to the OS.  So an output of 32 MiB or more is fresh pages on every
forward pass, and the kernel zero-fills each page on first touch, whereas a micro-benchmark of a
smaller op reuses its buffer and never sees that cost.  It is measured on its own (:func:`measure`)
and charged to the op calls whose output is that large (:func:`is_fresh`):

    t_fresh = out_bytes * c_page        for alloc rows with out_bytes >= 32 MiB

``c_page`` (seconds per byte) is the median over a few sizes above 32 MiB of
``(time of torch.empty(S).fill_(0) - time of filling a buffer that already exists) / S``.
Smaller outputs come from the heap; when glibc trims the top of its heap they are fresh pages too,
which depends on the allocation history of the pass (the same 25 MB batch-norm output of resnet50 at
batch 8 took 1.4 ms after one layer and 7 ms after another): that part is not modelled, and shows
up as per-layer error.  Zero on CUDA (the caching allocator keeps its blocks) and without glibc.
"""
from __future__ import annotations

import ctypes
import statistics

import torch

from archstat.profiling.timing import stats, time_calls

MMAP_MAX = 32 * 2 ** 20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: the mmap threshold never rises above it


def _has_glibc() -> bool:
    try:
        ctypes.CDLL("libc.so.6").mallopt  # noqa: B018
        return True
    except (OSError, AttributeError):
        return False


def measure(device: torch.device, sizes: tuple[int, ...] = (40 << 20, 64 << 20, 96 << 20), repeat: int = 5) -> float:
    """Seconds per byte of first-touching a fresh buffer of at least ``MMAP_MAX`` (0 on CUDA or without glibc).

    (An earlier version compared sizes around the threshold after ``malloc_trim``; above the
    threshold both of its arms were fresh, and it measured about 0.)"""
    if device.type != "cpu" or not _has_glibc():
        return 0.0
    per_byte = []
    for size in sizes:
        n = size // 4
        fresh = stats(time_calls(lambda: torch.empty(n).fill_(0), device, warmup=1, repeat=repeat))["median"]
        buf = torch.empty(n)
        warm = stats(time_calls(lambda: buf.fill_(0), device, warmup=1, repeat=repeat))["median"]
        del buf
        per_byte.append(max(fresh - warm, 0.0) / size)
    return float(statistics.median(per_byte))


def is_fresh(out_bytes: float) -> bool:
    """Whether an output comes back as fresh pages on every pass: at least glibc's largest mmap threshold."""
    return out_bytes >= MMAP_MAX
