"""Datasets that need no download: scikit-learn's digits, or any ImageFolder-style directory.

Both return :class:`Splits`: three datasets of float32 ``C x H x W`` images and int64 labels,
normalised per channel with statistics of the *training* split only, as the lecture does:

    x'[n, c, i, j] = (x[n, c, i, j] - mean_c) / std_c,
    mean_c = mean over (n in train, i, j) of x[n, c, i, j],  std_c likewise (population std).

Using the validation/test images for these statistics would leak them into training.  Digits are
small and live in memory (``TensorDataset``); an image folder is decoded lazily, image by image, in
DataLoader workers (:mod:`archstat.train.folder`).  :func:`batch_stream` reads batches from either.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from archstat.errors import ArchstatError

TEST_SPLIT_SEED = 0  # the test split never depends on --seed


@dataclass
class Splits:
    """Train / validation / test sets with the normalisation they share."""

    train: Dataset  # TensorDataset (digits) or folder.ImageFiles (decoded on access)
    val: Dataset
    test: Dataset
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


def stratified_indices(labels: np.ndarray, seed: int, val: float, test: float) -> tuple[np.ndarray, ...]:
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


def select_classes(labels: np.ndarray, parts: Sequence[np.ndarray], class_names: list[str],
                   classes: Sequence[int] | None, train_per_class: int | None,
                   seed: int) -> tuple[np.ndarray, tuple[np.ndarray, ...], list[str]]:
    """Keep ``classes`` (relabelled 0..k-1 in the given order) and at most ``train_per_class`` training rows each.

    Returns the relabelled labels, the (train, val, test) rows left and the class names kept.
    """
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
    return labels, (train_idx, *parts[1:]), list(names)


def make_splits(images: torch.Tensor, labels: np.ndarray, parts: Sequence[np.ndarray],
                 shape: tuple[int, int, int], mode: str, class_names: list[str],
                 classes: Sequence[int] | None, train_per_class: int | None, seed: int) -> Splits:
    """In-memory splits: select classes, fit the shape, normalise by the training split's statistics."""
    labels, parts, names = select_classes(labels, parts, class_names, classes, train_per_class, seed)
    xs = [_fit(images[torch.as_tensor(p)], shape, mode) for p in parts]
    mean, std = channel_stats(xs[0])
    sets = [TensorDataset((x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1), torch.as_tensor(labels[p]))
            for x, p in zip(xs, parts)]
    return Splits(sets[0], sets[1], sets[2], len(names), mean, std, tuple(shape), names, tuple(parts))


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
    parts = stratified_indices(labels, seed, val_fraction, test_fraction)
    return make_splits(images, labels, parts, shape, mode, [str(d) for d in range(10)],
                        classes, train_per_class, seed)


def sequential_batches(n: int, batch: int) -> list[list[int]]:
    """``[[0 .. batch-1], [batch .. 2 batch-1], ...]``: every index once, in order."""
    return [list(range(i, min(i + batch, n))) for i in range(0, n, batch)]


def batch_stream(ds: Dataset, batches: Sequence[Sequence[int]],
                 workers: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(x, y)`` for each index list in ``batches``, in order.

    A ``TensorDataset`` is indexed directly; any other dataset (an image folder) goes through a
    DataLoader whose ``workers`` processes (default: the dataset's own ``workers``) decode the
    images while the caller computes.  A decoding error raised in a worker stays one line.
    """
    if isinstance(ds, TensorDataset):
        for idx in batches:
            idx = torch.as_tensor(idx, dtype=torch.long)
            yield ds.tensors[0][idx], ds.tensors[1][idx]
        return
    workers = getattr(ds, "workers", 0) if workers is None else workers
    dl = DataLoader(ds, batch_sampler=[list(b) for b in batches], num_workers=workers)
    try:
        yield from dl
    except ArchstatError as exc:  # a worker's error arrives wrapped with its traceback
        text = str(exc).strip().splitlines()
        raise ArchstatError(text[-1].split("ArchstatError: ", 1)[-1] if text else "a data worker failed") from None


def load_splits(data: str, input_shape: tuple[int, int, int], seed: int = 0,
                classes: Sequence[int] | None = None, *, workers: int = 0, **kwargs) -> Splits:
    """``"digits"`` (in memory; ``workers`` unused) or a directory path (decoded lazily by ``workers``
    DataLoader processes) -> Splits (what ``--data`` accepts)."""
    if data == "digits":
        return digits_splits(input_shape, seed, classes, **kwargs)
    from archstat.train.folder import folder_splits  # folder builds on this module

    return folder_splits(data, input_shape, seed, classes, workers=workers, **kwargs)
