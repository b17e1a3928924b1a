"""Augmentation invariants: shapes kept, labels mixed with the right weights, seeded runs reproducible."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from archstat.train.augment import (Augmenter, ColorJitter, Compose, CutMix, Cutout, HFlip, Mixup, OneOf, PCALighting,
                                    RandomCrop, RandomResizedCrop, ScaleJitter, parse_augment)
from archstat.train.randaugment import OPS, RandAugment, apply_op, equalize, posterize

K = 10


def batch(n=16, c=3, h=12, w=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, h, w, generator=g), torch.randint(0, K, (n,), generator=g)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


ALL = [HFlip(), RandomCrop(2), RandomResizedCrop(), ScaleJitter(), ColorJitter(), Cutout(4),
       RandAugment(2, 9), Mixup(K, 0.4), CutMix(K, 1.0)]


@pytest.mark.parametrize("t", ALL, ids=lambda t: type(t).__name__)
@pytest.mark.parametrize("c", [1, 3])
def test_shape_range_and_reproducible(t, c):
    x, y = batch(c=c)
    a = t(x.clone(), y.clone(), gen(1))
    b = t(x.clone(), y.clone(), gen(1))
    other = t(x.clone(), y.clone(), gen(2))
    assert a[0].shape == x.shape and a[0].dtype == torch.float32
    assert a[0].min() >= 0 and a[0].max() <= 1
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])  # same seed, same batch
    assert not torch.equal(a[0], other[0])  # another seed, another batch
    if a[1].dtype.is_floating_point:
        assert a[1].shape == (len(x), K) and torch.allclose(a[1].sum(1), torch.ones(len(x)))
    else:
        assert torch.equal(a[1], y)  # label-preserving ops keep labels


def test_hflip_all_and_none():
    x, y = batch()
    assert torch.equal(HFlip(1.0)(x, y, gen())[0], x.flip(3))
    assert torch.equal(HFlip(0.0)(x, y, gen())[0], x)


def test_random_crop_is_an_exact_integer_shift():
    x, y = batch(n=32, c=1, h=8, w=8)
    out = RandomCrop(2)(x, y, gen(3))[0]
    for i in range(len(x)):
        found = False
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                shifted = torch.zeros_like(x[i])
                ys, xs = slice(max(0, -dy), 8 - max(0, dy)), slice(max(0, -dx), 8 - max(0, dx))
                yd, xd = slice(max(0, dy), 8 - max(0, -dy)), slice(max(0, dx), 8 - max(0, -dx))
                # output pixel (r, c) samples input (r + dy, c + dx)
                shifted[:, ys, xs] = x[i][:, yd, xd]
                found |= torch.allclose(out[i], shifted, atol=1e-6)
        assert found, f"sample {i} is not a whole-pixel shift"


def test_mixup_label_weights_match_pixel_weights():
    n = 8
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 4, 4) / n  # image i is constant i/n
    y = torch.arange(n)
    xm, ym = Mixup(K, 0.4)(x.clone(), y, gen(5))
    for i in range(n):
        nz = torch.nonzero(ym[i]).squeeze(1).tolist()
        if len(nz) == 1:  # permuted onto itself: nothing mixed
            assert torch.allclose(xm[i], x[i])
            continue
        a, b = nz
        # pixel value = w_a * a/n + w_b * b/n with the label weights
        assert torch.allclose(xm[i], (ym[i, a] * a + ym[i, b] * b) / n * torch.ones_like(xm[i]), atol=1e-6)
    lam = ym.max(1).values.min()
    assert 0 <= lam <= 1


def test_cutmix_label_weight_is_pixel_fraction():
    n, h, w = 8, 16, 16
    x = torch.zeros(n, 1, h, w)
    for i in range(n):
        x[i] = i + 1  # image i is constant i + 1
    y = torch.arange(n)
    for seed in range(6):
        xm, ym = CutMix(K, 1.0)(x.clone(), y, gen(seed))
        for i in range(n):
            own = float((xm[i] == i + 1).float().mean())
            assert abs(float(ym[i, i]) - own) < 1e-6  # label weight = fraction of own pixels
            assert torch.allclose(ym[i].sum(), torch.tensor(1.0))


def test_cutout_zeroes_at_most_one_square():
    x = torch.ones(16, 3, 12, 12)
    out = Cutout(4)(x, torch.zeros(16, dtype=torch.long), gen(0))[0]
    zeros = (out[:, 0] == 0).sum(dim=(1, 2))
    assert zeros.max() <= 16 and zeros.min() >= 4  # a 4x4 square, clipped at most to a 2x2 corner
    assert torch.equal(out[:, 0] == 0, out[:, 2] == 0)  # the same region in every channel


def test_pca_lighting_shifts_along_principal_components():
    g = gen(0)
    base = 0.3 + 0.4 * torch.rand(200, 1, 4, 4, generator=g)
    # colours on one line (one nonzero principal component), far from 0 and 1 so nothing is clamped
    x = torch.cat([base, 0.5 * base + 0.25, 0.2 * base + 0.4], 1)
    t = PCALighting.from_data(x, sigma=0.5)
    out = t(x, torch.zeros(200, dtype=torch.long), gen(1))[0]
    shift = (out - x)[:, :, 0, 0]  # the same offset at every pixel of an image
    top = t.eigvec[:, -1]
    cos = (shift @ top).abs() / shift.norm(dim=1).clamp_min(1e-12)
    assert float(cos[shift.norm(dim=1) > 1e-6].min()) > 0.99


def test_randaugment_ops_keep_shape_and_identity_at_zero_magnitude():
    x, _ = batch()
    assert len(OPS) == 14
    for op in OPS:
        out = apply_op(op, x, 0.5, torch.ones(len(x)))
        assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    for op in ("Identity", "Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY", "Color", "Contrast",
               "Brightness", "Sharpness", "Solarize"):
        assert torch.allclose(apply_op(op, x, 0.0, torch.ones(len(x))), x, atol=1e-5), op


def test_equalize_and_posterize_match_pil():
    rng = np.random.default_rng(0)
    for _ in range(3):
        a = (rng.beta(2, 5, (16, 16)) * 255).astype(np.uint8)
        x = torch.tensor(a, dtype=torch.float32).view(1, 1, 16, 16) / 255
        im = Image.fromarray(a)
        assert np.array_equal((equalize(x) * 255).round().byte().numpy()[0, 0], np.asarray(ImageOps.equalize(im)))
        assert np.array_equal((posterize(x, 5) * 255).round().byte().numpy()[0, 0], np.asarray(ImageOps.posterize(im, 5)))


def test_parse_and_augmenter_roundtrip():
    x, y = batch(c=1)
    mean, std = torch.tensor([0.3]), torch.tensor([0.2])
    pipe = parse_augment("flip,randaug=2:5,mixup,cutmix", K, x)
    assert isinstance(pipe, Compose) and isinstance(pipe.transforms[-1], OneOf)
    a1 = Augmenter(pipe, mean, std, seed=4)((x - 0.3) / 0.2, y)
    a2 = Augmenter(pipe, mean, std, seed=4)((x - 0.3) / 0.2, y)
    assert torch.equal(a1[0], a2[0]) and torch.equal(a1[1], a2[1])
    ident = Augmenter(Compose([]), mean, std)((x - 0.3) / 0.2, y)[0]
    assert torch.allclose(ident, (x - 0.3) / 0.2, atol=1e-6)


def test_bad_augment_spec_is_one_line_error():
    from archstat.errors import ArchstatError

    with pytest.raises(ArchstatError, match="unknown augmentation"):
        parse_augment("flip,warp", K)
    with pytest.raises(ArchstatError, match="malformed"):
        parse_augment("cutout=big", K)
