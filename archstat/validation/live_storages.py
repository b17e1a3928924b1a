"""The dispatch-level tracker of live activation storages, and the eager forward's measured peak.

A ``TorchDispatchMode`` sees every aten op's outputs; each new storage is counted once, by its
``untyped_storage()`` pointer, while any tensor viewing it is alive (one ``weakref.finalize`` per
tensor).  Weights, buffers and the input are not activations and are left out.

This is a measuring instrument, used by two floors: ``validation.live_memory_check`` (per row,
against the inference-peak estimate) and ``profiling.profile`` (the CPU's peak memory, which has
no allocator statistics).  It lives in ``validation/``, with the other real-run instruments;
profiling sits above validation and may import it, whereas a home in ``profiling/`` would make
validation import upwards.
"""
from __future__ import annotations

import weakref
from typing import Any, Optional

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class LiveStorages(TorchDispatchMode):
    """Bytes of the storages created inside the mode that are still referenced, and per-row peaks."""

    def __init__(self, known: set[int], rows: int) -> None:
        super().__init__()
        self.known = known  # storages that exist before the run (weights, buffers, the input)
        self.refs: dict[int, int] = {}  # storage pointer -> live tensors viewing it
        self.size: dict[int, int] = {}
        self.live = 0
        self.peak = 0  # the most bytes alive at any moment of the run
        self.row = -1
        self.row_peak = [0] * rows

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: Optional[dict] = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._hold(t)
        if self.row >= 0:
            self.row_peak[self.row] = max(self.row_peak[self.row], self.live)
        return out

    def enter_row(self, row: int) -> None:
        self.row = row
        self.row_peak[row] = self.live  # what earlier rows left alive when this one starts

    def _hold(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key = storage.data_ptr()
        if key == 0 or key in self.known:  # empty tensors (BN's unused statistics) and non-activations
            return
        if key not in self.refs:
            self.refs[key], self.size[key] = 0, storage.nbytes()
            self.live += self.size[key]
            self.peak = max(self.peak, self.live)
        self.refs[key] += 1
        weakref.finalize(t, self._release, key)

    def _release(self, key: int) -> None:
        self.refs[key] -= 1
        if self.refs[key] == 0:
            self.live -= self.size.pop(key)
            del self.refs[key]


def existing_storages(model: torch.nn.Module, *inputs: torch.Tensor) -> set[int]:
    """Storages that exist before the run and are not activations: weights, buffers, the inputs."""
    return {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers(), *inputs]}


def eager_peak(model: torch.nn.Module, x: Any, kwargs: Optional[dict] = None) -> int:
    """The most activation bytes alive at once during one call of the model's own ``forward`` on
    ``x`` (one tensor, or the positional inputs) and ``kwargs`` (inference mode, weights and inputs
    excluded): a measured peak where the device has no allocator statistics (CPU), with the eager
    forward's own lifetimes (Python locals included)."""
    args, kwargs = ([x] if isinstance(x, torch.Tensor) else list(x)), dict(kwargs or {})
    known = existing_storages(model, *args, *kwargs.values())
    tracker = LiveStorages(known, 0)
    with torch.inference_mode(), tracker:
        out = model(*args, **kwargs)
    del out
    return tracker.peak
