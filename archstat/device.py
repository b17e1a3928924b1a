"""The one place a ``--device`` string becomes a ``torch.device`` (validate and profile both need it).

At the ground floor, beside ``errors``, because validation/ and profiling/ sit on different floors
and both must refuse a missing CUDA with the same one-line message.  torch loads on first call.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from archstat.errors import ArchstatError

if TYPE_CHECKING:
    import torch


def resolve_device(device: str | torch.device) -> torch.device:
    """``"cuda"``/``"cpu"`` -> torch.device; CUDA asked for but absent is a one-line error."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ArchstatError(f"unknown device {device!r}: use cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ArchstatError(f"--device cuda requested but CUDA is not available (torch {torch.__version__})")
    if dev.type not in ("cpu", "cuda"):
        raise ArchstatError(f"unsupported device {device!r}: use cpu or cuda")
    return dev
