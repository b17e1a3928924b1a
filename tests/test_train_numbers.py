"""Training numbers against oracles that share no code with archstat/train (issue 20, item 6).

* EMA: the averaged weights equal the warmed-up average worked out by hand (and, in the training
  loop, the closed form over the weights every optimizer step left behind);
* TTA: the reported probabilities and accuracy equal the mean softmax over views the test builds
  itself (pixel shifts by slicing, flips, the resize + centre crop);
* accuracy and loss of a hand-built classifier on a hand-built set whose answer is known exactly.
"""
from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from archstat.train.ema import EMA
from archstat.train.engine import evaluate
from archstat.train.loop import TrainConfig, train
from archstat.train.setup import load_data
from archstat.train.tta import tta_report, views_probs, views_from_augment

TINY = "archstat.train.tiny:tiny_cnn"


def _scalar_model(value: float) -> nn.Linear:
    m = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        m.weight.fill_(value)
    return m


def _oracle_decay(d: Fraction, t: int) -> Fraction:
    """The documented warm-up, written out here: d_t = min(d, (1 + t) / (10 + t))."""
    return min(d, Fraction(1 + t, 10 + t))


def test_ema_equals_the_hand_worked_average():
    """Start 0, then weights 1, 2, 3, 4 at d = 0.9 (warm-up decays 1/10, 2/11, 3/12, 4/13):
    0.1*0 + 0.9*1 = 0.9;  (2/11)*0.9 + (9/11)*2 = 1.8;  0.25*1.8 + 0.75*3 = 2.7;  (4/13)*2.7 + (9/13)*4 = 3.6.
    A decay flipped to 1 - d gives 0.1 at the first step."""
    model = _scalar_model(0.0)
    ema = EMA(model, 0.9)
    for t, want in enumerate((0.9, 1.8, 2.7, 3.6)):
        with torch.no_grad():
            model.weight.fill_(t + 1.0)
        ema.update(model)
        assert ema.module.weight.item() == pytest.approx(want, abs=1e-6), t


@pytest.mark.parametrize("warmup", [True, False])
def test_ema_equals_the_closed_form_over_many_steps(warmup):
    """d = 0.6 reaches its cap at t = 13 ((1 + t) / (10 + t) >= 3/5): 16 steps cross both regimes
    (and d != 1 - d, so a flipped decay fails the fixed-decay case too).
    Closed form: e_T = prod_t d_t * w_init + sum_t (1 - d_t) prod_{s > t} d_s * w_t, in exact fractions."""
    d = Fraction(3, 5)
    weights = [Fraction(v) for v in (3, -1, 4, 1, -5, 9, 2, -6, 5, 3, -5, 8, 9, 7, -9, 3)]
    model = _scalar_model(2.0)
    ema = EMA(model, float(d), warmup=warmup)
    decays = [_oracle_decay(d, t) if warmup else d for t in range(len(weights))]
    for w in weights:
        with torch.no_grad():
            model.weight.fill_(float(w))
        ema.update(model)
    want = Fraction(2) * math.prod(decays)
    for t, w in enumerate(weights):
        want += (1 - decays[t]) * math.prod(decays[t + 1:]) * w
    assert ema.module.weight.item() == pytest.approx(float(want), abs=1e-5)


def test_training_loop_ema_is_the_average_of_its_steps():
    """The loop's EMA after T steps equals the closed form over the weights each optimizer step
    produced (recorded by a global step hook, outside archstat): one update per step, after it."""
    seen: list[dict[int, torch.Tensor]] = []  # per step: id(parameter) -> its value

    def record(opt) -> None:
        seen.append({id(p): p.detach().clone() for g in opt.param_groups for p in g["params"]})

    def before(opt, args, kwargs):
        if not seen:  # the weights the EMA copied at the start
            record(opt)

    def after(opt, args, kwargs):
        record(opt)

    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

    handles = [register_optimizer_step_pre_hook(before), register_optimizer_step_post_hook(after)]
    try:
        run = train(TrainConfig(model=TINY, input_shape=(1, 8, 8), epochs=1, batch=64, lr=0.05, quiet=True,
                                ema=0.9, max_steps=12))
    finally:
        for h in handles:
            h.remove()
    steps = len(seen) - 1
    assert steps == 12 == run.summary["ema_updates"]
    decays = [min(0.9, (1 + t) / (10 + t)) for t in range(steps)]
    pairs = list(zip(run.model.parameters(), run.ema_model.parameters()))
    assert len(pairs) == len(seen[0]) == 8
    for i, (p, got) in enumerate(pairs):
        want = seen[0][id(p)].double() * math.prod(decays)
        for t in range(steps):
            want += (1 - decays[t]) * math.prod(decays[t + 1:]) * seen[t + 1][id(p)].double()
        assert torch.allclose(got.double(), want, atol=1e-6), i
        assert torch.equal(p, seen[-1][id(p)])  # the raw model is the last recorded step


