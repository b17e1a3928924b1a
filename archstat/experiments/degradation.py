"""Experiment ``degradation``: the lecture's ResNet motivation at CPU scale, on digits.

He et al. (2016) found that a 56-layer plain CNN has a higher *training* error than a 20-layer one:
the deeper net underfits, so the problem is optimisation, not overfitting (a deeper net could copy
the shallower one and set its extra layers to identity).  Residual blocks ``H(x) = F(x) + x`` make
the identity easy: F(x) = 0.

Networks (CIFAR-style ResNets of depth 6n + 2, scaled down): a 3x3 stem, three stages of n blocks
(widths w, 2w, 4w, stride 2 at the start of stages 2 and 3), global average pooling, one linear layer.
Each block has two 3x3 convs:

- ``plain``: conv-BN-ReLU-conv-BN-ReLU, no shortcut;
- ``residual`` (the original block): ReLU(BN(conv(ReLU(BN(conv(x))))) + x), ReLU after the add;
- ``preact`` (He et al. 2016b, the lecture's improved block): x + conv(ReLU(BN(conv(ReLU(BN(x)))))).

A stage's first block changes shape; its shortcut is a 1x1 conv + BN (a "projection").  Every variant
is trained with the same seed, batches and budget (SGD, momentum 0.9), and we compare the training
loss at the end, measured in eval mode over the whole training split.

The lecture's small positive bias: "initialise ReLU neurons with a slightly positive bias (e.g. 0.01)"
so that they start active.  BN removes any conv bias, so that comparison uses the plain net without
BN, with conv biases 0 against 0.01, and also reports the share of ReLU units that never fire on the
training data ("dead").

Measured (full size, seed 0, see reports/experiments/degradation.json): the 44-layer plain net ends
at a training loss of about 1.4 nats against 0.02 for the 8-layer one, while the 44-layer residual and
pre-activation nets end near the shallow plain net (0.04 and 0.03).  Beside them, the 8-layer residual
net ends at 0.006: shortcuts remove the degradation (0.04 against the plain 1.4), but in 8 epochs the
deeper residual net does not yet beat the shallower one, as it does in He et al.'s longer runs.  The
0.01 bias changes the no-BN net's final loss by less than its seed-to-seed spread.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from archstat.experiments._common import (ExperimentResult, new_figure, progress_steps, save_figure, save_numbers,
                                          seed_everything)
from archstat.experiments._train import Budget, epoch_means, evaluate, recalibrate_bn, train


def _conv(cin: int, cout: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)


class Block(nn.Module):
    """One two-conv block of kind ``plain``, ``residual`` or ``preact`` (``norm=False``: no BN, biases)."""

    def __init__(self, kind: str, cin: int, cout: int, stride: int, norm: bool = True) -> None:
        super().__init__()
        self.kind = kind
        self.conv1, self.conv2 = _conv(cin, cout, stride, bias=not norm), _conv(cout, cout, bias=not norm)
        bn_in = cin if kind == "preact" else cout  # pre-activation normalises the block's input
        self.bn1 = nn.BatchNorm2d(bn_in) if norm else nn.Identity()
        self.bn2 = nn.BatchNorm2d(cout) if norm else nn.Identity()
        self.shortcut: nn.Module | None = None
        if kind != "plain":
            self.shortcut = nn.Identity()
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "preact":
            out = self.conv1(torch.relu(self.bn1(x)))
            return self.conv2(torch.relu(self.bn2(out))) + self.shortcut(x)
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.kind == "residual":
            out = out + self.shortcut(x)
        return torch.relu(out)


class DepthNet(nn.Module):
    """Stem + 3 stages of ``n`` blocks + GAP + linear: depth 6n + 2 weight layers."""

    def __init__(self, kind: str, n: int, width: int = 16, in_channels: int = 1, num_classes: int = 10,
                 norm: bool = True, bias_init: float = 0.0) -> None:
        super().__init__()
        self.depth = 6 * n + 2
        layers: list[nn.Module] = [_conv(in_channels, width, bias=not norm)]
        if kind != "preact":  # pre-activation blocks normalise their own input
            layers += [nn.BatchNorm2d(width) if norm else nn.Identity(), nn.ReLU()]
        cin = width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                layers.append(Block(kind, cin, cout, 2 if (stage > 0 and i == 0) else 1, norm))
                cin = cout
        if kind == "preact":
            layers += [nn.BatchNorm2d(cin), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.constant_(m.bias, bias_init)
        nn.init.normal_(self.fc.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))


@torch.no_grad()
def dead_relu_share(model: nn.Module, x: torch.Tensor) -> float:
    """Share of ReLU channels whose output is 0 for every image and position ("dead").

    Counted over the stem's ReLU and each block's inner ReLU (the input of its second conv).
    """
    fired: list[torch.Tensor] = []

    def hook(_m, _i, out):
        fired.append((out > 0).flatten(2).any(2).any(0))  # per channel: fired anywhere?

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    model.eval()
    # the blocks call torch.relu directly, so expose their activations through conv2's input
    handles += [b.conv2.register_forward_hook(lambda m, i, o: fired.append((i[0] > 0).flatten(2).any(2).any(0)))
                for b in model.modules() if isinstance(b, Block)]
    model(x)
    for h in handles:
        h.remove()
    allc = torch.cat(fired)
    return 1.0 - allc.float().mean().item()


# name: (block kind, depth key, BatchNorm, conv bias init, optimiser, learning rate)
VARIANTS = {
    "plain shallow": ("plain", "shallow", True, 0.0, "sgd", 0.05),
    "plain deep": ("plain", "deep", True, 0.0, "sgd", 0.05),
    "residual shallow": ("residual", "shallow", True, 0.0, "sgd", 0.05),
    "residual deep": ("residual", "deep", True, 0.0, "sgd", 0.05),
    "preact deep": ("preact", "deep", True, 0.0, "sgd", 0.05),
    # without BN, SGD at 0.05 leaves this net at ln(10) for the whole budget; Adam trains it
    "plain shallow, no BN, bias 0": ("plain", "shallow", False, 0.0, "adam", 1e-3),
    "plain shallow, no BN, bias 0.01": ("plain", "shallow", False, 0.01, "adam", 1e-3),
}


def train_variant(name: str, splits, *, n_blocks: dict[str, int], width: int, epochs: int, seed: int,
                  step: Callable[[str], None] = lambda _: None) -> tuple[dict, list[float]]:
    """Build, train and measure one variant; every variant sees the same batches in the same order."""
    kind, depth_key, norm, bias, optimizer, lr = VARIANTS[name]
    x, y = splits.train.tensors
    budget = Budget(epochs=epochs, batch=64, lr=lr, optimizer=optimizer)
    torch.manual_seed(seed)
    model = DepthNet(kind, n_blocks[depth_key], width, num_classes=splits.num_classes, norm=norm, bias_init=bias)
    dead0 = dead_relu_share(model, x)
    losses = train(model, x, y, budget, seed=seed,
                   on_epoch=lambda e: step(f"{name} ({model.depth} layers, seed {seed}): epoch {e}/{epochs}"))
    recalibrate_bn(model, x)
    train_loss, train_acc = evaluate(model, x, y)
    test_loss, test_acc = evaluate(model, *splits.test.tensors)
    row = {"variant": name, "seed": seed, "block": kind, "depth": model.depth, "batchnorm": norm, "bias_init": bias,
           "optimizer": optimizer, "lr": lr, "params": sum(p.numel() for p in model.parameters()),
           "final_train_loss": train_loss, "train_accuracy": train_acc, "test_loss": test_loss,
           "test_accuracy": test_acc, "last_epoch_mean_step_loss": epoch_means(losses, -(-len(x) // budget.batch))[-1],
           "dead_relu_share_init": dead0, "dead_relu_share_end": dead_relu_share(model, x)}
    return row, losses


def run(out: Path | None = None, *, quick: bool = False, seed: int = 0) -> ExperimentResult:
    from archstat.train.data import digits_splits

    seed_everything(seed)
    size, width, epochs = (8, 8, 4) if quick else (16, 16, 8)
    n_blocks = {"shallow": 1, "deep": 5 if quick else 7}  # blocks per stage: 8 and 32 / 44 layers
    bias_seeds = [seed] if quick else [seed, seed + 1, seed + 2]  # the bias effect is small: repeat it
    splits = digits_splits(input_shape=(1, size, size), seed=seed)
    steps_per_epoch = -(-len(splits.train.tensors[0]) // 64)
    rows, curves = [], []
    runs = [(name, s) for name in VARIANTS for s in (bias_seeds if "bias" in name else [seed])]
    with progress_steps("degradation", len(runs) * epochs) as step:
        for name, s in runs:
            row, losses = train_variant(name, splits, n_blocks=n_blocks, width=width, epochs=epochs, seed=s, step=step)
            rows.append(row)
            if s == seed:
                curves += [{"variant": name, "step": i + 1, "train_loss": v} for i, v in enumerate(losses)]
    df = pd.DataFrame(rows)
    result = ExperimentResult("degradation", tables={"final": df, "curves": pd.DataFrame(curves)})
    first = df[df.seed == seed].set_index("variant")
    loss = first.final_train_loss
    bias = df[df.variant.str.contains("bias")].groupby("variant", sort=False).final_train_loss
    result.summary = {
        "input": f"1x{size}x{size}", "width": width, "epochs": epochs,
        **{f"depth[{k}]": int(v) for k, v in first.depth.items() if "bias" not in k},
        **{f"final_train_loss[{k}]": float(v) for k, v in loss.items() if "bias" not in k},
        "deep_plain_minus_shallow_plain": float(loss["plain deep"] - loss["plain shallow"]),
        "deep_residual_minus_shallow_plain": float(loss["residual deep"] - loss["plain shallow"]),
        "deep_residual_minus_shallow_residual": float(loss["residual deep"] - loss["residual shallow"]),
        "deep_preact_minus_shallow_plain": float(loss["preact deep"] - loss["plain shallow"]),
        **{f"final_train_loss_mean[{k}]": float(v) for k, v in bias.mean().items()},
        **{f"final_train_loss_std[{k}]": float(v) for k, v in bias.std(ddof=0).items()},
        "bias_seeds": len(bias_seeds),
    }
    result.notes += ["final_train_loss: cross-entropy over the whole training split in eval mode after training, "
                     "BN statistics recomputed over that split first",
                     "same seed, batch order and steps for every variant; SGD momentum 0.9 lr 0.05 with BN, "
                     "Adam lr 1e-3 for the no-BN bias pair"]
    if out is not None:
        _plot(result.tables["curves"], first, steps_per_epoch, out, result)
    save_numbers(result, out)
    return result


def _plot(curves: pd.DataFrame, df: pd.DataFrame, steps_per_epoch: int, out: Path, result: ExperimentResult) -> None:
    """Training-loss curves; ``df`` is the final table indexed by variant."""
    fig, axes = new_figure(1, 2, size=(12, 4.6))
    for i, (name, d) in enumerate(curves.groupby("variant", sort=False)):
        depth = int(df.depth[name])
        ls = "--" if "no BN" in name else "-"
        v = d.train_loss.to_numpy()
        k = steps_per_epoch  # moving average over one epoch of steps, as the lecture advises
        smooth = np.convolve(v, np.ones(k) / k, mode="valid")
        ax = axes[1] if "no BN" in name else axes[0]
        final = df.final_train_loss[name]
        ax.plot(d.step.to_numpy()[k - 1:] / steps_per_epoch, smooth, ls, color=f"C{i}",
                label=f"{name} ({depth} layers): final {final:.3f}")
    for ax, title in zip(axes, ("with BatchNorm: plain vs residual, shallow and deep", "plain, no BatchNorm: bias 0 vs 0.01")):
        ax.set(title=f"Training loss on digits, {title}", xlabel="epoch",
               ylabel="training cross-entropy (nats, 1-epoch moving avg)")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, out, "degradation_training_loss.png", result)
