"""The training step that ``profile(train=True)`` times, and the hook to the symbolic memory estimate.

One step = forward, cross-entropy on random labels, backward, SGD with momentum 0.9, gradients
freed (``zero_grad(set_to_none=True)``).  The step runs in the profiled dtype throughout (a pure
bf16/fp16 step, not autocast), so that its memory is comparable with a symbolic estimate taken in
that dtype.  Models with auxiliary heads in training (GoogLeNet, Inception-v3) add each head's
loss with weight 0.3, as the GoogLeNet paper does; a non-2-d output falls back to its mean.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from archstat.errors import ArchstatError, message_line
from archstat.analyses.memory import training_memory
from archstat.engine.analyze import analyze_rows
from archstat.engine.rows import Rows


def _outputs(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):  # namedtuples (GoogLeNetOutputs, InceptionOutputs) included
        return [t for t in out if isinstance(t, torch.Tensor)]
    if isinstance(out, dict):
        return [t for t in out.values() if isinstance(t, torch.Tensor)]
    raise ArchstatError(f"training step: cannot take a loss of a {type(out).__name__} output")


def _loss(outs: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    total = None
    for i, out in enumerate(outs):
        term = F.cross_entropy(out, labels) if out.dim() == 2 else out.float().mean()
        term = term if i == 0 else 0.3 * term
        total = term if total is None else total + term
    assert total is not None
    return total


def train_step_fn(model: nn.Module, x: Any, batch: int, kwargs: Optional[dict] = None) -> Callable[[], None]:
    """A closure doing one full training step of ``model`` (already in train mode) on ``x`` (one
    tensor, or the positional inputs) and the keyword inputs ``kwargs``."""
    args, kwargs = ([x] if isinstance(x, torch.Tensor) else list(x)), dict(kwargs or {})
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    try:
        outs = _outputs(model(*args, **kwargs))
    except (ValueError, RuntimeError) as exc:
        if "out of memory" in str(exc).lower():
            raise
        first = message_line(exc)
        raise ArchstatError(f"training step fails at batch {batch}: {first}") from None
    classes = outs[0].shape[-1] if outs[0].dim() == 2 else 1
    labels = torch.randint(0, classes, (batch,), device=outs[0].device)
    opt.zero_grad(set_to_none=True)

    def step() -> None:
        loss = _loss(_outputs(model(*args, **kwargs)), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def train_memory_estimate(model: nn.Module, rows: Rows) -> tuple[Optional[int], str]:
    """The symbolic training-memory estimate (``archstat.analyses.memory``, SGD with momentum) for the step
    that ``profile(train=True)`` times, and a note saying what it covers.

    ``(None, why)`` when the estimator cannot analyse the model: the comparison is then left out,
    it never fails the profile.
    """
    try:
        # the training graph: another mode, so its own trace
        df = training_memory(analyze_rows(model, batch=rows.batch, dtype=rows.dtype, mode="train", **rows.given),
                             optimizer="sgd")
    except ArchstatError as exc:
        return None, f"no estimate: {exc}"
    note = "archstat.analyses.memory.training_memory (sgd)"
    if df.attrs["memory_partial"]:
        note += "; partial: unknown saved tensors of " + ", ".join(df.attrs["memory_unknown"])
    return int(df.attrs["total"]["total"]), note
