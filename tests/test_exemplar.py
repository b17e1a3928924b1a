"""Exemplar pre-training (the frozen-feature probe's source network): its deformations and its training."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from archstat.train.exemplar import deform, exemplar_pretrain, random_similarity
from archstat.train.probe import classifier_name
from archstat.train.setup import load_data

TINY = "archstat.train.tiny:tiny_cnn"


@pytest.fixture(scope="module")
def source():
    return load_data("digits", (1, 12, 12), TINY, 0, [0, 1, 2, 3, 4], None)


def test_random_similarity_is_a_rotation_scaled_within_its_bounds():
    g = torch.Generator().manual_seed(0)
    theta = random_similarity(500, g, rotate_deg=15, scale=0.12, shift=0.12)
    a = theta[:, :, :2]
    zoom = 1 / torch.linalg.det(a).sqrt()  # det of R / zoom is 1 / zoom^2
    assert torch.allclose(a[:, 0, 0], a[:, 1, 1]) and torch.allclose(a[:, 0, 1], -a[:, 1, 0])
    angle = torch.atan2(a[:, 1, 0], a[:, 0, 0])
    assert angle.abs().max() <= math.radians(15) + 1e-6 and angle.abs().max() > math.radians(12)
    assert (zoom - 1).abs().max() <= 0.12 + 1e-5 and (zoom - 1).abs().max() > 0.1
    assert theta[:, :, 2].abs().max() <= 0.12 and theta[:, :, 2].abs().max() > 0.1
    # on a non-square image the map rotates pixels: A_pix = D A D^-1 (D = diag(W/2, H/2)) has A_pix^T A_pix = I / zoom^2
    wide = random_similarity(50, g, aspect=10 / 20)[:, :, :2]
    d = torch.diag(torch.tensor([20 / 2, 10 / 2]))
    a_pix = d @ wide @ torch.linalg.inv(d)
    gram = a_pix.transpose(1, 2) @ a_pix
    assert torch.allclose(gram, gram[:, :1, :1] * torch.eye(2), atol=1e-6)
    none = random_similarity(3, g, rotate_deg=0, scale=0, shift=0)
    assert torch.equal(none, torch.tensor([[1.0, 0, 0], [0, 1, 0]]).expand(3, 2, 3))


def test_deform_fills_with_the_raw_background(source, monkeypatch):
    x = source.train.tensors[0][:4]
    monkeypatch.setattr("archstat.train.exemplar.random_similarity",
                        lambda n, g, aspect: torch.tensor([[1.0, 0, 0], [0, 1, 0]]).expand(n, 2, 3).clone())
    assert torch.allclose(deform(x, source, torch.Generator()), x, atol=1e-5)  # identity map: unchanged
    monkeypatch.setattr("archstat.train.exemplar.random_similarity",  # half a width to the right: zero fill
                        lambda n, g, aspect: torch.tensor([[1.0, 0, -1.0], [0, 1, 0]]).expand(n, 2, 3).clone())
    moved = source.denormalise(deform(x, source, torch.Generator()))
    assert torch.allclose(moved[..., :6], torch.zeros(()), atol=1e-6)
    assert torch.allclose(moved[..., 6:], source.denormalise(x)[..., :6], atol=1e-5)


def test_exemplar_pretrain_learns_the_images_and_keeps_the_source_classifier(source, monkeypatch):
    torch.set_num_threads(1)
    calls = []
    real = deform
    monkeypatch.setattr("archstat.train.exemplar.deform", lambda x, src, g: (calls.append(len(x)), real(x, src, g))[1])
    run = exemplar_pretrain(TINY, source, lr=0.05, batch=64, weight_decay=5e-4, seed=0, steps=300, quiet=True)
    assert len(calls) == 300 and set(calls) <= {64, len(source.train) % 64}  # every batch deformed
    n = len(source.train)
    assert run.summary["exemplars"] == n and run.summary["steps"] == 300
    assert run.summary["exemplar_train_acc"] > 20 / n  # chance is 1/n
    assert run.summary["source_val_acc"] > 0.5  # the labels' loss trains the kept 5-way classifier
    head = run.model.get_submodule(classifier_name(run.model))
    assert head.out_features == 5 and not head._forward_pre_hooks and not run.model.training
    again = exemplar_pretrain(TINY, source, lr=0.05, batch=64, weight_decay=5e-4, seed=0, steps=20, quiet=True)
    same = exemplar_pretrain(TINY, source, lr=0.05, batch=64, weight_decay=5e-4, seed=0, steps=20, quiet=True)
    assert all(torch.equal(a, b) for a, b in zip(again.model.state_dict().values(), same.model.state_dict().values()))


def test_source_weight_zero_leaves_the_source_classifier_untrained(source):
    # lambda = 0: only the exemplar loss trains, and the 5-way classifier is not part of it
    from archstat.train.setup import build_model

    run = exemplar_pretrain(TINY, source, lr=0.05, batch=64, weight_decay=0.0, seed=0, steps=20, source_weight=0.0,
                            quiet=True)
    init = build_model(TINY, 5, 1, seed=0)  # the same seed: the weights exemplar_pretrain started from
    name = classifier_name(run.model)
    assert isinstance(run.model.get_submodule(name), nn.Linear)
    assert torch.equal(run.model.get_submodule(name).weight, init.get_submodule(name).weight)
    assert not torch.equal(run.model[0].weight, init[0].weight)  # while the features did train


def test_too_few_steps_and_a_classifier_called_twice_are_one_line_errors(source):
    from archstat.errors import ArchstatError

    with pytest.raises(ArchstatError, match="at least 20 steps"):
        exemplar_pretrain(TINY, source, lr=0.05, batch=64, weight_decay=0.0, seed=0, steps=10, quiet=True)
    with pytest.raises(ArchstatError, match="called 2 times"):
        exemplar_pretrain(f"{__name__}:twice_classified", source, lr=0.05, batch=64, weight_decay=0.0, seed=0,
                          steps=20, quiet=True)


class TwiceClassified(nn.Module):
    def __init__(self, num_classes: int = 5, in_channels: int = 1):
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.LazyLinear(8))
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        f = self.features(x)
        return self.fc(f) + self.fc(-f)


def twice_classified(num_classes: int = 5, in_channels: int = 1) -> nn.Module:
    return TwiceClassified(num_classes, in_channels)


def test_the_frozen_probe_reads_the_exemplar_network_unless_steps_is_zero(source, monkeypatch):
    import archstat.train.transfer as T
    from archstat.train.loop import Run, TrainConfig

    classic = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.LazyLinear(5))
    pre = Run(model=classic, ema_model=None, splits=source, summary={})
    base = TrainConfig(model=TINY, lr=0.07, batch=16, weight_decay=1e-3, seed=4, quiet=True)
    lines: list[str] = []
    old = T.frozen_source(base, pre, 0, lines.append)
    assert old.model is classic and (old.stages, old.grid) == (T.CLASSIC_PROBE_STAGES, T.CLASSIC_PROBE_GRID)
    assert not lines
    new = T.frozen_source(base, pre, 20, lines.append)
    assert new.model is not classic and new.model.get_submodule(classifier_name(new.model)).out_features == 5
    assert (new.stages, new.grid) == (T.PROBE_STAGES, T.PROBE_GRID) and new.summary["steps"] == 20
    assert len(lines) == 1 and "exemplar pre-training, 20 steps" in lines[0]
    # measure_cell: the stage probe reads the frozen source's network, stages and grid; the penultimate
    # probe and fine-tuning the classic network
    seen = []
    monkeypatch.setattr(T, "probe", lambda m, view, stages, seed, aug, grid=T.PROBE_GRID, source=None: (
        seen.append((m, stages, grid, source is not None)), {"test_acc": 0.5, "C": 1.0, "cv_acc": 0.5, "features": 1,
                                                             "reads": "", "views": 1})[1])
    monkeypatch.setattr(T, "fine_tune", lambda m, *a: seen.append((m, "fine-tune")) or 0.5)
    tgt = load_data("digits", (1, 12, 12), TINY, 0, [5, 6, 7, 8, 9], 5)
    T.measure_cell(pre, new, tgt, 0.4, base, 0)
    assert seen == [(new.model, T.PROBE_STAGES, T.PROBE_GRID, True), (classic, 0, 1, False), (classic, "fine-tune")]
