"""The lecture's sanity checks before any long run ("Hyperparameter Selection", steps 1-3).

1. **Initial loss.**  With weight decay off and a small last layer, the logits start near 0, so the
   softmax is near uniform and the cross-entropy is ``-log(1/C) = ln C``.  We require
   ``|L0 - ln C| <= 10% ln C`` on a training batch, in train mode (BatchNorm on batch statistics,
   as the first iteration sees it) with dropout off: dropout is regularisation, and its inverted
   scaling multiplies the logits' variance by ``1/(1-p)`` per dropout layer (VGG-BN's two p=0.5
   layers take L0 from 2.36 to 2.65 at 1x32x32), which says nothing about the initialisation.
   The loss with dropout on is reported alongside.
2. **Overfit a small sample.**  5-10 minibatches, regularisation off (weight decay 0, dropout 0,
   no augmentation): the model must reach 100% training accuracy.  If the loss does not fall, the LR
   is too low or the init is bad; if it explodes to inf/NaN, the LR is too high.
3. **LR range test** (Smith 2017): one run whose LR grows geometrically from 1e-5 to 1e-1,
   ``lr_t = lo (hi / lo) ** (t / (T - 1))``; the loss (smoothed) falls fastest near a good LR
   and explodes past the largest usable one.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from archstat.files import write_figure
from archstat.train.data import Splits
from archstat.train.engine import loss_of, predict_logits, progress_bar, split_outputs
from archstat.train.optim import build_optimizer


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str
    values: dict = field(default_factory=dict)


def _first(ds, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = ds.tensors
    return x[:n], y[:n]


def no_regularisation(model: nn.Module) -> nn.Module:
    """Dropout probabilities to 0 (in place); weight decay and augmentation are the caller's."""
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.p = 0.0
    return model


@torch.no_grad()
def check_init_loss(model: nn.Module, splits: Splits, batch: int = 256, tol: float = 0.10,
                    device: torch.device | str = "cpu") -> CheckResult:
    """Loss of the untrained model on a training batch against ln C (copies run; the model is untouched)."""
    net = copy.deepcopy(model).to(device).train()
    x, y = _first(splits.train, batch)
    x, y = x.to(device), y.to(device)
    has_dropout = any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in net.modules())
    with_dropout = float(torch.nn.functional.cross_entropy(split_outputs(net(x))[0].float(), y)) if has_dropout else None
    net = copy.deepcopy(model).to(device).train()  # fresh BN statistics for the measured pass
    logits = split_outputs(no_regularisation(net)(x))[0].float()
    loss = float(torch.nn.functional.cross_entropy(logits, y))
    expected = math.log(splits.num_classes)
    rel = abs(loss - expected) / expected
    extra = f"; {with_dropout:.4f} with dropout on" if with_dropout is not None else ""
    hint = "" if rel <= tol else "; " + init_loss_hint(loss, expected, float(logits.std()))
    return CheckResult("init-loss", rel <= tol,
                       f"initial loss {loss:.4f} vs ln({splits.num_classes}) = {expected:.4f} ({100 * rel:.1f}% off, "
                       f"tolerance {100 * tol:.0f}%){extra}{hint}",
                       {"loss": loss, "expected": expected, "rel_err": rel, "loss_with_dropout": with_dropout})


def init_loss_hint(loss: float, expected: float, logit_std: float) -> str:
    """The likely causes of an initial loss far from ln C, as the lecture lists them."""
    if loss > expected:
        return (f"likely causes: logits too large at init (their std is {logit_std:.2f}; the classifier's init "
                "should be small, e.g. std 0.01 or zero), inputs not normalised, or a missing BatchNorm/scaled init")
    return ("likely causes: the loss is below chance, so the labels may leak into the inputs, the number of "
            "classes may be wrong, or the classes are heavily imbalanced")


