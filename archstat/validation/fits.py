"""Refuse a real run that cannot fit, before anything is allocated (``validate --batch 100000``).

The estimate is a lower bound read off the rows: the parameters and buffers, plus the inference
peak of live activations (:func:`archstat.analyses.live_memory.inference_peak`, input included)
or, in training mode, every activation output (autograd keeps most of them for backward).  The
memory available is ``torch.cuda.mem_get_info`` on CUDA, and on the CPU ``MemAvailable`` from
``/proc/meminfo`` (psutil's ``available`` where /proc is absent).  A run whose lower bound does
not fit would die allocating; one that fits may still run short (oracles copy tensors too).
"""
from __future__ import annotations

from typing import Optional

import torch

from archstat.analyses.live_memory import inference_peak
from archstat.engine.rows import Rows
from archstat.errors import ArchstatError


def available_bytes(device: torch.device) -> Optional[int]:
    """Free memory on ``device`` in bytes, or None when it cannot be told."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def needed_bytes(rows: Rows) -> int:
    """Lower bound of a real run's bytes: model state + live activation peak (eval), or + every
    activation output (train)."""
    state = sum(t.numel() * t.element_size() for t in [*rows.model.parameters(), *rows.model.buffers()])
    df = rows.df
    if rows.mode == "train":
        acts = int(df.attrs.get("input_bytes", 0)) + int(sum(int(b) for b in df["act_bytes"]))
    else:
        peak = inference_peak(df)
        acts = int(peak["peak_bytes"]) if peak else 0
    return state + acts


def check_fits(rows: Rows, device: torch.device) -> None:
    """Raise a one-line :class:`ArchstatError` when the run's lower bound exceeds the free memory."""
    free = available_bytes(device)
    need = needed_bytes(rows)
    if free is not None and need > free:
        raise ArchstatError(f"batch {rows.batch} needs at least {need / 2**30:.1f} GiB on {device.type} "
                            f"(parameters + activations), only {free / 2**30:.1f} GiB is free: use a smaller --batch")
