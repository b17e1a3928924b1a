"""ImageFolder-style directories, decoded lazily: one image per access, in DataLoader workers.

``root/<class>/<image>`` (class = sorted sub-folder name), or ``root/train|val|test/<class>/<image>``
with the splits given.  Nothing is decoded up front: :class:`ImageFiles` holds the file list and
decodes, resizes and normalises an image when it is indexed, so a folder of any size trains in the
memory of a few batches, and ``workers`` processes decode while the model trains
(:func:`archstat.train.data.batch_stream`).

The normalisation uses the training split's per-channel statistics (never val/test images),
streamed over at most ``STATS_SAMPLE`` training images (a fixed random subset when there are more):

    mean_c = S1_c / M,   std_c = sqrt(S2_c / M - mean_c^2),
    S1_c = sum of x[n, c, i, j],  S2_c = sum of x[n, c, i, j]^2  over the sampled n and all i, j,

with M the number of values summed; sums are kept in float64, one batch in memory at a time.  With
every training image in the sample these are exactly the in-memory :func:`~archstat.train.data.channel_stats`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from archstat.errors import ArchstatError
from archstat.progress import bar
from archstat.train.data import Splits, batch_stream, select_classes, sequential_batches, stratified_indices

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
STATS_SAMPLE = 5000  # training images the channel statistics are streamed over, at most
STATS_SEED = 0  # which ones, when the training split is larger (fixed: the statistics do not move with --seed)


def decode(path: Path, shape: tuple[int, int, int]) -> torch.Tensor:
    """One image file -> ``C x H x W`` float32 in [0, 1]: PIL grey or RGB, bilinear resize to H x W."""
    from PIL import Image

    c, h, w = shape
    try:
        with Image.open(path) as im:
            im = im.convert("RGB" if c == 3 else "L").resize((w, h), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except OSError as exc:
        raise ArchstatError(f"cannot read image {path}: {exc}") from None
    return torch.from_numpy(arr.reshape(h, w, -1)).permute(2, 0, 1).contiguous()


class ImageFiles(Dataset):
    """Images decoded on access: ``ds[i] = ((decode(files[i]) - mean) / std, labels[i])``.

    ``workers`` is how many DataLoader processes decode this split's batches (0: in this process).
    ``tensors`` decodes the whole split at once, for the tools that need all of it together
    (test-time augmentation, ensembles, the sanity checks); training and evaluation stream.
    """

    def __init__(self, files: Sequence[Path], labels: np.ndarray, shape: tuple[int, int, int],
                 mean: torch.Tensor | None = None, std: torch.Tensor | None = None, workers: int = 0) -> None:
        self.files = list(files)
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        self.shape = tuple(shape)
        c = self.shape[0]
        self.mean = torch.zeros(c) if mean is None else mean
        self.std = torch.ones(c) if std is None else std
        self.workers = workers

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = decode(self.files[i], self.shape)
        return (x - self.mean.view(-1, 1, 1)) / self.std.view(-1, 1, 1), self.labels[i]

    @property
    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole split in memory, ``(N x C x H x W, N)``, decoded by the workers in order."""
        xs, ys = [], []
        for x, y in batch_stream(self, sequential_batches(len(self), 256)):
            xs.append(x)
            ys.append(y)
        if not xs:
            return torch.empty(0, *self.shape), torch.empty(0, dtype=torch.int64)
        return torch.cat(xs), torch.cat(ys)


