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
    none = random_similarity(3, g, rotate_deg=0, scale=0, shift=0)
    assert torch.equal(none, torch.tensor([[1.0, 0, 0], [0, 1, 0]]).expand(3, 2, 3))


def test_deform_fills_with_the_raw_background(source, monkeypatch):
    x = source.train.tensors[0][:4]
    monkeypatch.setattr("archstat.train.exemplar.random_similarity",
                        lambda n, g: torch.tensor([[1.0, 0, 0], [0, 1, 0]]).expand(n, 2, 3).clone())
    assert torch.allclose(deform(x, source, torch.Generator()), x, atol=1e-5)  # identity map: unchanged
    monkeypatch.setattr("archstat.train.exemplar.random_similarity",  # half a width to the right: zero fill
                        lambda n, g: torch.tensor([[1.0, 0, -1.0], [0, 1, 0]]).expand(n, 2, 3).clone())
    moved = source.denormalise(deform(x, source, torch.Generator()))
    assert torch.allclose(moved[..., :6], torch.zeros(()), atol=1e-6)
    assert torch.allclose(moved[..., 6:], source.denormalise(x)[..., :6], atol=1e-5)


def test_exemplar_pretrain_learns_the_images_and_keeps_the_source_classifier(source):
    torch.set_num_threads(1)
    run = exemplar_pretrain(TINY, source, lr=0.05, batch=64, weight_decay=5e-4, seed=0, steps=300, quiet=True)
    n = len(source.train)
    assert run.summary["exemplars"] == n and run.summary["steps"] == 300
    assert run.summary["exemplar_train_acc"] > 20 / n  # chance is 1/n
    assert run.summary["source_val_acc"] > 0.5  # the labels' loss trains the kept 5-way classifier
    head = run.model.get_submodule(classifier_name(run.model))
    assert head.out_features == 5 and not head._forward_pre_hooks and not run.model.training
    again = exemplar_pretrain(TINY, source, lr=0.05, batch=64, weight_decay=5e-4, seed=0, steps=5, quiet=True)
    same = exemplar_pretrain(TINY, source, lr=0.05, batch=64, weight_decay=5e-4, seed=0, steps=5, quiet=True)
    assert all(torch.equal(a, b) for a, b in zip(again.model.state_dict().values(), same.model.state_dict().values()))


def test_source_weight_zero_leaves_the_source_classifier_untrained(source):
    # lambda = 0: only the exemplar loss trains, and the 5-way classifier is not part of it
    run = exemplar_pretrain(TINY, source, lr=0.05, batch=64, weight_decay=0.0, seed=0, steps=3, source_weight=0.0,
                            quiet=True)
    init = exemplar_pretrain(TINY, source, lr=0.05, batch=64, weight_decay=0.0, seed=0, steps=1, source_weight=0.0,
                             quiet=True)
    name = classifier_name(run.model)
    assert isinstance(run.model.get_submodule(name), nn.Linear)
    assert torch.equal(run.model.get_submodule(name).weight, init.model.get_submodule(name).weight)


def test_the_frozen_probe_reads_the_exemplar_network_unless_steps_is_zero(source, monkeypatch):
    from archstat.train.loop import Run, TrainConfig
    from archstat.train.transfer import frozen_source

    classic = nn.Linear(2, 2)
    pre = Run(model=classic, ema_model=None, splits=source, summary={})
    base = TrainConfig(model=TINY, lr=0.07, batch=16, weight_decay=1e-3, seed=4, quiet=True)
    lines: list[str] = []
    assert frozen_source(base, pre, 0, lines.append) is classic and not lines
    net = frozen_source(base, pre, 7, lines.append)
    assert net is not classic and net.get_submodule(classifier_name(net)).out_features == 5
    assert len(lines) == 1 and "exemplar pre-training, 7 steps" in lines[0]
