"""Data splits: fixed, stratified, disjoint; normalisation from the training split only."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from archstat.errors import ArchstatError
from archstat.train.data import channel_stats, digits_splits, folder_splits, load_splits


@pytest.fixture(scope="module")
def digits():
    return digits_splits((1, 16, 16), seed=0)


def test_digits_split_sizes_disjoint_and_fixed(digits):
    tr, va, te = digits.indices
    assert (len(tr), len(va), len(te)) == (1077, 360, 360)
    assert len(set(tr) | set(va) | set(te)) == 1797  # disjoint and covering
    again = digits_splits((1, 16, 16), seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(digits.indices, again.indices))
    other = digits_splits((1, 16, 16), seed=1)
    assert np.array_equal(digits.indices[2], other.indices[2])  # --seed never moves the test split
    assert not np.array_equal(digits.indices[1], other.indices[1])  # it reshuffles train/validation
    assert set(other.indices[0]) | set(other.indices[1]) == set(tr) | set(va)


def test_digits_stratified(digits):
    for ds in (digits.train, digits.val, digits.test):
        counts = torch.bincount(ds.tensors[1], minlength=10).float()
        share = counts / counts.sum()
        assert float((share - 0.1).abs().max()) < 0.012  # digits classes are ~10% each


def test_normalisation_uses_train_split_only(digits):
    xtr = digits.train.tensors[0]
    assert abs(float(xtr.mean())) < 1e-5 and abs(float(xtr.std(unbiased=False)) - 1) < 1e-4
    # the stored statistics are those of the raw training pixels and of nothing else
    raw_train = digits.denormalise(xtr)
    mean, std = channel_stats(raw_train)
    assert torch.allclose(mean, digits.mean, atol=1e-6) and torch.allclose(std, digits.std, atol=1e-6)
    raw_all = torch.cat([raw_train, digits.denormalise(digits.val.tensors[0]), digits.denormalise(digits.test.tensors[0])])
    assert not torch.allclose(channel_stats(raw_all)[0], digits.mean, atol=1e-5)
    assert digits.train.tensors[0].dtype == torch.float32 and digits.train.tensors[1].dtype == torch.int64


def test_shapes_channels_and_pad():
    s3 = digits_splits((3, 20, 24))
    x = s3.test.tensors[0]
    assert x.shape[1:] == (3, 20, 24) and torch.equal(x[:, 0], x[:, 2])
    padded = digits_splits((1, 12, 12), mode="pad")
    raw = padded.denormalise(padded.train.tensors[0])
    assert torch.allclose(raw[:, :, :2], torch.zeros(1), atol=1e-6)  # 2-pixel zero border around 8x8


def test_classes_filter_and_relabel(digits):
    hi = digits_splits((1, 16, 16), classes=[5, 6, 7, 8, 9])
    assert hi.num_classes == 5 and hi.class_names == ["5", "6", "7", "8", "9"]
    assert set(hi.test.tensors[1].tolist()) == {0, 1, 2, 3, 4}
    assert set(hi.indices[2]) <= set(digits.indices[2])  # same fixed test split, filtered
    small = digits_splits((1, 16, 16), classes=[5, 6, 7, 8, 9], train_per_class=7)
    assert torch.bincount(small.train.tensors[1]).tolist() == [7] * 5
    with pytest.raises(ArchstatError):
        digits_splits(classes=[3, 11])


def _write_folder(root, classes=("cat", "dog"), n=6, size=(10, 14)):
    rng = np.random.default_rng(0)
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(n):
            arr = (rng.random((*size, 3)) * 100 + 120 * k).astype(np.uint8)
            Image.fromarray(arr).save(root / name / f"{i}.png")


def test_image_folder(tmp_path):
    _write_folder(tmp_path)
    s = folder_splits(tmp_path, (3, 8, 8))
    assert s.class_names == ["cat", "dog"] and s.num_classes == 2
    assert len(s.train) + len(s.val) + len(s.test) == 12 and s.train.tensors[0].shape[1:] == (3, 8, 8)
    assert abs(float(s.train.tensors[0].mean())) < 1e-5
    grey = load_splits(str(tmp_path), (1, 8, 8))
    assert grey.train.tensors[0].shape[1] == 1


def test_image_folder_with_given_splits(tmp_path):
    for split, n in (("train", 5), ("val", 2), ("test", 3)):
        _write_folder(tmp_path / split, n=n)
    s = folder_splits(tmp_path, (3, 8, 8))
    assert (len(s.train), len(s.val), len(s.test)) == (10, 4, 6)


def test_bad_folders(tmp_path):
    with pytest.raises(ArchstatError, match="does not exist"):
        folder_splits(tmp_path / "missing")
    (tmp_path / "only").mkdir()
    with pytest.raises(ArchstatError, match="two class"):
        folder_splits(tmp_path)
