"""A source task unlike digits, from images that ship with scikit-learn (no download).

``load_sample_images`` holds two 427x640 photographs (a temple, a flower).  The task is to predict
how a grey patch of them was rotated (0, 90, 180 or 270 degrees; Gidaris et al. 2018's
self-supervised pretext task): natural-image textures and edges, labels that have nothing to do with
digits.  It is the "different source" column of the lecture's transfer-learning table.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from archstat.train.data import Splits, make_splits

PATCH = 16  # patch side in pixels of the photos downscaled by DOWNSCALE
DOWNSCALE = 4
MIN_STD = 0.08  # flat patches (sky) have no recognisable orientation
ROTATIONS = ("0", "90", "180", "270")


def _photos() -> list[torch.Tensor]:
    """The two sample photographs as grey ``1 x 1 x H x W`` tensors in [0, 1], downscaled."""
    from sklearn.datasets import load_sample_images

    out = []
    for img in load_sample_images().images:
        g = torch.as_tensor(np.asarray(img, dtype=np.float32) / 255.0).mean(dim=2)[None, None]
        out.append(F.avg_pool2d(g, DOWNSCALE))
    return out


def rotation_patches(n: int, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """``n`` textured patches ``N x 1 x PATCH x PATCH`` and their rotation labels 0..3 (balanced)."""
    g = np.random.default_rng(seed)
    photos = _photos()
    patches: list[torch.Tensor] = []
    while len(patches) < n:
        ph = photos[int(g.integers(len(photos)))][0, 0]
        i, j = int(g.integers(ph.shape[0] - PATCH)), int(g.integers(ph.shape[1] - PATCH))
        p = ph[i:i + PATCH, j:j + PATCH]
        if float(p.std()) >= MIN_STD:
            patches.append(p)
    labels = np.arange(n) % len(ROTATIONS)
    x = torch.stack([torch.rot90(p, int(k), dims=(0, 1)) for p, k in zip(patches, labels)]).unsqueeze(1)
    return x.contiguous(), labels.astype(np.int64)


def rotation_splits(input_shape: tuple[int, int, int], n: int = 2400, seed: int = 0) -> Splits:
    """The rotation task as 60/20/20 train/val/test splits at ``input_shape`` (train-split statistics)."""
    x, y = rotation_patches(n, seed)
    cut = [int(0.6 * n), int(0.8 * n)]
    parts = (np.arange(cut[0]), np.arange(cut[0], cut[1]), np.arange(cut[1], n))
    return make_splits(x, y, parts, tuple(input_shape), "resize", [f"rotated {r}" for r in ROTATIONS],
                       None, None, seed)
