"""Test-time augmentation built from the transforms the model was trained with.

TTA averages the softmax over several views of each test image,
``p(y | x) = (1 / V) sum_v softmax(f(T_v x))``.  It helps only when every view is an image the model
learnt to classify: a view the training never showed (a mirror image of a digit when training had
no flips, a zoomed crop when it had no scale augmentation) moves the input off the training
distribution and costs accuracy.  So the views come from ``--augment``:

* ``flip``                -> the mirrored image (and every other view mirrored too);
* ``crop=P``              -> shifts by ``s = max(1, P // 2)`` pixels left/right/up/down, zero fill
  (the pad-and-crop it was trained with, at half its range);
* ``rrc`` or ``scale``    -> a zoomed centre crop (resize by ``ZOOM``, crop the original size);

always with the unchanged image.  Colour, cutout, RandAugment and mixing give no view.  The
evaluation transform of the ImageNet recipes, resize by 256/224 and centre-crop, is reported beside
it: on models trained without scale augmentation it shows what an unseen view costs.
Views are computed on raw [0, 1] pixels (the split's normalisation undone and redone), so zero fill
is black, as in training.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from archstat.train.augment import crop_resize
from archstat.train.engine import accuracy_of_probs, predict_logits

RESIZE_CROP_SCALE = 256 / 224  # the ImageNet evaluation transform: resize to 256, centre-crop 224
ZOOM = 1.15
View = Callable[[torch.Tensor], torch.Tensor]


def shift(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Translate by whole pixels (content moves right/down for positive dx/dy), zero fill."""
    n, _, h, w = x.shape
    return crop_resize(x, torch.ones(n), torch.ones(n), torch.full((n,), -2.0 * dx / w), torch.full((n,), -2.0 * dy / h))


def resize_center_crop(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Resize by ``scale`` (bilinear) and cut the centre back to the original size."""
    h, w = x.shape[-2:]
    big = F.interpolate(x, size=(round(h * scale), round(w * scale)), mode="bilinear", align_corners=False)
    top, left = (big.shape[-2] - h) // 2, (big.shape[-1] - w) // 2
    return big[..., top:top + h, left:left + w]


def ten_crops(x: torch.Tensor, size: tuple[int, int]) -> list[torch.Tensor]:
    """4 corners + centre of ``x`` (N x C x H x W) at ``size``, then the same five mirrored (ResNet's 10-crop)."""
    h, w = size
    H, W = x.shape[-2:]
    top, left = (H - h) // 2, (W - w) // 2
    crops = [x[..., :h, :w], x[..., :h, W - w:], x[..., H - h:, :w], x[..., H - h:, W - w:],
             x[..., top:top + h, left:left + w]]
    return crops + [c.flip(-1) for c in crops]


def views_from_augment(spec: str) -> dict[str, View]:
    """Name -> view function on raw pixels, for the training transforms in ``spec`` (see the docstring)."""
    items = {name: arg for name, _, arg in (s.strip().partition("=") for s in (spec or "").split(",")) if name}
    base: dict[str, View] = {"identity": lambda x: x}
    if "crop" in items:
        s = max(1, int(items["crop"] or 2) // 2)
        for name, (dx, dy) in {"left": (-s, 0), "right": (s, 0), "up": (0, -s), "down": (0, s)}.items():
            base[f"shift {name} {s}px"] = lambda x, dx=dx, dy=dy: shift(x, dx, dy)
    if "rrc" in items or "scale" in items:
        base[f"zoom {ZOOM:g}"] = lambda x: resize_center_crop(x, ZOOM)
    if "flip" not in items:
        return base
    return {**base, **{f"{k} + flip": (lambda x, f=f: f(x).flip(-1)) for k, f in base.items()}}


def views_probs(model: nn.Module, x: torch.Tensor, views: dict[str, View], mean: torch.Tensor,
                std: torch.Tensor, device=None) -> torch.Tensor:
    """Mean softmax over ``views`` of normalised images ``x`` (views act on raw pixels)."""
    m, s = mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)
    raw = x * s + m
    probs = [predict_logits(model, ((v(raw) - m) / s).contiguous(), device=device).softmax(1) for v in views.values()]
    return torch.stack(probs).mean(0)


def tta_report(model: nn.Module, x: torch.Tensor, y: torch.Tensor, augment: str, mean: torch.Tensor,
               std: torch.Tensor, device=None) -> dict[str, object]:
    """Single crop vs TTA from the training transforms vs resize-and-centre-crop, accuracy on ``(x, y)``."""
    views = views_from_augment(augment)
    single = accuracy_of_probs(predict_logits(model, x, device=device), y)
    rcc = {"resize-center-crop": lambda r: resize_center_crop(r, RESIZE_CROP_SCALE)}
    return {"single_crop_acc": single, "tta_acc": accuracy_of_probs(views_probs(model, x, views, mean, std, device), y),
            "tta_views": list(views), "trained_with": augment or "(no augmentation)",
            "resize_center_crop_acc": accuracy_of_probs(views_probs(model, x, rcc, mean, std, device), y)}


def tta_line(r: dict, split: str = "test") -> str:
    """One printed line; says so when TTA does not beat the single crop."""
    n = len(r["tta_views"])
    verdict = ("no extra views: trained without flips, crops or scale augmentation" if n == 1 else
               "TTA helps" if r["tta_acc"] > r["single_crop_acc"] else
               "TTA does not help here" if r["tta_acc"] < r["single_crop_acc"] else "TTA ties the single crop")
    return (f"test-time augmentation ({split}): single crop {100 * r['single_crop_acc']:.2f}%, "
            f"TTA over {n} view{'s' if n != 1 else ''} from the training transforms {100 * r['tta_acc']:.2f}% "
            f"({verdict}); "
            f"resize {RESIZE_CROP_SCALE:.3g}x + centre crop {100 * r['resize_center_crop_acc']:.2f}%")
