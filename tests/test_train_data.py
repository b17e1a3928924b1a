"""Data splits: fixed, stratified, disjoint; normalisation from the training split only."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from archstat.errors import ArchstatError
from archstat.train.data import batch_stream, channel_stats, digits_splits, load_splits, sequential_batches
from archstat.train.folder import ImageFiles, decode, folder_splits, streamed_stats


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


# ---------------------------------------------------------------- lazy folders, DataLoader workers

def test_folder_decodes_lazily(tmp_path, monkeypatch):
    """Loading decodes only the training images (for their statistics); an item decodes one file."""
    import archstat.train.folder as folder

    _write_folder(tmp_path, n=10)
    calls = []
    real = folder.decode
    monkeypatch.setattr(folder, "decode", lambda path, shape: calls.append(path) or real(path, shape))
    s = folder_splits(tmp_path, (3, 8, 8))
    assert isinstance(s.train, ImageFiles) and isinstance(s.test, ImageFiles)
    assert sorted(calls) == sorted(s.train.files)  # statistics: train images only, each once
    calls.clear()
    x, y = s.test[0]
    assert calls == [s.test.files[0]] and x.shape == (3, 8, 8) and y.dtype == torch.int64


def test_folder_items_are_normalised_by_train_statistics(tmp_path):
    _write_folder(tmp_path, n=10)
    s = folder_splits(tmp_path, (3, 8, 8))
    raw = torch.stack([decode(f, (3, 8, 8)) for f in s.train.files])
    mean, std = channel_stats(raw)  # the in-memory statistics the streamed sums must reproduce
    assert torch.allclose(s.mean, mean, atol=1e-6) and torch.allclose(s.std, std, atol=1e-6)
    x, y = s.val.tensors
    want = torch.stack([(decode(f, (3, 8, 8)) - mean.view(-1, 1, 1)) / std.view(-1, 1, 1) for f in s.val.files])
    assert torch.allclose(x, want, atol=1e-5) and y.tolist() == s.val.labels.tolist()
    assert set(y.tolist()) == {0, 1}  # stratified: both classes in every split


def test_streamed_stats_use_a_bounded_fixed_sample(tmp_path, monkeypatch):
    import archstat.train.folder as folder

    _write_folder(tmp_path, n=10)
    s = folder_splits(tmp_path, (3, 8, 8))
    calls = []
    real = folder.decode
    monkeypatch.setattr(folder, "decode", lambda path, shape: calls.append(path) or real(path, shape))
    mean, std = streamed_stats(s.train, sample=4)
    assert len(calls) == 4 and len(set(calls)) == 4
    want = channel_stats(torch.stack([real(f, (3, 8, 8)) for f in calls]))
    assert torch.allclose(mean, want[0], atol=1e-6) and torch.allclose(std, want[1], atol=1e-6)
    calls.clear()
    streamed_stats(s.train, sample=4)
    assert len(calls) == 4 and sorted(calls) == sorted(set(calls))  # the same subset every time
    assert not torch.allclose(mean, s.mean)  # a subset really is a different sample than the whole split


def test_workers_yield_the_same_batches(tmp_path):
    _write_folder(tmp_path, n=12)
    s = folder_splits(tmp_path, (3, 8, 8), workers=2)
    batches = [[5, 0, 3], [1, 7], [2, 6, 4]]  # shuffled, uneven: order must be kept exactly
    here = list(batch_stream(s.train, batches, workers=0))
    there = list(batch_stream(s.train, batches))  # the dataset's own 2 workers
    assert len(here) == len(there) == 3
    for (xa, ya), (xb, yb), idx in zip(here, there, batches):
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and len(ya) == len(idx)
        assert torch.equal(xa[0], s.train[idx[0]][0])


def test_in_memory_and_lazy_streams_agree(digits):
    batches = sequential_batches(len(digits.val), 100)
    assert [len(b) for b in batches] == [100, 100, 100, 60]
    x = torch.cat([xb for xb, _ in batch_stream(digits.val, batches)])
    assert torch.equal(x, digits.val.tensors[0])


def test_a_broken_image_in_a_worker_is_one_line(tmp_path):
    _write_folder(tmp_path, n=10)
    s = folder_splits(tmp_path, (3, 8, 8), workers=1)
    s.test.files[1].write_bytes(b"not an image")
    with pytest.raises(ArchstatError) as err:
        list(batch_stream(s.test, [[0, 1]]))
    assert "cannot read image" in str(err.value) and "\n" not in str(err.value)


def test_train_on_a_folder_with_workers(tmp_path):
    """Two decoding workers train exactly as the main process does (same batches, same numbers)."""
    from archstat.train.loop import TrainConfig, train

    _write_folder(tmp_path / "data", n=12)
    runs = [train(TrainConfig(model="archstat.train.tiny:tiny_cnn", data=str(tmp_path / "data"), input_shape=(3, 8, 8),
                              epochs=2, batch=4, quiet=True, save="none", workers=w, threads=1)) for w in (0, 2)]
    a, b = (r.summary for r in runs)
    assert a["train/val/test"] == b["train/val/test"] == [14, 5, 5]
    assert a["test_acc"] == b["test_acc"] and a["final_val_acc"] == b["final_val_acc"]
    for pa, pb in zip(runs[0].model.parameters(), runs[1].model.parameters()):
        assert torch.equal(pa, pb)


def test_workers_flag_refuses_negative(capsys):
    from archstat.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "archstat.train.tiny:tiny_cnn", "--workers", "-1"])
    assert exc.value.code == 2 and "--workers: must be >= 0" in capsys.readouterr().err
