"""What a fresh output buffer costs on the CPU: the kernel's page faults on its first touch.

glibc's ``malloc`` serves a large request from ``mmap`` when it is at least its dynamic threshold,
which rises to the largest chunk freed so far (at most 32 MiB), and it returns free heap tops above
twice that threshold to the OS.  A CNN's largest activations therefore come back as fresh pages on
every forward pass, and the kernel zero-fills each page on first touch; smaller ones reuse the heap.
A micro-benchmark that repeats one op keeps reusing its buffer and never sees that cost, so it is
measured on its own (``measure``) and charged to the op calls whose output is fresh (``is_fresh``):

    t_fresh = out_bytes * c_page     for alloc rows with out_bytes >= min(32 MiB, FRESH_SHARE * largest output)

``c_page`` (seconds per byte) is the median over a few sizes of
``(time of torch.empty(S).fill_(0) after malloc_trim(0) - the same on a warm heap) / S``.
Zero on CUDA (the caching allocator keeps its blocks) and where glibc's ``malloc_trim`` is missing.
``FRESH_SHARE`` = 0.5 is a judgement, stated here and in the README, not fitted on any model.
"""
from __future__ import annotations

import ctypes
import statistics
import time
from typing import Optional

import torch

MMAP_MAX = 32 * 2 ** 20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit
FRESH_SHARE = 0.5


def _trim() -> Optional[callable]:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def measure(device: torch.device, sizes: tuple[int, ...] = (4 << 20, 16 << 20, 48 << 20), repeat: int = 5) -> float:
    """Seconds per byte of first-touching a fresh buffer (0 on CUDA or without glibc)."""
    trim = _trim()
    if device.type != "cpu" or trim is None:
        return 0.0
    per_byte = []
    for size in sizes:
        n = size // 4
        warm, fresh = [], []
        for _ in range(repeat):
            for flush, out in ((False, warm), (True, fresh)):
                if flush:
                    trim(0)
                t0 = time.perf_counter()
                buf = torch.empty(n).fill_(0)
                out.append(time.perf_counter() - t0)
                del buf
        per_byte.append(max(min(fresh) - min(warm), 0.0) / size)
    return float(statistics.median(per_byte))


def is_fresh(out_bytes: float, largest: float) -> bool:
    """Whether an output of ``out_bytes`` comes back as fresh pages in a model whose largest output is ``largest``."""
    return out_bytes >= min(MMAP_MAX, FRESH_SHARE * largest) and out_bytes >= 1 << 20
