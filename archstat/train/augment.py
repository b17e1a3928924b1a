"""Composable, seeded data augmentation on tensor batches (no torchvision, no PIL).

Every transform is a callable ``t(x, y, g) -> (x, y)`` on a batch: ``x`` is ``N x C x H x W`` raw
pixels in [0, 1] (``Augmenter`` undoes and redoes the dataset's normalisation around the pipeline),
``y`` is int64 labels ``(N,)`` or, once a mixing transform has run, soft targets ``N x K`` whose rows
sum to 1.  ``g`` is a ``torch.Generator``: the same seed gives the same batch, bit for bit.
Per-sample randomness is vectorised (one draw of N values) and geometry uses ``affine_grid``.

Mixing, for a random permutation ``p`` of the batch and ``lam ~ Beta(alpha, alpha)``:

* Mixup (Zhang et al. 2018): ``x = lam x + (1 - lam) x[p]``, ``y = lam y + (1 - lam) y[p]``;
* CutMix (Yun et al. 2019): a box of side ``sqrt(1 - lam)`` of the image is pasted from ``x[p]``;
  ``lam`` is then recomputed as ``1 - box area / (H W)`` after clipping, so the label weights are
  exactly the pixel fractions.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from archstat.errors import ArchstatError

Batch = tuple[torch.Tensor, torch.Tensor]
Transform = Callable[[torch.Tensor, torch.Tensor, torch.Generator], Batch]


def uniform(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def numpy_rng(g: torch.Generator) -> np.random.Generator:
    """A numpy RNG drawn from ``g`` (for Beta draws, which torch cannot seed with a generator)."""
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=g)))


def affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample ``x`` with per-sample 2x3 maps from output to input coordinates in [-1, 1]; zero fill."""
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def crop_resize(x: torch.Tensor, w: torch.Tensor, h: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor) -> torch.Tensor:
    """Crop boxes (size fractions w, h; centres cx, cy in [-1, 1]) and resize each back to H x W."""
    theta = torch.zeros(x.shape[0], 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w, cx, h, cy
    return affine(x, theta)


def grey(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma for RGB, the channel itself for grey: ``N x 1 x H x W``."""
    if x.shape[1] == 3:
        return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
    return x.mean(dim=1, keepdim=True)


def blend(a: torch.Tensor, b: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``b + factor (a - b)`` per sample, clamped to [0, 1] (PIL's ImageEnhance semantics)."""
    return (b + factor.view(-1, 1, 1, 1) * (a - b)).clamp(0.0, 1.0)


def one_hot(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    return y if y.dtype.is_floating_point else F.one_hot(y, num_classes).float()


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> Batch:
        for t in self.transforms:
            x, y = t(x, y, g)
        return x, y

    def __repr__(self) -> str:
        return f"Compose({self.transforms})"


class HFlip:
    """Mirror each image left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, x, y, g):
        flip = (torch.rand(x.shape[0], generator=g) < self.p).view(-1, 1, 1, 1)
        return torch.where(flip, x.flip(3), x), y


class RandomCrop:
    """Shift by up to ``pad`` whole pixels each way with zero fill (pad-and-crop, CIFAR style)."""

    def __init__(self, pad: int = 2) -> None:
        self.pad = pad

    def __call__(self, x, y, g):
        n, _, h, w = x.shape
        dx = torch.randint(-self.pad, self.pad + 1, (n,), generator=g).float()
        dy = torch.randint(-self.pad, self.pad + 1, (n,), generator=g).float()
        # integer shifts land on pixel centres, so bilinear sampling is an exact copy
        return crop_resize(x, torch.ones(n), torch.ones(n), 2 * dx / w, 2 * dy / h), y


class RandomResizedCrop:
    """Crop a random box (area fraction in ``scale``, aspect in ``ratio``) and resize it to H x W."""

    def __init__(self, scale: tuple[float, float] = (0.35, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> None:
        self.scale, self.ratio = scale, ratio

    def __call__(self, x, y, g):
        n = x.shape[0]
        area = uniform(g, n, *self.scale)
        logr = uniform(g, n, math.log(self.ratio[0]), math.log(self.ratio[1]))
        w = (area * logr.exp()).sqrt().clamp(max=1.0)
        h = (area / logr.exp()).sqrt().clamp(max=1.0)
        cx, cy = (2 * torch.rand(n, generator=g) - 1) * (1 - w), (2 * torch.rand(n, generator=g) - 1) * (1 - h)
        return crop_resize(x, w, h, cx, cy), y


class ScaleJitter:
    """ResNet's train-time scale augmentation: resize by ``s ~ U(lo, hi)`` then crop H x W at random.

    ResNet resizes the short side to L in [256, 480] and crops 224: ``s`` in [1, 480/256].
    """

    def __init__(self, lo: float = 1.0, hi: float = 480 / 256) -> None:
        self.lo, self.hi = lo, hi

    def __call__(self, x, y, g):
        n = x.shape[0]
        frac = 1.0 / uniform(g, n, self.lo, self.hi)
        cx, cy = (2 * torch.rand(n, generator=g) - 1) * (1 - frac), (2 * torch.rand(n, generator=g) - 1) * (1 - frac)
        return crop_resize(x, frac, frac, cx, cy), y


class ColorJitter:
    """Random brightness, contrast and saturation factors in ``[1 - a, 1 + a]`` per image."""

    def __init__(self, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4) -> None:
        self.b, self.c, self.s = brightness, contrast, saturation

    def __call__(self, x, y, g):
        n = x.shape[0]
        x = blend(x, torch.zeros_like(x), uniform(g, n, 1 - self.b, 1 + self.b))
        mean = grey(x).mean(dim=(1, 2, 3), keepdim=True)
        x = blend(x, mean.expand_as(x), uniform(g, n, 1 - self.c, 1 + self.c))
        sat = uniform(g, n, 1 - self.s, 1 + self.s)
        if x.shape[1] == 3:
            x = blend(x, grey(x).expand_as(x), sat)
        return x, y


class PCALighting:
    """AlexNet's colour augmentation: add ``V (alpha * lambda)``, ``alpha ~ N(0, sigma^2)`` per image.

    ``V``, ``lambda`` are the eigenvectors / eigenvalues of the 3x3 (C x C) covariance of the
    training pixels (Krizhevsky et al. 2012, sigma = 0.1).  Build with :meth:`from_data`.
    """

    def __init__(self, eigval: torch.Tensor, eigvec: torch.Tensor, sigma: float = 0.1) -> None:
        self.eigval, self.eigvec, self.sigma = eigval, eigvec, sigma

    @classmethod
    def from_data(cls, x: torch.Tensor, sigma: float = 0.1) -> "PCALighting":
        pixels = x.transpose(0, 1).reshape(x.shape[1], -1).double()
        eigval, eigvec = torch.linalg.eigh(torch.cov(pixels))
        return cls(eigval.clamp_min(0).float(), eigvec.float(), sigma)

    def __call__(self, x, y, g):
        alpha = torch.randn(x.shape[0], x.shape[1], generator=g) * self.sigma
        offset = (alpha * self.eigval) @ self.eigvec.T  # N x C: sum_k alpha_k lambda_k v_k
        return (x + offset.view(*offset.shape, 1, 1)).clamp(0.0, 1.0), y


def random_boxes(g: torch.Generator, n: int, h: int, w: int, frac: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Boxes of side ``frac * (h, w)`` with uniform centres, clipped to the image: (top, bottom, left, right)."""
    cy, cx = torch.randint(0, h, (n,), generator=g), torch.randint(0, w, (n,), generator=g)
    bh, bw = (frac * h).round().long(), (frac * w).round().long()
    top, bottom = (cy - bh // 2).clamp(0, h), (cy - bh // 2 + bh).clamp(0, h)
    left, right = (cx - bw // 2).clamp(0, w), (cx - bw // 2 + bw).clamp(0, w)
    return top, bottom, left, right


def box_mask(top, bottom, left, right, h: int, w: int) -> torch.Tensor:
    """``N x 1 x H x W`` boolean masks, True inside each box."""
    rows, cols = torch.arange(h).view(1, -1, 1), torch.arange(w).view(1, 1, -1)
    inside = ((rows >= top.view(-1, 1, 1)) & (rows < bottom.view(-1, 1, 1))
              & (cols >= left.view(-1, 1, 1)) & (cols < right.view(-1, 1, 1)))
    return inside.unsqueeze(1)


class Cutout:
    """DeVries & Taylor 2017: zero a ``size x size`` square (centre uniform, clipped) in each image."""

    def __init__(self, size: int = 8, fill: float = 0.0) -> None:
        self.size, self.fill = size, fill

    def __call__(self, x, y, g):
        n, _, h, w = x.shape
        frac = torch.full((n,), self.size / max(h, w))
        mask = box_mask(*random_boxes(g, n, h, w, frac), h, w)
        return x.masked_fill(mask, self.fill), y


class Mixup:
    """Convex combination of the batch with a permutation of itself; labels mixed with the same lam."""

    def __init__(self, num_classes: int, alpha: float = 0.2) -> None:
        self.k, self.alpha = num_classes, alpha

    def __call__(self, x, y, g):
        lam = float(numpy_rng(g).beta(self.alpha, self.alpha))
        perm = torch.randperm(x.shape[0], generator=g)
        y = one_hot(y, self.k)
        return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]


class CutMix:
    """Paste one random box from a permutation of the batch; lam = the kept pixel fraction."""

    def __init__(self, num_classes: int, alpha: float = 1.0) -> None:
        self.k, self.alpha = num_classes, alpha

    def __call__(self, x, y, g):
        n, _, h, w = x.shape
        lam = float(numpy_rng(g).beta(self.alpha, self.alpha))
        perm = torch.randperm(n, generator=g)
        box = random_boxes(g, 1, h, w, torch.tensor([math.sqrt(1.0 - lam)]))
        mask = box_mask(*box, h, w)  # 1 x 1 x H x W, the same box for the whole batch
        lam = 1.0 - mask.sum().item() / (h * w)  # exact pixel fraction after clipping
        y = one_hot(y, self.k)
        return torch.where(mask, x[perm], x), lam * y + (1 - lam) * y[perm]


class OneOf:
    """Apply one of several transforms, chosen uniformly per batch (Mixup *or* CutMix, as timm does)."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x, y, g):
        k = int(torch.randint(0, len(self.transforms), (1,), generator=g))
        return self.transforms[k](x, y, g)

    def __repr__(self) -> str:
        return f"OneOf({self.transforms})"


class Augmenter:
    """Denormalise, run a pipeline in [0, 1] pixel space, renormalise; owns the seeded generator."""

    def __init__(self, pipeline: Transform, mean: torch.Tensor, std: torch.Tensor, seed: int = 0) -> None:
        self.pipeline = pipeline
        self.mean, self.std = mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)
        self.g = torch.Generator().manual_seed(seed)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> Batch:
        raw = x * self.std + self.mean
        raw, y = self.pipeline(raw, y, self.g)
        return (raw - self.mean) / self.std, y


AUGMENT_DEFAULTS = {"flip": "0.5", "crop": "2", "rrc": "0.35", "scale": str(480 / 256), "jitter": "0.4", "pca": "0.1",
                    "cutout": "8", "randaug": "2:9", "mixup": "0.2", "cutmix": "1.0"}


def canonical_augment(spec: str) -> str:
    """``spec`` as ``parse_augment`` reads it: items in their order (it drives the random stream), spaces
    dropped, each with its value (``crop`` is ``crop=2``; numbers as floats).  ``--resume`` compares these."""
    items = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, arg = item.partition("=")
        arg = arg or AUGMENT_DEFAULTS.get(name, "")
        if name == "randaug" and ":" not in arg:
            arg += ":9"
        try:
            arg = ":".join(f"{float(a):g}" for a in arg.split(":"))
        except ValueError:
            pass
        items.append(f"{name}={arg}")
    return ",".join(items)


def parse_augment(spec: str, num_classes: int, train_raw: torch.Tensor | None = None) -> Compose:
    """``"flip,crop=2,rrc=0.35,scale,jitter=0.4,pca=0.1,cutout=8,randaug=2:9,mixup=0.2,cutmix=1"``.

    Mixing transforms run last whatever their position (they need the other ops' outputs); given
    both Mixup and CutMix, each batch gets one of them.
    ``pca`` needs the raw training images to compute its eigenbasis.
    """
    from archstat.train.randaugment import RandAugment

    ops: list[Transform] = []
    mixers: list[Transform] = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, arg = item.partition("=")

        def value(default: str, cast: Callable[[str], Any], lo: float, hi: float = math.inf, what: str = "") -> Any:
            """The item's number, refused in one line outside [lo, hi] (a negative crop was a torch traceback,
            mixup=-1 a numpy one, jitter=-1 silently a strange jitter)."""
            v = cast(arg or default)
            if not math.isfinite(v) or not lo <= v <= hi:  # scale=inf trained silently to chance
                bound = f">= {lo:g}" if hi == math.inf else f"in [{lo:g}, {hi:g}]"
                raise ArchstatError(f"--augment {item!r}: {what or 'the value'} must be {bound}")
            return v

        try:
            if name == "flip":
                ops.append(HFlip(value(AUGMENT_DEFAULTS["flip"], float, 0, 1, "the probability")))
            elif name == "crop":
                ops.append(RandomCrop(value(AUGMENT_DEFAULTS["crop"], int, 1, what="the padding (pixels)")))
            elif name == "rrc":
                ops.append(RandomResizedCrop((value(AUGMENT_DEFAULTS["rrc"], float, 0.01, 1, "the smallest area share"), 1.0)))
            elif name == "scale":
                ops.append(ScaleJitter(1.0, value(AUGMENT_DEFAULTS["scale"], float, 1, what="the largest scale")))
            elif name == "jitter":
                a = value(AUGMENT_DEFAULTS["jitter"], float, 0.001, what="the strength")
                ops.append(ColorJitter(a, a, a))
            elif name == "pca":
                if train_raw is None:
                    raise ArchstatError("--augment pca needs the training images")
                if train_raw.shape[1] < 2:
                    raise ArchstatError(f"--augment {item!r}: PCA lighting shifts colours along the images' colour "
                                        f"eigenvectors; these images have {train_raw.shape[1]} channel")
                ops.append(PCALighting.from_data(train_raw, value(AUGMENT_DEFAULTS["pca"], float, 0.001, what="sigma")))
            elif name == "cutout":
                ops.append(Cutout(value(AUGMENT_DEFAULTS["cutout"], int, 1, what="the square's side (pixels)")))
            elif name == "randaug":
                n, _, m = (arg or AUGMENT_DEFAULTS["randaug"]).partition(":")
                if not 1 <= int(n) or not 0 <= float(m or 9) <= 30:
                    raise ArchstatError(f"--augment {item!r}: randaug=N:M needs N >= 1 ops and a magnitude M in [0, 30]")
                ops.append(RandAugment(int(n), float(m or 9)))
            elif name == "mixup":
                mixers.append(Mixup(num_classes, value(AUGMENT_DEFAULTS["mixup"], float, 0.001, what="alpha")))
            elif name == "cutmix":
                mixers.append(CutMix(num_classes, value(AUGMENT_DEFAULTS["cutmix"], float, 0.001, what="alpha")))
            else:
                raise ArchstatError(f"unknown augmentation {name!r}; use flip, crop, rrc, scale, jitter, pca, "
                                    "cutout, randaug=N:M, mixup, cutmix")
        except ValueError:
            raise ArchstatError(f"malformed --augment item {item!r}") from None
    if len(mixers) > 1:  # mixing twice would blur three images; pick one per batch instead
        mixers = [OneOf(mixers)]
    return Compose(ops + mixers)
