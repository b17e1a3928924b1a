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


def _new_api_nodes() -> list[object]:
    b = torch.backends
    return [b.cudnn.conv, b.cudnn.rnn, b.cuda.matmul]


@contextlib.contextmanager
def precision_flags(precision: str, benchmark: bool = True) -> Iterator[dict[str, bool]]:
    """Set the TF32 flags (and cudnn.benchmark) for ``precision``; restore them afterwards."""
    check_precision(precision)
    tf32 = precision == "tf32"
    bench_saved = torch.backends.cudnn.benchmark
    if new_api_in_use():
        nodes = _new_api_nodes()
        saved = [n.fp32_precision for n in nodes]
        try:
            for n in nodes:
                n.fp32_precision = "tf32" if tf32 else "ieee"
            torch.backends.cudnn.benchmark = benchmark
            yield {**tf32_flags(), "cudnn_benchmark": benchmark}
        finally:
            for n, value in zip(nodes, saved):
                n.fp32_precision = value
            torch.backends.cudnn.benchmark = bench_saved
        return
    saved_legacy = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    try:
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = benchmark
        yield {**tf32_flags(), "cudnn_benchmark": benchmark}
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved_legacy
        torch.backends.cudnn.benchmark = bench_saved