# ---------------------------------------------------------------- TTA

def _shift(raw: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Content moves right by dx and down by dy pixels (negative: left/up), zero fill; by slicing."""
    out = torch.zeros_like(raw)
    h, w = raw.shape[-2:]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = raw[..., ys, xs]
    return out


@pytest.fixture(scope="module")
def tta_problem():
    torch.manual_seed(3)
    from archstat.train.tiny import tiny_cnn

    model = tiny_cnn(10, 1, width=4).eval()
    mean, std = torch.tensor([0.3]), torch.tensor([0.2])
    raw = torch.rand(40, 1, 10, 10)
    raw[:, :, :, 6:] = 0.0  # an asymmetric picture, so that flips and shifts change the predictions
    return model, (raw - 0.3) / 0.2, raw, mean, std


def test_tta_probs_are_the_mean_over_independent_views(tta_problem):
    model, x, raw, mean, std = tta_problem
    with torch.no_grad():
        def p(view):
            return model((view - 0.3) / 0.2).softmax(1)

        base = [raw, _shift(raw, -1, 0), _shift(raw, 1, 0), _shift(raw, 0, -1), _shift(raw, 0, 1)]  # crop=2: 1 px
        want = torch.stack([p(v) for v in base] + [p(v.flip(-1)) for v in base]).mean(0)
        single = p(raw)
    got = views_probs(model, x, views_from_augment("crop=2,flip"), mean, std)
    assert torch.allclose(got, want, atol=1e-5)
    # labels: the TTA's own answer on the first half, another class on the second: TTA scores exactly 1/2
    y = want.argmax(1).clone()
    y[20:] = (y[20:] + 1) % 10
    r = tta_report(model, x, y, "crop=2,flip", mean, std)
    assert r["tta_acc"] == 0.5
    assert r["single_crop_acc"] == pytest.approx(float((single.argmax(1) == y).float().mean()), abs=1e-9)
    assert r["single_crop_acc"] != r["tta_acc"]  # the views did change some answers
    # resize by 256/224 (10 -> round(11.43) = 11 pixels), centre crop from (0, 0)
    with torch.no_grad():
        big = F.interpolate(raw, size=(11, 11), mode="bilinear", align_corners=False)
        rcc = p(big[..., 0:10, 0:10]).argmax(1)
    assert r["resize_center_crop_acc"] == pytest.approx(float((rcc == y).float().mean()), abs=1e-9)


# ---------------------------------------------------------------- accuracy with a known answer

def test_accuracy_and_loss_of_a_hand_built_classifier():
    """Logits = the two pixels (identity weights): the brighter pixel wins.  Five of the eight labels
    name the brighter pixel, so the accuracy is exactly 5/8; the cross-entropy of logits (a, b) with
    label 0 is log(1 + e^(b - a)), written out per sample."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.eye(2))
        model[1].bias.zero_()
    x = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [1.0, 4.0], [0.5, 0.0],
                      [2.0, 0.0], [0.0, 3.0], [1.0, 0.0]]).view(8, 1, 1, 2)
    y = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])  # the last three name the dimmer pixel
    loss, acc = evaluate(model, TensorDataset(x, y))
    assert acc == 5 / 8
    margins = [(b - a) if label == 0 else (a - b) for (a, b), label in zip(x.view(8, 2).tolist(), y.tolist())]
    assert loss == pytest.approx(sum(math.log1p(math.exp(m)) for m in margins) / 8, rel=1e-6)


def test_reported_test_accuracy_is_the_final_weights_on_the_test_split():
    """train's test_acc against argmax(model(x)) == y counted here, on the split load_data gives."""
    run = train(TrainConfig(model=TINY, input_shape=(1, 8, 8), epochs=1, batch=64, lr=0.05, quiet=True, max_steps=8))
    x, y = load_data("digits", (1, 8, 8), TINY).test.tensors
    run.model.eval()
    with torch.no_grad():
        hits = int((run.model(x).argmax(1) == y).sum())
    assert len(y) == 360 and run.summary["test_acc"] == pytest.approx(hits / 360, abs=1e-6)  # float32 mean; 1 image = 2.8e-3
