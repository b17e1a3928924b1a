"""The inputs profile times: which ones (the asked shapes, or the model's default), and the real
tensors every timed call feeds (one home for both: :mod:`archstat.engine.inputs` builds them)."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import nn

from archstat.engine.inputs import InputSpec, example_tensor
from archstat.engine.rows import Rows
from archstat.errors import ArchstatError
from archstat.spec import TensorSpec


def make_input(shape: Sequence[int], batch: int, device: torch.device, dtype: torch.dtype,
               channels_last: bool) -> torch.Tensor:
    """One float input of ``shape`` per sample (``bench/gpu_steps.py``); models: :func:`make_inputs`."""
    x = example_tensor(InputSpec(tuple(shape)), TensorSpec((batch, *shape), dtype), torch.device(device),
                       torch.Generator(torch.device(device)).manual_seed(0))
    return x.to(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def make_inputs(rows: Rows, device: torch.device, channels_last: bool) -> tuple[list, dict]:
    """Every input the model takes (:meth:`Rows.example`), 4-d float ones in channels-last when asked."""
    args, kwargs = rows.example(device, 0)

    def fmt(x: torch.Tensor) -> torch.Tensor:
        return x.to(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x

    return [fmt(a) for a in args], {k: fmt(v) for k, v in kwargs.items()}


def profile_inputs(model: nn.Module, input_shape: Optional[Sequence[int]], inputs: Optional[Sequence[Any]],
                   kwargs: Optional[dict], batch: object) -> dict:
    """The inputs asked for (or the model's ``default_input``) as analyze_rows takes them; the batch checked."""
    if not isinstance(batch, int) or batch < 1:
        raise ArchstatError(f"batch must be >= 1, got {batch}")
    if inputs or kwargs:
        return {"input_shape": input_shape, "inputs": inputs, "kwargs": kwargs}
    shape = tuple(input_shape or getattr(model, "default_input", ()) or ())
    if not shape:
        raise ArchstatError("profile needs an input shape (e.g. (3, 224, 224)): the model has no default_input")
    return {"input_shape": shape}
