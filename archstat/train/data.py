"""Datasets that need no download: scikit-learn's digits, or any ImageFolder-style directory.

Both return :class:`Splits`: three ``TensorDataset``s of float32 ``N x C x H x W`` images and int64
labels, normalised per channel with statistics of the *training* split only, as the lecture does:

    x'[n, c, i, j] = (x[n, c, i, j] - mean_c) / std_c,
    mean_c = mean over (n in train, i, j) of x[n, c, i, j],  std_c likewise (population std).

Using the validation/test images for these statistics would leak them into training.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from archstat.errors import ArchstatError

TEST_SPLIT_SEED = 0  # the test split never depends on --seed
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


@dataclass
class Splits:
    """Train / validation / test sets with the normalisation they share."""

    train: TensorDataset
    val: TensorDataset
    test: TensorDataset
    num_classes: int
    mean: torch.Tensor  # (C,), of the raw [0, 1] training pixels
    std: torch.Tensor  # (C,)
    input_shape: tuple[int, int, int]
    class_names: list[str] = field(default_factory=list)
    # row indices of each split into the source (load_digits order, or the sorted file list)
    indices: tuple[np.ndarray, ...] = ()

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        """Back to raw [0, 1] pixel values (what colour/geometry ops reason about)."""
        return x * self.std.view(1, -1, 1, 1) + self.mean.view(1, -1, 1, 1)


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (population) std over N, H, W of an ``N x C x H x W`` tensor."""
    flat = x.transpose(0, 1).reshape(x.shape[1], -1).double()
    mean = flat.mean(dim=1)
    std = flat.std(dim=1, unbiased=False).clamp_min(1e-8)  # a constant channel must not divide by 0
    return mean.float(), std.float()


def _fit(x: torch.Tensor, shape: tuple[int, int, int], mode: str) -> torch.Tensor:
    """``N x C0 x h x w`` in [0, 1] -> ``N x C x H x W``: resize (bilinear) or zero-pad, then repeat channels."""
    c, h, w = shape
    if mode == "pad":
        if h < x.shape[2] or w < x.shape[3]:
            raise ArchstatError(f"cannot pad {x.shape[2]}x{x.shape[3]} images to the smaller {h}x{w}")
        top, left = (h - x.shape[2]) // 2, (w - x.shape[3]) // 2
        x = F.pad(x, (left, w - x.shape[3] - left, top, h - x.shape[2] - top))
    elif mode == "resize":
        if (x.shape[2], x.shape[3]) != (h, w):
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False).clamp_(0.0, 1.0)
    else:
        raise ArchstatError(f"unknown fit mode {mode!r}; use resize or pad")
    if x.shape[1] != c:
        if x.shape[1] != 1:
            raise ArchstatError(f"images have {x.shape[1]} channels; the model wants {c}")
        x = x.repeat(1, c, 1, 1)  # grey -> C identical channels
    return x.contiguous()


def _stratified_indices(labels: np.ndarray, seed: int, val: float, test: float) -> tuple[np.ndarray, ...]:
    """Stratified (train, val, test) index split; every class keeps its proportion.

    The test split is drawn with its own fixed seed (``TEST_SPLIT_SEED``), so ``--seed`` reshuffles
    train/validation only and every run, search trial and benchmark is scored on the same test images.
    """
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    rest, test_idx = train_test_split(idx, test_size=test, stratify=labels, random_state=TEST_SPLIT_SEED)
    train_idx, val_idx = train_test_split(
        rest, test_size=val / (1.0 - test), stratify=labels[rest], random_state=seed + 1)
    return np.sort(train_idx), np.sort(val_idx), np.sort(test_idx)


def make_splits(images: torch.Tensor, labels: np.ndarray, parts: Sequence[np.ndarray],
                 shape: tuple[int, int, int], mode: str, class_names: list[str],
                 classes: Sequence[int] | None, train_per_class: int | None, seed: int) -> Splits:
    """Select classes (relabelled 0..k-1 in the given order), fit the shape, normalise by train stats."""
    names = class_names
    if classes is not None:
        classes = list(classes)
        bad = [c for c in classes if not 0 <= c < len(class_names)]
        if bad or len(set(classes)) != len(classes) or not classes:
            raise ArchstatError(f"classes {classes} must be distinct labels in 0..{len(class_names) - 1}")
        remap = np.full(len(class_names), -1, dtype=np.int64)
        remap[classes] = np.arange(len(classes))
        names = [class_names[c] for c in classes]
        parts = [p[remap[labels[p]] >= 0] for p in parts]
        labels = remap[labels].clip(min=0)  # rows of other classes are never indexed again
    train_idx = parts[0]
    if train_per_class is not None:  # a small labelled set (transfer learning's setting)
        rng = np.random.default_rng(seed)
        keep = [rng.permutation(train_idx[labels[train_idx] == k])[:train_per_class] for k in range(len(names))]
        train_idx = np.sort(np.concatenate(keep))
    parts = [train_idx, *parts[1:]]
    xs = [_fit(images[torch.as_tensor(p)], shape, mode) for p in parts]
    mean, std = channel_stats(xs[0])
    sets = [TensorDataset((x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1), torch.as_tensor(labels[p]))
            for x, p in zip(xs, parts)]
    return Splits(sets[0], sets[1], sets[2], len(names), mean, std, tuple(shape), list(names), tuple(parts))


