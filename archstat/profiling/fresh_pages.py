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
Smaller outputs come from the heap.  Left to itself, glibc also *trims* the top of its heap when more
than its trim threshold lies free there, and the next pass faults those pages in again; how much
depends on the process's allocation history (the dynamic thresholds rise only after a large chunk
has been freed): in a fresh process resnet50 at batch 8 faulted 66-73 K pages per forward pass (about
280 MB) and ran 576-620 ms, against no fault and 461-490 ms with the thresholds pinned
(``bench/heap_faults.py``), and the same 25 MB batch-norm output took 1.4 ms after one layer and 7 ms
after another.  So the calibration and the model's timings (the whole model, the per-layer passes)
run under :func:`steady_heap`: the mmap threshold at glibc's own ceiling of 32 MiB and no trimming,
the state a long-running process reaches by itself, so that outputs below 32 MiB reuse heap pages
and those above are fresh on every pass, which is what the model charges.  (glibc serves any request
from the free top of its heap when it has room, so a large output can land in heap pages a smaller
one freed there: VGG-16 at batch 8 still faulted 88 K pages per pass pinned, against 248 K left alone,
in 1.48 against 1.75 s: ``bench/heap_faults.py --models vgg16:8``.)
Zero on CUDA (the caching allocator keeps its blocks) and without glibc.
"""
from __future__ import annotations

import contextlib
import ctypes
import statistics
from typing import Iterator

import torch

from archstat.profiling.timing import stats, time_calls

MMAP_MAX = 32 * 2 ** 20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: the mmap threshold never rises above it
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
NO_TRIM = 2 ** 31 - 1  # the largest int mallopt takes: the top of the heap is never given back while measuring


def _mallopt():  # noqa: ANN202 - glibc's mallopt, or None
    try:
        return ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return None


def _has_glibc() -> bool:
    return _mallopt() is not None


_PINNED = [0]  # steady_heap blocks open now: only the outermost one sets and resets the thresholds


@contextlib.contextmanager
def steady_heap(device: torch.device) -> Iterator[bool]:
    """Measure with glibc's heap in its steady state (CPU; yields whether both thresholds took).

    Inside: ``M_MMAP_THRESHOLD`` = 32 MiB (the ceiling glibc's dynamic threshold reaches after the
    first large free) and ``M_TRIM_THRESHOLD`` = ``NO_TRIM``.  On leaving the outermost block: the trim
    threshold glibc itself sets with a 32 MiB mmap threshold (twice it, 64 MiB), so a process does not
    keep freed memory forever.  mallopt has no getter, and setting either parameter turns glibc's
    dynamic thresholds off for the rest of the process (and overrides ``MALLOC_*_THRESHOLD_`` from the
    environment): that is the point, it is the state they converge to.  Under another allocator
    preloaded in place of glibc's (jemalloc, tcmalloc) libc's mallopt still answers but changes
    nothing that allocator does."""
    mallopt = _mallopt() if device.type == "cpu" else None
    if mallopt is None:
        yield False
        return
    if _PINNED[0]:  # nested: the outer block has pinned them already
        _PINNED[0] += 1
        try:
            yield True
        finally:
            _PINNED[0] -= 1
        return
    took = (mallopt(M_MMAP_THRESHOLD, ctypes.c_int(MMAP_MAX)) == 1) & (mallopt(M_TRIM_THRESHOLD, ctypes.c_int(NO_TRIM)) == 1)
    _PINNED[0] += 1
    try:
        yield bool(took)
    finally:
        _PINNED[0] -= 1
        mallopt(M_TRIM_THRESHOLD, ctypes.c_int(2 * MMAP_MAX))


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
