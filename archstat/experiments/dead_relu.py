"""Dying ReLUs, provoked: the ``activations`` experiment's dead-unit panel.

A ReLU channel is *dead* when its pre-activation z is below 0 for every training image at every
position: then f'(z) = 0 everywhere, the channel's weights and bias receive no gradient, and nothing
can bring it back.  A healthy trained net has none (ordinary ReLU sparsity is ~50% of the *values*,
not whole channels), so two ways the lecture names are provoked here:

- a large learning rate (0.3 against 0.05): big updates push a channel's bias and weights so far
  negative that z < 0 on the whole data set, and it stops learning;
- a negative bias at init, b = -0.5 (the lecture's advice is the opposite, a slightly positive bias):
  channels whose weights cannot lift z above 0 start dead.  A dead channel gets no gradient of its
  own, but the layers below it keep learning and can lift its input again, so some revive.

Measured (full size, seed 0, reports/experiments/activations.json, `archstat experiment activations`):
ReLU at lr 0.3 ends with 16% of its channels dead (none at lr 0.05), Leaky ReLU with none in any
case.  The bias -0.5 net starts with 12.5% dead channels and ends with 0.8% (they revive), but it
never learns (10% test accuracy, Leaky ReLU 14%): four negative biases silence the signal, which hurts
more than the dead channels themselves.  Leaky ReLU removes dead channels, not the damage of a too
large learning rate (test accuracy 64% against ReLU's 70% at lr 0.3).

Net: four 3x3 convs (widths 16, 16, 32, 32; stride 2 at the third) with biases and *no* BatchNorm (BN
would re-centre z and hide the bias), global average pooling, a linear layer; Kaiming init; digits at
their native 8x8.  Leaky ReLU (slope 0.01 for z < 0) runs the same cases: its gradient is never 0, so
it has no dead channels by construction.  The dead share is measured on the training images with
:func:`archstat.experiments.activations.cnn_zero_grad` (|f'(z)| < 0.005 everywhere in the channel).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from archstat.experiments._common import ExperimentResult, new_figure, save_figure
from archstat.experiments._train import Budget, evaluate, train

WIDTHS = ((16, 1), (16, 1), (32, 2), (32, 1))  # (channels, stride) of the four convs
# case: (learning rate, conv bias at init)
CASES = {"lr 0.05, bias 0 (healthy)": (0.05, 0.0), "lr 0.3 (large)": (0.3, 0.0),
         "lr 0.05, bias -0.5 at init": (0.05, -0.5)}


class PlainCNN(nn.Module):
    """conv-act x 4 (with biases, no BN) -> global average pool -> linear."""

    def __init__(self, act: Callable[[], nn.Module], bias: float, num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for cout, stride in WIDTHS:
            conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.constant_(conv.bias, bias)
            layers += [conv, act()]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # N x 1 x 8 x 8
        return self.fc(self.features(x).mean(dim=(2, 3)))  # N x 32 -> N x K


def dead_relu_table(acts: dict[str, Callable[[], nn.Module]], *, epochs: int, seed: int,
                    on_case: Callable[[str], None] = lambda _: None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per (activation, case): dead-channel share per layer at init and after training; test accuracy."""
    from archstat.experiments.activations import cnn_zero_grad
    from archstat.train.data import digits_splits

    splits = digits_splits(input_shape=(1, 8, 8), seed=seed)
    x, y = splits.train.tensors
    layers, final = [], []
    for name, make in acts.items():
        for case, (lr, bias) in CASES.items():
            on_case(f"dead ReLU: {name}, {case}")
            torch.manual_seed(seed)
            model = PlainCNN(make, bias, splits.num_classes)
            before = cnn_zero_grad(model, x)
            losses = train(model, x, y, Budget(epochs=epochs, batch=64, lr=lr), seed=seed)
            after = cnn_zero_grad(model, x)
            layers += [{"activation": name, "case": case, "layer": a["layer"],
                        "dead_channel_share_init": b["dead_channel_share"],
                        "dead_channel_share": a["dead_channel_share"]} for b, a in zip(before, after)]
            final.append({"activation": name, "case": case, "lr": lr, "bias_init": bias,
                          "diverged": bool(np.isnan(losses[-1])),
                          "dead_channel_share_init": float(np.mean([b["dead_channel_share"] for b in before])),
                          "dead_channel_share": float(np.mean([a["dead_channel_share"] for a in after])),
                          "test_accuracy": evaluate(model, *splits.test.tensors)[1]})
    return pd.DataFrame(layers), pd.DataFrame(final)


def plot_dead(layers: pd.DataFrame, final: pd.DataFrame, epochs: int, out: Path | None,
              result: ExperimentResult) -> None:
    """Left: dead-channel share per layer after training; right: test accuracy per case."""
    fig, axes = new_figure(1, 2, size=(13, 4.8))
    cases = list(CASES)
    for i, case in enumerate(cases):
        for name, style in (("ReLU", "-"), ("LeakyReLU(0.01)", ":")):
            d = layers[(layers.case == case) & (layers.activation == name)]
            if len(d):
                axes[0].plot(d.layer, 100 * d.dead_channel_share, style, marker="o", color=f"C{i}",
                             label=f"{name}, {case}")
        init = layers[(layers.case == case) & (layers.activation == "ReLU")]
        if init.dead_channel_share_init.any():
            axes[0].plot(init.layer, 100 * init.dead_channel_share_init, "--", marker="x", color=f"C{i}",
                         alpha=0.6, label=f"ReLU, {case}: at init")
    axes[0].set(title=f"Dead channels after {epochs} epochs (no gradient for any training image)",
                xlabel="conv + activation layer (1 = first)", ylabel="dead channels (% of the layer's)",
                ylim=(-3, 103), xticks=range(1, len(WIDTHS) + 1))
    axes[0].grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    width = 0.4
    pos = np.arange(len(cases))
    for k, (name, d) in enumerate(final.groupby("activation", sort=False)):
        acc = d.set_index("case").test_accuracy.reindex(cases)
        bars = axes[1].bar(pos + (k - 0.5) * width, 100 * acc.to_numpy(), width, label=name, color=f"C{k + 4}")
        axes[1].bar_label(bars, fmt="%.1f", fontsize=8)
    axes[1].axhline(10, color="k", ls="--", lw=1, label="chance (10 classes)")
    axes[1].set(title="Test accuracy of the same nets", xlabel="training case", ylabel="test accuracy (%)",
                ylim=(0, 105), xticks=pos)
    axes[1].set_xticklabels(cases, fontsize=8)
    axes[1].legend(fontsize=8)
    fig.suptitle("Dying ReLUs provoked: 4-conv net without BatchNorm on 8x8 digits, SGD momentum 0.9, same seed")
    save_figure(fig, out, "activations_dead_relu.png", result)