def overfit_small(model: nn.Module, splits: Splits, batches: int = 5, batch: int = 32, max_iters: int = 300,
                  optimizer: str = "adamw", lr: float = 1e-3, device: torch.device | str = "cpu",
                  check_every: int = 10, progress: bool = False) -> CheckResult:
    """Train a copy on ``batches x batch`` training images, regularisation off, until 100% train accuracy.

    Each iteration uses one of the fixed minibatches in turn (an "epoch" is ``batches`` iterations);
    every ``check_every`` iterations the whole subset is scored in eval mode.
    """
    net = no_regularisation(copy.deepcopy(model)).to(device).train()
    x, y = _first(splits.train, batches * batch)
    x, y = x.to(device), y.to(device)
    opt = build_optimizer(net.parameters(), optimizer, lr, weight_decay=0.0)
    acc, loss_v, first_loss = 0.0, float("nan"), None
    bar = progress_bar(max_iters, disable=not progress, desc=f"overfit-small ({optimizer}, lr {lr:g})")
    for it in range(1, max_iters + 1):
        bar.update(1)
        k = (it - 1) % batches
        xb, yb = x[k * batch:(k + 1) * batch], y[k * batch:(k + 1) * batch]
        loss, _ = loss_of(net(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_v = loss.item()
        first_loss = loss_v if first_loss is None else first_loss
        if not math.isfinite(loss_v):
            bar.close()
            return CheckResult("overfit-small", False, f"loss became {loss_v} at iteration {it}: LR {lr:g} too high",
                               {"iters": it, "loss": loss_v, "acc": acc})
        if it % check_every == 0 or it == max_iters:
            acc = float((predict_logits(net, x, device=device).argmax(1) == y.cpu()).float().mean())
            bar.set_postfix(loss=f"{loss_v:.3f}", acc=f"{acc:.2f}")
            if acc == 1.0:
                break
    bar.close()
    ok = acc == 1.0
    hint = "" if ok else ("; loss barely moved: LR too low or bad init" if loss_v > 0.5 * first_loss else "")
    return CheckResult("overfit-small", ok,
                       f"{len(x)} images ({batches} x {batch}), {optimizer} lr {lr:g}, no weight decay: train accuracy {100 * acc:.1f}% after {it} iterations, "
                       f"loss {first_loss:.3f} -> {loss_v:.4f}{hint}",
                       {"iters": it, "loss": loss_v, "acc": acc, "first_loss": first_loss})


def lr_range_test(model: nn.Module, splits: Splits, lo: float = 1e-5, hi: float = 1e-1, iters: int = 100,
                  batch: int = 64, optimizer: str = "sgd", weight_decay: float = 1e-4, seed: int = 0,
                  device: torch.device | str = "cpu", beta: float = 0.9) -> dict:
    """Geometric LR sweep on a copy; returns lrs, raw and smoothed losses and a suggested LR.

    Smoothing is the bias-corrected exponential average ``s_t = (beta s_{t-1} + (1-beta) L_t)/(1-beta^t)``.
    The suggestion is the LR of steepest smoothed descent (most negative dL/dlog lr) before the
    loss exceeds 4x its minimum (divergence stops the sweep), the usual reading of the test.
    """
    net = copy.deepcopy(model).to(device).train()
    opt = build_optimizer(net.parameters(), optimizer, lo, weight_decay)
    g = torch.Generator().manual_seed(seed)
    x_all, y_all = splits.train.tensors
    lrs, losses, smooth = [], [], []
    avg, best = 0.0, float("inf")
    for t in range(iters):
        lr = lo * (hi / lo) ** (t / max(iters - 1, 1))
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(0, len(x_all), (batch,), generator=g)
        loss, _ = loss_of(net(x_all[idx].to(device)), y_all[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        v = loss.item()
        avg = beta * avg + (1 - beta) * v
        s = avg / (1 - beta ** (t + 1))
        lrs.append(lr), losses.append(v), smooth.append(s)
        best = min(best, s)
        if not math.isfinite(v) or s > 4 * best:
            break
    slopes = [(smooth[i + 1] - smooth[i - 1]) / math.log(lrs[i + 1] / lrs[i - 1]) for i in range(1, len(smooth) - 1)]
    steepest = lrs[1 + min(range(len(slopes)), key=slopes.__getitem__)] if slopes else lo
    return {"lr": lrs, "loss": losses, "smooth": smooth, "suggested_lr": steepest,
            "min_loss_lr": lrs[min(range(len(smooth)), key=smooth.__getitem__)], "diverged": len(lrs) < iters}


def plot_lr_range(result: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(result["lr"], result["loss"], s=5, alpha=0.4, label="loss")
    ax.plot(result["lr"], result["smooth"], label="smoothed")
    ax.axvline(result["suggested_lr"], color="tab:red", ls="--", label=f"steepest {result['suggested_lr']:.2g}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="loss", title="LR range test")
    ax.legend()
    fig.tight_layout()
    write_figure(fig, path, dpi=90)
