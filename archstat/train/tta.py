"""Test-time augmentation: ResNet's 10-crop and multi-scale evaluation against a single crop.

A model trained at ``S x S`` sees, at test time, the image resized so that its side is ``L`` and
``S x S`` crops of it: the 4 corners and the centre, each also mirrored (10 crops).  ResNet uses
``L = 256`` for ``S = 224`` (10-crop) and ``L in {224, 256, 384, 480, 640}`` (multi-scale); here
the same ratios ``L / S`` are applied to the split's own size.  The predicted distribution is the
mean of the crops' softmax outputs.  Resizing normalised tensors is exact: bilinear interpolation
commutes with the per-channel affine normalisation.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from archstat.train.engine import accuracy_of_probs, predict_logits

RESNET_SCALES = (224 / 224, 256 / 224, 384 / 224, 480 / 224, 640 / 224)
TEN_CROP_SCALE = 256 / 224


def ten_crops(x: torch.Tensor, size: tuple[int, int]) -> list[torch.Tensor]:
    """4 corners + centre of ``x`` (N x C x H x W) at ``size``, then the same five mirrored."""
    h, w = size
    H, W = x.shape[-2:]
    top, left = (H - h) // 2, (W - w) // 2
    crops = [x[..., :h, :w], x[..., :h, W - w:], x[..., H - h:, :w], x[..., H - h:, W - w:],
             x[..., top:top + h, left:left + w]]
    return crops + [c.flip(-1) for c in crops]


def resize(x: torch.Tensor, scale: float) -> torch.Tensor:
    if scale == 1.0:
        return x
    size = (round(x.shape[-2] * scale), round(x.shape[-1] * scale))
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def tta_probs(model: nn.Module, x: torch.Tensor, scales: Sequence[float], device=None) -> torch.Tensor:
    """Mean softmax over 10 crops at each scale (1 x 1 scale: the crops coincide, flips still differ)."""
    size = tuple(x.shape[-2:])
    probs = [predict_logits(model, crop.contiguous(), device=device).softmax(1)
             for s in scales for crop in ten_crops(resize(x, s), size)]
    return torch.stack(probs).mean(0)


def tta_report(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device=None) -> dict[str, float]:
    """Single (centre) crop vs 10-crop at 256/224 vs multi-scale 10-crop, test accuracy."""
    single = accuracy_of_probs(predict_logits(model, x, device=device), y)
    return {"single_crop_test_acc": single,
            "ten_crop_test_acc": accuracy_of_probs(tta_probs(model, x, [TEN_CROP_SCALE], device), y),
            "flip_test_acc": accuracy_of_probs(tta_probs(model, x, [1.0], device), y),
            "multiscale_ten_crop_test_acc": accuracy_of_probs(tta_probs(model, x, RESNET_SCALES, device), y)}