def streamed_stats(ds: ImageFiles, sample: int = STATS_SAMPLE, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and population std of ``ds``'s raw pixels over at most ``sample`` images (module doc)."""
    if len(ds) == 0:
        raise ArchstatError("the training split has no images to compute the normalisation from")
    idx = np.arange(len(ds))
    if len(idx) > sample:
        idx = np.sort(np.random.default_rng(STATS_SEED).choice(idx, sample, replace=False))
    raw = ImageFiles([ds.files[i] for i in idx], ds.labels[idx].numpy(), ds.shape, workers=ds.workers)
    c = ds.shape[0]
    s1, s2, count = torch.zeros(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64), 0
    batches = sequential_batches(len(raw), batch)
    for x, _ in bar(batch_stream(raw, batches), "training-split channel statistics", total=len(batches)):
        # pixels lie in [0, 1], so float64 sums of x and x^2 lose nothing that matters to E[x^2] - E[x]^2
        flat = x.transpose(0, 1).reshape(c, -1).double()
        s1, s2, count = s1 + flat.sum(1), s2 + (flat * flat).sum(1), count + flat.shape[1]
    mean = s1 / count
    std = (s2 / count - mean * mean).clamp_min(0).sqrt().clamp_min(1e-8)  # a constant channel must not divide by 0
    return mean.float(), std.float()


def scan(root: Path) -> tuple[list[Path], list[int], list[str]]:
    """Image files under ``root/<class>/`` (recursively, sorted) with their class indices and the class names."""
    names = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files, labels = [], []
    for k, name in enumerate(names):
        for f in sorted((root / name).rglob("*")):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                files.append(f)
                labels.append(k)
    return files, labels, names


def _given_splits(root: Path) -> tuple[list[Path], list[int], list[str], tuple[np.ndarray, ...]]:
    """``root/train`` plus ``root/val`` and ``root/test``, as one file list and three index ranges."""
    files, labels, names = scan(root / "train")
    sizes = [len(files)]
    for split in ("val", "test"):
        if (root / split).is_dir():
            f2, l2, n2 = scan(root / split)
            if n2 != names:
                raise ArchstatError(f"{root / split} has classes {n2}, train has {names}")
            files, labels = files + f2, labels + l2
            sizes.append(len(f2))
        else:
            sizes.append(0)
    if sizes[1] == 0 or sizes[2] == 0:
        raise ArchstatError(f"{root} has train/ but lacks a non-empty val/ or test/ folder")
    bounds = np.cumsum([0, *sizes])
    return files, labels, names, tuple(np.arange(bounds[i], bounds[i + 1]) for i in range(3))


def folder_splits(path: str | Path, input_shape: tuple[int, int, int] = (3, 32, 32), seed: int = 0,
                  classes: Sequence[int] | None = None, *, val_fraction: float = 0.2,
                  test_fraction: float = 0.2, train_per_class: int | None = None, workers: int = 0) -> Splits:
    """An ImageFolder-style directory as lazily decoded train/val/test splits (module doc).

    If ``root`` has ``train/`` (and ``val/``, ``test/``) sub-folders with the same class folders, those
    splits are used as given; otherwise one stratified split is drawn (test split fixed, ``seed``
    redraws train/val).  ``workers`` DataLoader processes decode the batches (0: this process).
    """
    root = Path(path)
    if root.is_file():
        raise ArchstatError(f"--data {str(path)!r} is a file; give digits or an ImageFolder directory "
                            "(root/<class>/<image>)")
    if not root.is_dir():
        raise ArchstatError(f"data folder {str(path)!r} does not exist (expected digits or an ImageFolder directory)")
    if workers < 0:
        raise ArchstatError(f"--workers must be >= 0, got {workers}")
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise ArchstatError(f"image folders need a 1xHxW or 3xHxW input, got {'x'.join(map(str, shape))}")
    if (root / "train").is_dir():
        files, labels, names, parts = _given_splits(root)
    else:
        files, labels, names = scan(root)
        parts = None
    if len(names) < 2 or not files:
        raise ArchstatError(f"{root} needs at least two class sub-folders with images in them")
    label_arr = np.asarray(labels, dtype=np.int64)
    if parts is None:
        if np.bincount(label_arr, minlength=len(names)).min() < 3:
            raise ArchstatError(f"{root}: every class needs at least 3 images for a train/val/test split")
        parts = stratified_indices(label_arr, seed, val_fraction, test_fraction)
    label_arr, parts, names = select_classes(label_arr, parts, names, classes, train_per_class, seed)
    sets = [ImageFiles([files[i] for i in p], label_arr[p], shape, workers=workers) for p in parts]
    mean, std = streamed_stats(sets[0])
    for s in sets:
        s.mean, s.std = mean, std
    return Splits(sets[0], sets[1], sets[2], len(names), mean, std, shape, list(names), tuple(parts))

