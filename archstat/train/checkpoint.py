"""Checkpoints: which ones a run keeps (``--save``), written atomically, read with ``weights_only``.

``--save`` policies:

* ``best`` (default): ``best.pt`` whenever the validation accuracy improves, and ``last.pt`` (what
  ``--resume`` needs) overwritten each epoch;
* ``last``: ``last.pt`` only; ``all``: also ``epoch_<k>.pt`` every epoch; ``none``: nothing.

Every file goes to a temporary name in the same folder first and is then renamed over the target
(``os.replace`` is atomic on POSIX and Windows), so an interrupted run never leaves a truncated
checkpoint.  Loading uses ``torch.load(..., weights_only=True)``: a checkpoint holds tensors, numbers,
strings, lists and dicts only, so no pickled code runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from archstat.errors import ArchstatError
from archstat.files import replacing

SAVE_POLICIES = ("best", "last", "all", "none")


def check_policy(policy: str) -> str:
    if policy not in SAVE_POLICIES:
        raise ArchstatError(f"unknown --save {policy!r}; use one of {', '.join(SAVE_POLICIES)}")
    return policy


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    with replacing(path) as tmp:
        torch.save(obj, tmp)
    return path


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """A checkpoint dict, or one line (ArchstatError) if ``path`` is missing or not a checkpoint."""
    path = Path(path)
    if path.is_dir():
        raise ArchstatError(f"{str(path)!r} is a folder; give a checkpoint in it (best.pt, last.pt, epoch_K.pt)")
    if not path.is_file():
        raise ArchstatError(f"no checkpoint file {str(path)!r}")
    try:
        ck = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle, zip and unpickler errors all mean "not a checkpoint"
        raise ArchstatError(f"{path} is not an archstat checkpoint (torch.load: {type(exc).__name__})") from None
    if not isinstance(ck, dict) or not isinstance(ck.get("model"), dict):
        raise ArchstatError(f"{path} is not an archstat checkpoint (no 'model' state dict)")
    return ck


def wanted(policy: str, kind: str) -> bool:
    """Does ``policy`` write checkpoints of ``kind`` (``best``, ``last`` or ``epoch``)?"""
    return {"best": kind in ("best", "last"), "last": kind == "last", "all": True, "none": False}[policy]
