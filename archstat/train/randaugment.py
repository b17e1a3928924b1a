"""RandAugment (Cubuk et al. 2020) with the lecture's 14 operations and its (N, M) parameters.

For each image, N operations are drawn uniformly (with replacement) from::

    Identity, AutoContrast, Equalize, Rotate, Solarize, Color, Posterize,
    Contrast, Brightness, Sharpness, ShearX, ShearY, TranslateX, TranslateY

and each is applied with the one global magnitude M on torchvision's 0..30 scale, ``m = M / 30``:
rotate ``30 m`` degrees, shear ``0.3 m``, translate ``0.45 m`` of the side, Color / Contrast /
Brightness / Sharpness factor ``1 +- 0.9 m`` (sign random per image, as for the geometric ops),
Posterize to ``8 - round(4 m)`` bits, Solarize above ``1 - m``.  Pixels are in [0, 1]; geometric
ops fill with 0.  The ops follow PIL's ImageOps/ImageEnhance definitions, vectorised over a batch.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from archstat.train.augment import affine, blend, grey

OPS = ("Identity", "AutoContrast", "Equalize", "Rotate", "Solarize", "Color", "Posterize",
       "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX", "TranslateY")


def _theta(n: int, a: float = 1, b: float = 0, c: float = 0, d: float = 0, e: float = 1, f: float = 0) -> torch.Tensor:
    t = torch.tensor([[a, b, c], [d, e, f]], dtype=torch.float32)
    return t.expand(n, 2, 3).clone()


def autocontrast(x: torch.Tensor) -> torch.Tensor:
    """Stretch each channel so that its darkest pixel is 0 and its brightest 1 (constant channels kept)."""
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    span = hi - lo
    return torch.where(span > 0, (x - lo) / span.clamp_min(1e-12), x)


def equalize(x: torch.Tensor) -> torch.Tensor:
    """PIL's histogram equalisation per channel on 256 levels (lut[i] = (cdf_before(i) + step/2) // step)."""
    n, c, h, w = x.shape
    q = (x * 255).round().long().clamp(0, 255).view(n * c, h * w)
    hist = torch.zeros(n * c, 256, dtype=torch.long).scatter_add_(1, q, torch.ones_like(q))
    # PIL leaves out the last non-empty bin when computing the step
    last = 255 - hist.flip(1).ne(0).long().argmax(dim=1)
    step = (h * w - hist.gather(1, last.view(-1, 1)).squeeze(1)) // 255
    before = hist.cumsum(1) - hist
    lut = ((before + (step // 2).view(-1, 1)) // step.clamp_min(1).view(-1, 1)).clamp(0, 255)
    out = lut.gather(1, q).float() / 255
    out = torch.where((step > 0).view(-1, 1), out, q.float() / 255)  # step 0: PIL returns the image
    return out.view(n, c, h, w)


def posterize(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Keep the top ``bits`` bits of each 8-bit value."""
    q = (x * 255).floor().long().clamp(0, 255)
    shift = 8 - bits
    return ((q >> shift) << shift).float() / 255


def sharpness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with PIL's SMOOTH kernel [[1,1,1],[1,5,1],[1,1,1]]/13; border pixels stay as they are."""
    c = x.shape[1]
    k = torch.ones(3, 3)
    k[1, 1] = 5
    k = (k / 13).expand(c, 1, 3, 3)
    smooth = F.conv2d(x, k, padding=1, groups=c)
    smooth[..., 0, :], smooth[..., -1, :] = x[..., 0, :], x[..., -1, :]
    smooth[..., :, 0], smooth[..., :, -1] = x[..., :, 0], x[..., :, -1]
    return blend(x, smooth, factor)


def apply_op(name: str, x: torch.Tensor, m: float, sign: torch.Tensor) -> torch.Tensor:
    """One op at magnitude fraction ``m`` in [0, 1]; ``sign`` (+-1 per image) for the signed ones."""
    n = x.shape[0]
    factor = 1 + sign * 0.9 * m
    if name == "Identity":
        return x
    if name == "AutoContrast":
        return autocontrast(x)
    if name == "Equalize":
        return equalize(x)
    if name == "Solarize":
        return torch.where(x >= 1 - m, 1 - x, x) if m > 0 else x
    if name == "Posterize":
        return posterize(x, 8 - round(4 * m))
    if name == "Color":
        return blend(x, grey(x).expand_as(x), factor)
    if name == "Contrast":
        return blend(x, grey(x).mean(dim=(1, 2, 3), keepdim=True).expand_as(x), factor)
    if name == "Brightness":
        return blend(x, torch.zeros_like(x), factor)
    if name == "Sharpness":
        return sharpness(x, factor)
    theta = _theta(n)
    if name == "Rotate":
        a = sign * math.radians(30 * m)
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = a.cos(), -a.sin(), a.sin(), a.cos()
    elif name == "ShearX":
        theta[:, 0, 1] = sign * 0.3 * m
    elif name == "ShearY":
        theta[:, 1, 0] = sign * 0.3 * m
    elif name == "TranslateX":
        theta[:, 0, 2] = sign * 2 * 0.45 * m  # [-1, 1] coordinates: a full side is 2
    elif name == "TranslateY":
        theta[:, 1, 2] = sign * 2 * 0.45 * m
    else:
        raise ValueError(f"unknown RandAugment op {name!r}")
    return affine(x, theta)


class RandAugment:
    """``randaugment(N, M)``: N ops drawn per image from the 14, all at magnitude M (0..30)."""

    def __init__(self, n: int = 2, m: float = 9, ops: tuple[str, ...] = OPS) -> None:
        if n < 0 or not 0 <= m <= 30:
            raise ValueError(f"RandAugment needs N >= 0 and 0 <= M <= 30, got N={n}, M={m}")
        self.n, self.m, self.ops = n, m, ops

    def __call__(self, x: torch.Tensor, y: torch.Tensor, g: torch.Generator):
        x = x.clone()
        for _ in range(self.n):
            choice = torch.randint(0, len(self.ops), (x.shape[0],), generator=g)
            sign = torch.where(torch.rand(x.shape[0], generator=g) < 0.5, -1.0, 1.0)
            for k in choice.unique().tolist():
                idx = (choice == k).nonzero().squeeze(1)
                x[idx] = apply_op(self.ops[k], x[idx], self.m / 30, sign[idx])
        return x.clamp(0.0, 1.0), y

    def __repr__(self) -> str:
        return f"RandAugment(N={self.n}, M={self.m})"
