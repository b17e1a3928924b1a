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


def free_memory(device: torch.device) -> Optional[tuple[int, int]]:
    """``(free, total)`` bytes on ``device``: CUDA's ``mem_get_info``; on the CPU ``MemAvailable`` and
    ``MemTotal`` of ``/proc/meminfo`` (psutil where /proc is absent); None when it cannot be told."""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return int(free), int(total)
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            info = {ln.split(":")[0]: int(ln.split()[1]) * 1024 for ln in fh if ln.split()[1:2] and ln.split()[1].isdigit()}
        return info["MemAvailable"], info["MemTotal"]
    except (OSError, KeyError, ValueError, IndexError):
        pass
    try:
        import psutil
    except ImportError:
        return None
    vm = psutil.virtual_memory()
    return int(vm.available), int(vm.total)


def available_bytes(device: torch.device) -> Optional[int]:
    """Free memory on ``device`` in bytes, or None when it cannot be told."""
    memory = free_memory(device)
    return memory[0] if memory is not None else None


def state_bytes(model: torch.nn.Module) -> int:
    """Bytes of the model's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def needed_bytes(rows: Rows) -> int:
    """Lower bound of a real run's bytes: model state + live activation peak (eval), or + every
    activation output (train)."""
    state = state_bytes(rows.model)
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
