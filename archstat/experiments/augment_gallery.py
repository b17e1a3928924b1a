"""Experiment ``augment``: a gallery of every augmentation of ``archstat.train.augment`` on the same images.

Images: scikit-learn's two sample photographs (``china.jpg``, ``flower.jpg``, shipped with the
package, centre-cropped and resized to 96x96) for the colour operations, and two digits from the
training split, upsampled to 96x96 and repeated to RGB.  All four go through each transform as
one batch, so the mixing transforms (Mixup, CutMix) mix these images with each other; each image's
"class" is its row, so a soft label reads as "row i's share of the pixels".

Parameters (PyTorch/torchvision-style, as ``archstat train --augment`` takes them):
horizontal flip p = 1; pad-and-crop by up to 12 px (1/8 of the side, CIFAR's 4 px at 32);
random-resized crop with area in [0.35, 1]; ResNet's scale jitter s in [1, 480/256] (short side
L in [256, 480] for a 256 base); colour jitter 0.4; AlexNet's PCA colour shift with sigma 0.5
(the paper's 0.1 is barely visible at this size); Cutout 32 px; Mixup alpha = 1 (0.2 draws
lam close to 0 or 1); CutMix alpha = 1; RandAugment N = 2, M = 9.  A second figure shows
RandAugment's 14 operations one by one at the lecture's magnitude M = 9 (0..30 scale).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from archstat.experiments._common import (ExperimentResult, new_figure, progress_steps, save_figure, save_numbers,
                                          seed_everything)

SIZE = 96


def gallery_images(seed: int = 0, size: int = SIZE) -> tuple[torch.Tensor, list[str]]:
    """``4 x 3 x size x size`` images in [0, 1] and their names."""
    from sklearn.datasets import load_sample_images

    from archstat.train.data import digits_splits

    photos = load_sample_images()
    imgs, names = [], []
    for name, arr in zip(photos.filenames, photos.images):
        t = torch.tensor(np.array(arr), dtype=torch.float32).permute(2, 0, 1) / 255.0
        side = min(t.shape[1:])
        top, left = (t.shape[1] - side) // 2, (t.shape[2] - side) // 2
        t = t[:, top:top + side, left:left + side]  # centre square
        imgs.append(F.interpolate(t[None], size=(size, size), mode="bilinear", antialias=True,
                                  align_corners=False)[0].clamp(0, 1))
        names.append(Path(name).name)
    splits = digits_splits(input_shape=(3, 32, 32), seed=seed)
    x, y = splits.train.tensors
    for label in (3, 7):  # the first training image of two digits
        i = int((y == label).nonzero()[0])
        raw = splits.denormalise(x[i:i + 1])
        imgs.append(F.interpolate(raw, size=(size, size), mode="bilinear", align_corners=False)[0].clamp(0, 1))
        names.append(f"digit {label}")
    return torch.stack(imgs), names


def transforms(batch: torch.Tensor, n: int) -> dict[str, object]:
    """Column title -> transform ``t(x, y, g)``, in the lecture's order."""
    from archstat.train import augment as A
    from archstat.train.randaugment import RandAugment

    return {
        "original": lambda x, y, g: (x, y),
        "horizontal flip": A.HFlip(1.0),
        "pad-and-crop\n(12 px)": A.RandomCrop(SIZE // 8),
        "random resized\ncrop (35-100%)": A.RandomResizedCrop((0.35, 1.0)),
        "scale jitter\n(ResNet 256-480)": A.ScaleJitter(),
        "colour jitter\n(0.4)": A.ColorJitter(0.4, 0.4, 0.4),
        "PCA colour\n(AlexNet, sigma 0.5)": A.PCALighting.from_data(batch[:2], sigma=0.5),
        "Cutout\n(32 px)": A.Cutout(SIZE // 3),
        "Mixup\n(alpha 1)": A.Mixup(n, alpha=1.0),
        "CutMix\n(alpha 1)": A.CutMix(n, alpha=1.0),
        "RandAugment\n(N=2, M=9)": RandAugment(2, 9),
    }


def _label_text(y: torch.Tensor, names: list[str]) -> str:
    if y.dim() == 0:
        return ""
    parts = [f"{w:.2f} {names[k].split('.')[0]}" for k, w in enumerate(y.tolist()) if w > 0.005]
    return " + ".join(parts)


def run_gallery(x: torch.Tensor, names: list[str], seed: int) -> tuple[dict[str, torch.Tensor], pd.DataFrame]:
    """Apply every transform to the same batch; one generator per column, seeded alike."""
    y = torch.arange(len(names))
    outs, rows = {}, []
    for col, (title, t) in enumerate(transforms(x, len(names)).items()):
        g = torch.Generator().manual_seed(seed + col)
        xo, yo = t(x.clone(), y.clone(), g)
        outs[title] = (xo, yo)
        assert xo.shape == x.shape
        for i, name in enumerate(names):
            soft = yo[i] if yo.dim() == 2 else F.one_hot(yo[i], len(names)).float()
            rows.append({"augmentation": title.replace("\n", " "), "image": name,
                         "mean_abs_change": (xo[i] - x[i]).abs().mean().item(),
                         "share_pixels_changed": ((xo[i] - x[i]).abs().amax(0) > 1e-6).float().mean().item(),
                         "label_weight_own": soft[i].item(), "label_weight_sum": soft.sum().item()})
    return outs, pd.DataFrame(rows)


def _plot_gallery(x: torch.Tensor, names: list[str], outs: dict, out: Path | None,
                  result: ExperimentResult) -> None:
    cols = list(outs)
    fig, axes = new_figure(len(names), len(cols), size=(1.45 * len(cols), 1.75 * len(names) + 0.6))
    for c, title in enumerate(cols):
        xo, yo = outs[title]
        for r, name in enumerate(names):
            ax = axes[r][c]
            ax.imshow(xo[r].permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
            if yo.dim() == 2:  # soft labels of the mixing transforms
                ax.set_xlabel(_label_text(yo[r], names), fontsize=5.5)
    fig.suptitle(f"Data augmentation gallery: every transform on the same {len(names)} images "
                 f"({SIZE}x{SIZE} px; mixed labels under Mixup/CutMix)")
    save_figure(fig, out, "augment_gallery.png", result)


def _plot_randaugment_ops(x: torch.Tensor, names: list[str], out: Path | None, result: ExperimentResult) -> None:
    from archstat.train.randaugment import OPS, apply_op

    fig, axes = new_figure(len(names), len(OPS), size=(1.2 * len(OPS), 1.45 * len(names) + 0.6))
    sign = torch.ones(len(names))  # the positive direction of every signed op
    for c, op in enumerate(OPS):
        xo = apply_op(op, x.clone(), 9 / 30, sign).clamp(0, 1)
        for r, name in enumerate(names):
            ax = axes[r][c]
            ax.imshow(xo[r].permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(op, fontsize=7)
            if c == 0:
                ax.set_ylabel(name, fontsize=7)
    fig.suptitle("RandAugment: the lecture's 14 operations, each at magnitude M = 9 (of 30), positive sign")
    save_figure(fig, out, "augment_randaugment_ops.png", result)


def run(out: Path | None = None, *, quick: bool = False, seed: int = 0) -> ExperimentResult:
    """The gallery is cheap at any size; ``quick`` changes nothing."""
    seed_everything(seed)
    with progress_steps("augment", 2) as step:
        step("every augmentation on the gallery images")
        x, names = gallery_images(seed)
        outs, df = run_gallery(x, names, seed)
        result = ExperimentResult("augment", tables={"gallery": df})
        step("figures" if out is not None else "summary")
        _finish(result, df, x, names, outs, out)
    return result


def _finish(result: ExperimentResult, df: pd.DataFrame, x: torch.Tensor, names: list[str], outs: dict,
            out: Path | None) -> None:
    """The summary, the figures and the numbers of the gallery."""
    by_t = df.groupby("augmentation", sort=False)
    result.summary = {f"mean_abs_change[{t}]": float(d.mean_abs_change.mean()) for t, d in by_t}
    result.summary["images"] = names
    result.notes += [
        "pixels in [0, 1]; mean_abs_change is the mean |augmented - original| per pixel and channel",
        "label_weight_own < 1 only for Mixup/CutMix: the image's own share of its soft label",
    ]
    if out is not None:
        _plot_gallery(x, names, outs, out, result)
        _plot_randaugment_ops(x, names, out, result)
    save_numbers(result, out)
