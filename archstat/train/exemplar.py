"""Exemplar pre-training: a source network whose features tell images apart, not only its classes.

A network trained on the source's ``K`` classes alone needs features that separate those ``K``;
everything else its features could say about an image is free to collapse (the lecture: the later
layers specialise), and a few-shot probe for new classes is left with little more than the pixels.
Exemplar training (Dosovitskiy et al. 2014) makes every one of the ``n`` source training images a
class of its own, to be recognised under random deformations ``T``, beside the source's labels:

    L = mean over a batch of  CE(h_e(phi(T x_i)), i)  +  lambda * CE(h_s(phi(T x_i)), y_i)

with ``phi`` the network up to its classifier's input, ``h_s`` its own classifier (``K`` outputs,
kept: the network still does the source task) and ``h_e`` an extra linear layer over the ``n``
images, dropped after training.  To tell image ``i`` from the other ``n - 1`` under any ``T``, the
features must keep the strokes that differ between images of one class and ignore what ``T``
changes: what a probe for unseen classes needs.

``T`` is a random similarity per image, in raw pixel space with zero fill (a digit's background;
black corners on a photo patch): rotation ``theta ~ U(-ROTATE_DEG, ROTATE_DEG)``, scale
``z = 1 + U(-SCALE, SCALE)``, shift ``U(-SHIFT, SHIFT)`` of the half-width or half-height along each
axis (up to 2 pixels each way at 32x32).  As an ``affine_grid`` map from output to input
coordinates in ``[-1, 1]``, with ``c = cos theta``, ``s = sin theta`` and ``a = H / W`` (a rotation
by pixels, not by normalised units, so that a non-square image is not sheared):
``[[c / z, -s a / z, t_x], [s / (a z), c / z, t_y]]``.  SGD with Nesterov momentum under
PyTorch's one-cycle schedule (``OneCycleLR`` with its defaults: the LR rises from ``lr / 25`` to
``lr`` over the first 10% of the steps and anneals by cosine to ``lr / 25e4``, while the momentum
goes 0.95 -> 0.85 -> 0.95), for ``steps`` batches (at least ``MIN_STEPS``: the warm-up needs two),
each drawn from a fresh permutation of the images.  The recipe (deformations, 2000 steps of 64,
``lambda = 1``) was chosen on the transfer target's validation split with digits 0-4 as the source
(docs/measured.md), never on test.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from archstat.errors import ArchstatError
from archstat.progress import progress
from archstat.train.augment import affine
from archstat.train.data import Splits
from archstat.train.engine import split_outputs
from archstat.train.probe import classifier_name
from archstat.train.setup import build_model

ROTATE_DEG = 15.0
SCALE = 0.12
SHIFT = 0.12  # of the half-width: affine_grid's coordinates run over [-1, 1]
EXEMPLAR_STEPS = 2000
SOURCE_WEIGHT = 1.0  # lambda: the source labels' loss beside the exemplars'
WARMUP_SHARE = 0.1
MIN_STEPS = 20  # OneCycleLR needs a warm-up of at least two steps (WARMUP_SHARE * steps >= 2)


@dataclass
class ExemplarRun:
    """The trained network (eval mode, its own classifier kept) and what its training reached."""

    model: nn.Module
    summary: dict[str, Any]


def random_similarity(n: int, g: torch.Generator, rotate_deg: float = ROTATE_DEG, scale: float = SCALE,
                      shift: float = SHIFT, aspect: float = 1.0) -> torch.Tensor:
    """``n x 2 x 3`` maps (output -> input coordinates in [-1, 1]) of random similarities of images whose
    height is ``aspect`` times their width (see the module docstring)."""
    def u(half: float, *shape: int) -> torch.Tensor:
        return (2 * torch.rand(*shape, generator=g) - 1) * half

    angle, zoom = u(math.radians(rotate_deg), n), 1 + u(scale, n)
    c, s = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = c, -s * aspect, s / aspect, c
    theta[:, :, 2] = u(shift, n, 2)
    return theta


def deform(x: torch.Tensor, src: Splits, g: torch.Generator) -> torch.Tensor:
    """``src``-normalised images, each through its own random similarity in raw pixels (zero fill)."""
    m, s = src.mean.view(1, -1, 1, 1).to(x.device), src.std.view(1, -1, 1, 1).to(x.device)
    theta = random_similarity(len(x), g, aspect=x.shape[2] / x.shape[3]).to(x.device)
    return (affine(x * s + m, theta) - m) / s


def check_steps(steps: int, option: str) -> None:
    """An exemplar step count as an option takes it: 0 (no exemplar network) or at least ``MIN_STEPS``;
    else a one-line ArchstatError naming ``option``."""
    if steps != 0 and steps < MIN_STEPS:
        raise ArchstatError(f"{option} must be 0 or at least {MIN_STEPS}, got {steps}")


def exemplar_pretrain(model_spec: str, src: Splits, *, lr: float, batch: int, weight_decay: float, seed: int,
                      steps: int = EXEMPLAR_STEPS, source_weight: float = SOURCE_WEIGHT,
                      model_kw: dict[str, Any] | None = None, device: torch.device | str = "cpu",
                      quiet: bool = False) -> ExemplarRun:
    """Train ``model_spec`` from scratch on ``src``'s training images as exemplars plus their labels."""
    if steps < MIN_STEPS:
        raise ArchstatError(f"exemplar pre-training needs at least {MIN_STEPS} steps, got {steps}")
    x, y = (t.to(device) for t in src.train.tensors)
    n = len(x)
    model = build_model(model_spec, src.num_classes, src.input_shape[0], seed=seed, model_kw=model_kw, device=device)
    head_name = classifier_name(model)
    own = model.get_submodule(head_name)
    exemplars = nn.Linear(own.in_features, n).to(device)
    taken: list[torch.Tensor] = []  # the classifier's input, once per forward (checked)
    hook = own.register_forward_pre_hook(lambda _m, args: taken.append(args[0]))
    params = list(model.parameters()) + list(exemplars.parameters())
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)  # OneCycleLR cycles it
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=WARMUP_SHARE)
    g = torch.Generator().manual_seed(seed)  # on the CPU: the same draws on any device
    order = torch.empty(0, dtype=torch.long)
    hits, seen = 0, 0  # exemplar accuracy over the last quarter of the steps
    model.train()
    try:
        with progress(total=steps, desc="exemplar pre-training", unit="step", disable=quiet) as bar:
            for step in range(steps):
                if len(order) < batch:
                    order = torch.cat([order, torch.randperm(n, generator=g)])
                idx, order = order[:batch].to(device), order[batch:]
                taken.clear()
                logits = split_outputs(model(deform(x[idx], src, g)))[0]  # auxiliary heads: not trained here
                if len(taken) != 1:
                    raise ArchstatError(f"exemplar pre-training reads the input of {model_spec}'s classifier "
                                        f"{head_name!r}, which one forward called {len(taken)} times")
                inst = exemplars(taken[0])
                loss = F.cross_entropy(inst, idx) + source_weight * F.cross_entropy(logits, y[idx])
                if not torch.isfinite(loss):
                    raise ArchstatError(f"exemplar pre-training diverged at step {step} (loss {float(loss)}); "
                                        "try a smaller --lr")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                if step >= steps - max(1, steps // 4):
                    hits, seen = hits + int((inst.argmax(1) == idx).sum()), seen + len(idx)
                bar.update()
    finally:
        hook.remove()
    model.eval()
    with torch.no_grad():
        vx, vy = (t.to(device) for t in src.val.tensors)
        val = float((split_outputs(model(vx))[0].argmax(1) == vy).float().mean()) if len(vx) else float("nan")
    return ExemplarRun(model, {"steps": steps, "exemplars": n, "exemplar_train_acc": hits / max(seen, 1),
                               "source_val_acc": val})
