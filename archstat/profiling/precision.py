"""The run precisions and the TF32 switches they set, through whichever API the process uses.

Precision (DESIGN.md): ``fp32`` is strict (TF32 off for cuDNN convolutions and for matmul), ``tf32``
turns both on.  ``bf16``/``fp16`` cast the model and input, so nothing runs in fp32 and TF32 is left
off.  Every result records the two flags it ran with.

torch has two APIs for the same switches: the legacy booleans (``torch.backends.cudnn.allow_tf32``,
``torch.backends.cuda.matmul.allow_tf32``) and, since torch 2.9, per-backend ``fp32_precision``
strings (``"tf32"``, ``"ieee"``, or ``"none"`` = inherit from the parent backend).  Once a process
has written the new API, *reading* a legacy flag raises a RuntimeError ("mix of the legacy and new
APIs"), so a profiler that always used the legacy flags would crash for any user whose code (or
library) switched to the new one.  We keep to the API the process is on: the legacy flags while they
can be read (the default, and what the GPU script runs), the per-backend strings otherwise.  With
the new API both cuDNN ops (conv and rnn) get the same value, because a cuDNN read without an op
name refuses a conv/rnn disagreement.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from archstat.errors import ArchstatError

PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "tf32": torch.float32,
                                      "bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str) -> torch.dtype:
    if precision not in PRECISIONS:
        raise ArchstatError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    return PRECISIONS[precision]


def new_api_in_use() -> bool:
    """True when the legacy TF32 flags can no longer be read (the process wrote ``fp32_precision``)."""
    if not hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        return False  # torch < 2.9: only the legacy flags exist
    try:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    except RuntimeError:
        return True
    return False


def _resolved(*chain: object) -> str:
    """The first explicit ``fp32_precision`` along a backend and its parents (``"none"`` = inherit)."""
    for backend in chain:
        value = getattr(backend, "fp32_precision", "none")
        if value != "none":
            return value
    return "none"


def tf32_flags() -> dict[str, bool]:
    """Whether TF32 is on for cuDNN convolutions and for matmul, read through the API in use."""
    if not new_api_in_use():
        return {"cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
                "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32)}
    b = torch.backends
    conv = _resolved(b.cudnn.conv, b.cudnn, b)
    matmul = _resolved(b.cuda.matmul, b)
    # all-"none" means torch's defaults: TF32 on for cuDNN convolutions, off for matmul
    return {"cudnn_allow_tf32": conv in ("tf32", "none"), "matmul_allow_tf32": matmul == "tf32"}


def _switches(tf32: bool) -> list[tuple[object, str, object]]:
    """(backend, attribute, value) of the TF32 switches, through the API the process is on."""
    b = torch.backends
    if new_api_in_use():
        value = "tf32" if tf32 else "ieee"
        return [(b.cudnn.conv, "fp32_precision", value), (b.cudnn.rnn, "fp32_precision", value),
                (b.cuda.matmul, "fp32_precision", value)]
    return [(b.cudnn, "allow_tf32", tf32), (b.cuda.matmul, "allow_tf32", tf32)]


@contextlib.contextmanager
def precision_flags(precision: str, benchmark: bool = True) -> Iterator[dict[str, bool]]:
    """Set the TF32 flags (and cudnn.benchmark) for ``precision``; restore them afterwards."""
    check_precision(precision)
    switches = [*_switches(precision == "tf32"), (torch.backends.cudnn, "benchmark", benchmark)]
    saved = [getattr(backend, attr) for backend, attr, _ in switches]
    try:
        for backend, attr, value in switches:
            setattr(backend, attr, value)
        yield {**tf32_flags(), "cudnn_benchmark": benchmark}
    finally:
        for (backend, attr, _), value in zip(switches, saved):
            setattr(backend, attr, value)