def digits_splits(input_shape: tuple[int, int, int] = (1, 32, 32), seed: int = 0,
                  classes: Sequence[int] | None = None, *, mode: str = "resize",
                  val_fraction: float = 0.2, test_fraction: float = 0.2,
                  train_per_class: int | None = None) -> Splits:
    """scikit-learn's digits (1,797 8x8 grey images, 10 classes) as a fixed 60/20/20 stratified split.

    The split is made on all ten classes first and ``classes`` filters it afterwards, so the test
    images of digits 5-9 are the same whether or not 0-4 are loaded.  Pixel values 0..16 become
    [0, 1]; images are upsampled bilinearly (``mode="resize"``) or zero-padded (``"pad"``) to
    ``input_shape`` and the grey channel is repeated when C > 1.
    """
    from sklearn.datasets import load_digits

    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3:
        raise ArchstatError(f"digits need a CxHxW input shape, got {'x'.join(map(str, shape))}")
    digits = load_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = np.asarray(digits.target, dtype=np.int64)
    parts = _stratified_indices(labels, seed, val_fraction, test_fraction)
    return make_splits(images, labels, parts, shape, mode, [str(d) for d in range(10)],
                        classes, train_per_class, seed)


def _scan(root: Path) -> tuple[list[Path], list[int], list[str]]:
    names = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files, labels = [], []
    for k, name in enumerate(names):
        for f in sorted((root / name).rglob("*")):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                files.append(f)
                labels.append(k)
    return files, labels, names


def _read_images(files: Sequence[Path], channels: int, size: tuple[int, int]) -> torch.Tensor:
    """Decode with PIL to grey or RGB, resize bilinearly to ``size`` and scale to [0, 1]."""
    from PIL import Image

    out = np.empty((len(files), size[0], size[1], 3 if channels == 3 else 1), dtype=np.float32)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as im:
                im = im.convert("RGB" if channels == 3 else "L").resize((size[1], size[0]), Image.BILINEAR)
                arr = np.asarray(im, dtype=np.float32) / 255.0
        except OSError as exc:
            raise ArchstatError(f"cannot read image {f}: {exc}") from None
        out[i] = arr.reshape(size[0], size[1], -1)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def folder_splits(path: str | Path, input_shape: tuple[int, int, int] = (3, 32, 32), seed: int = 0,
                  classes: Sequence[int] | None = None, *, val_fraction: float = 0.2,
                  test_fraction: float = 0.2, train_per_class: int | None = None) -> Splits:
    """An ImageFolder-style directory: ``root/<class>/<image>`` (class = sorted sub-folder name).

    If ``root`` has ``train/`` (and optionally ``val/``, ``test/``) sub-folders with the same class
    folders, those splits are used as given; otherwise one stratified split is drawn by ``seed``.
    """
    root = Path(path)
    if root.is_file():
        raise ArchstatError(f"--data {str(path)!r} is a file; give digits or an ImageFolder directory "
                            "(root/<class>/<image>)")
    if not root.is_dir():
        raise ArchstatError(f"data folder {str(path)!r} does not exist (expected digits or an ImageFolder directory)")
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise ArchstatError(f"image folders need a 1xHxW or 3xHxW input, got {'x'.join(map(str, shape))}")
    if (root / "train").is_dir():
        files, labels, names = _scan(root / "train")
        sizes = [len(files)]
        for split in ("val", "test"):
            if (root / split).is_dir():
                f2, l2, n2 = _scan(root / split)
                if n2 != names:
                    raise ArchstatError(f"{root / split} has classes {n2}, train has {names}")
                files, labels = files + f2, labels + l2
                sizes.append(len(f2))
            else:
                sizes.append(0)
        if sizes[1] == 0 or sizes[2] == 0:
            raise ArchstatError(f"{root} has train/ but lacks a non-empty val/ or test/ folder")
        bounds = np.cumsum([0, *sizes])
        parts = tuple(np.arange(bounds[i], bounds[i + 1]) for i in range(3))
    else:
        files, labels, names = _scan(root)
        parts = None
    if len(names) < 2 or not files:
        raise ArchstatError(f"{root} needs at least two class sub-folders with images in them")
    label_arr = np.asarray(labels, dtype=np.int64)
    if parts is None:
        if np.bincount(label_arr).min() < 3:
            raise ArchstatError(f"{root}: every class needs at least 3 images for a train/val/test split")
        parts = _stratified_indices(label_arr, seed, val_fraction, test_fraction)
    images = _read_images(files, shape[0], shape[1:])
    return make_splits(images, label_arr, parts, shape, "resize", names, classes, train_per_class, seed)


def load_splits(data: str, input_shape: tuple[int, int, int], seed: int = 0,
                classes: Sequence[int] | None = None, **kwargs) -> Splits:
    """``"digits"`` or a directory path -> Splits (what ``--data`` accepts)."""
    if data == "digits":
        return digits_splits(input_shape, seed, classes, **kwargs)
    return folder_splits(data, input_shape, seed, classes, **kwargs)
