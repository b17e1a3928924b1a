"""Experiment ``activations``: the lecture's eight activation functions.

Functions, with PyTorch's parameters (the lecture's, where they differ, in brackets):

- Sigmoid 1 / (1 + e^-x); Tanh; ReLU max(0, x);
- Leaky ReLU max(alpha x, x), alpha = 0.01 (PyTorch's default; the lecture uses alpha = 0.1);
- PReLU: the same with a learned alpha, one per layer, initialised at 0.25;
- ELU: x for x > 0, alpha (e^x - 1) otherwise, alpha = 1;
- SELU: lambda * ELU with alpha = 1.6732632423543772848170429916717, lambda = 1.0507009873554804934193349852946;
- GELU: x * Phi(x) = x/2 (1 + erf(x / sqrt 2)), exact (the lecture's x sigma(1.702 x) is its approximation).

Three measurements:

1. each function and its derivative (autograd), on [-5, 5];
2. the share of zero gradients per layer, |f'(z)| < 0.005 at the layer's pre-activations z, in the
   lecture's 7-layer 4096-wide MLP (Kaiming init, and the large 0.05 init): ReLU passes no gradient
   for the half of its inputs below 0, a saturated Tanh passes almost none; and the backpropagated
   gradient per layer, which Sigmoid shrinks at least 4x per layer (f' <= 1/4).  The same share is
   measured in the trained CNNs, with the share of "dead" channels (no gradient for any test image
   at any position);
3. the lecture's CIFAR-10 table at CPU scale: the zoo's ``resnet18`` (torchvision layout, BatchNorm) on
   digits at 1x16x16, one per activation, same seed, batches, optimiser and steps; test accuracy;
4. dying ReLUs, provoked with a large learning rate or a negative initial bias in a net without
   BatchNorm, against Leaky ReLU (:mod:`archstat.experiments.dead_relu`): the trained resnet18s of (3)
   have no dead channels, so (2)'s ~50% zero gradients are ordinary ReLU sparsity, not dead units.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from archstat.experiments._common import (ExperimentResult, new_figure, progress_steps, save_figure, save_numbers,
                                          seed_everything)
from archstat.experiments._train import Budget, evaluate, recalibrate_bn, train

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "Sigmoid": nn.Sigmoid,
    "Tanh": nn.Tanh,
    "ReLU": nn.ReLU,
    "LeakyReLU(0.01)": lambda: nn.LeakyReLU(0.01),
    "PReLU(0.25)": nn.PReLU,
    "ELU": nn.ELU,
    "SELU": nn.SELU,
    "GELU": nn.GELU,
}
ZERO_GRAD = 5e-3  # |f'(z)| below this counts as "no gradient" (Leaky ReLU's 0.01 slope is above it)


def derivative(act: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """f'(z) elementwise, by autograd (f is elementwise, so the gradient of sum f is f')."""
    z = z.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(act(z).sum(), z)
    return grad


def curves_table(lo: float = -5.0, hi: float = 5.0, n: int = 401) -> pd.DataFrame:
    x = torch.linspace(lo, hi, n)
    rows = []
    for name, make in ACTIVATIONS.items():
        act = make()
        with torch.no_grad():
            y = act(x)
        g = derivative(act, x)
        rows += [{"activation": name, "x": a, "f": b, "df": c} for a, b, c in zip(x.tolist(), y.tolist(), g.tolist())]
    return pd.DataFrame(rows)


@torch.no_grad()
def mlp_zero_grad_table(*, width: int, layers: int, batch: int, seed: int) -> pd.DataFrame:
    """The lecture's MLP with each activation: zero local gradients and backprop gradient per layer.

    Forward: z_l = h_{l-1} W_l, h_l = f(z_l).  Backward from a fixed random upstream gradient
    g = dL/dh_L:  dL/dz_l = dL/dh_l * f'(z_l),  dL/dh_{l-1} = dL/dz_l W_l^T.  Since |f'| <= 1/4 for
    Sigmoid, the gradient shrinks at least 4x per layer; a ReLU layer zeroes it at z < 0.
    Layer by layer one matrix is drawn (and drawn again, from its own seed, for the backward pass)
    and shared by all activations and both inits (W_l = std * R_l, one R_l), so they differ only by f
    and the scale.
    """
    inits = {"kaiming": math.sqrt(2.0 / width), "0.05": 0.05}
    # one 4096 x 4096 draw per layer and pass serves both inits: drawing is half the table's time
    draw = lambda l: torch.randn(width, width, generator=torch.Generator().manual_seed(seed * 1000 + l))  # noqa: E731
    acts = {init: {name: make() for name, make in ACTIVATIONS.items()} for init in inits}
    x0 = torch.randn(batch, width, generator=torch.Generator().manual_seed(seed))
    h = {init: {name: x0 for name in ACTIVATIONS} for init in inits}
    zs: dict[str, dict[str, list[torch.Tensor]]] = {init: {name: [] for name in ACTIVATIONS} for init in inits}
    for layer in range(1, layers + 1):
        r = draw(layer)
        for init, std in inits.items():
            w = r * std
            for name, act in acts[init].items():
                zs[init][name].append(h[init][name] @ w)
                h[init][name] = act(zs[init][name][-1])
    upstream = torch.randn(batch, width, generator=torch.Generator().manual_seed(seed + 1))
    grad = {init: {name: upstream for name in ACTIVATIONS} for init in inits}
    stats: dict[tuple[str, str, int], dict] = {}
    for layer in range(layers, 0, -1):
        r = draw(layer)
        for init, std in inits.items():
            w = r * std
            for name, act in acts[init].items():
                with torch.enable_grad():
                    d = derivative(act, zs[init][name][layer - 1])
                gz = grad[init][name] * d  # dL/dz_l
                stats[(init, name, layer)] = {"zero_grad_share": (d.abs() < ZERO_GRAD).float().mean().item(),
                                              "preact_std": zs[init][name][layer - 1].std().item(),
                                              "grad_norm": gz.norm().item()}
                grad[init][name] = gz @ w.T
    rows = []
    for init in inits:
        for name in ACTIVATIONS:
            top = stats[(init, name, layers)]["grad_norm"]
            for layer in range(1, layers + 1):
                st = stats[(init, name, layer)]
                rows.append({"init": init, "activation": name, "layer": layer, **st,
                             "grad_norm_rel_top": st["grad_norm"] / top if top > 0 else float("nan")})
    return pd.DataFrame(rows)


def cnn_zero_grad(model: nn.Module, x: torch.Tensor) -> list[dict]:
    """Per activation module of a CNN, in forward order: zero-gradient share and dead-channel share."""
    records: list[tuple[nn.Module, torch.Tensor]] = []
    kinds = tuple(type(make()) for make in ACTIVATIONS.values())
    hooks = [m.register_forward_hook(lambda m, i, o: records.append((m, i[0].detach())))
             for m in model.modules() if isinstance(m, kinds)]
    model.eval()
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    rows = []
    for k, (m, z) in enumerate(records, start=1):
        g = derivative(m, z).abs() < ZERO_GRAD  # N x C x H x W
        dead = g.transpose(0, 1).flatten(1).all(1)  # a channel with no gradient anywhere
        rows.append({"layer": k, "zero_grad_share": g.float().mean().item(), "dead_channel_share": dead.float().mean().item()})
    return rows


def train_table(*, size: int, epochs: int, seed: int, names: list[str],
                step: Callable[[str], None] = lambda _: None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """resnet18 from the zoo with each activation: same seed, batches, optimiser and steps."""
    from archstat.models import get_model
    from archstat.train.data import digits_splits

    splits = digits_splits(input_shape=(1, size, size), seed=seed)
    x, y = splits.train.tensors
    xte, yte = splits.test.tensors
    budget = Budget(epochs=epochs, batch=64, lr=0.05, weight_decay=5e-4)
    rows, grads = [], []
    for name in names:
        torch.manual_seed(seed)
        model = get_model("resnet18", num_classes=splits.num_classes, in_channels=1, act_layer=ACTIVATIONS[name])
        losses = train(model, x, y, budget, seed=seed,
                       on_epoch=lambda e, name=name: step(f"resnet18, {name}: epoch {e}/{epochs}"))
        recalibrate_bn(model, x)
        train_loss, train_acc = evaluate(model, x, y)
        test_loss, test_acc = evaluate(model, xte, yte)
        zg = cnn_zero_grad(model, xte)
        grads += [{"activation": name, **r} for r in zg]
        rows.append({"activation": name, "test_accuracy": test_acc, "test_loss": test_loss,
                     "train_accuracy": train_acc, "final_train_loss": train_loss,
                     "first_epoch_mean_loss": float(np.mean(losses[: -(-len(x) // budget.batch)])),
                     "zero_grad_share_mean": float(np.mean([r["zero_grad_share"] for r in zg])),
                     "dead_channel_share_mean": float(np.mean([r["dead_channel_share"] for r in zg]))})
    return pd.DataFrame(rows), pd.DataFrame(grads)


def _plot_functions(df: pd.DataFrame, out: Path, result: ExperimentResult) -> None:
    fig, axes = new_figure(2, 4, size=(15, 7))
    for ax, (name, d) in zip(axes.flat, df.groupby("activation", sort=False)):
        ax.plot(d.x, d.f, color="C0", label="f(x)")
        ax.plot(d.x, d.df, color="C1", ls="--", label="f'(x) (autograd)")
        ax.axhline(0, color="k", lw=0.5)
        ax.axvline(0, color="k", lw=0.5)
        ax.set(title=name, xlabel="pre-activation x (unitless)", ylabel="f(x), f'(x) (unitless)", ylim=(-2, 5))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle("The lecture's activation functions and their gradients (PyTorch parameters; "
                 "the lecture's Leaky ReLU uses alpha 0.1)")
    save_figure(fig, out, "activations_functions.png", result)


def _plot_grad_norms(mlp: pd.DataFrame, out: Path, result: ExperimentResult) -> None:
    fig, axes = new_figure(1, 2, size=(11, 4.4))
    for ax, init in zip(axes, ("kaiming", "0.05")):
        d = mlp[mlp.init == init]
        for i, (name, c) in enumerate(d.groupby("activation", sort=False)):
            ax.semilogy(c.layer, c.grad_norm_rel_top, marker="o", ms=3, color=f"C{i}", label=name)
        ax.set(title=f"MLP 4096 wide, {'Kaiming' if init == 'kaiming' else '0.05 * randn'} init: backprop",
               xlabel="layer (6 = top, where the gradient enters)",
               ylabel="||dL/dz|| relative to layer 6 (log scale)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Vanishing gradients: the gradient reaching each layer of the lecture's MLP")
    save_figure(fig, out, "activations_gradient_norms.png", result)


def _plot_zero_grads(mlp: pd.DataFrame, cnn: pd.DataFrame, out: Path, result: ExperimentResult) -> None:
    panels = [("MLP 4096 wide, Kaiming init", mlp[mlp.init == "kaiming"]),
              ("MLP 4096 wide, 0.05 * randn init", mlp[mlp.init == "0.05"])]
    if len(cnn):
        panels.append(("resnet18 after training (test images)", cnn))
    fig, axes = new_figure(1, len(panels), size=(5.2 * len(panels), 4.6))
    for ax, (title, d) in zip(np.atleast_1d(axes), panels):
        for i, (name, c) in enumerate(d.groupby("activation", sort=False)):
            ax.plot(c.layer, 100 * c.zero_grad_share, marker="o", ms=3, color=f"C{i}", label=name)
        ax.set(title=title, xlabel="activation layer (1 = first)",
               ylabel=f"inputs with |f'(z)| < {ZERO_GRAD:g} (%)", ylim=(-3, 103))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Dead-ReLU and saturation: share of zero local gradients per layer")
    save_figure(fig, out, "activations_zero_gradients.png", result)


def _plot_accuracy(table: pd.DataFrame, size: int, epochs: int, out: Path, result: ExperimentResult) -> None:
    fig, ax = new_figure(size=(8, 4.4))
    bars = ax.bar(table.activation, 100 * table.test_accuracy, color=[f"C{i}" for i in range(len(table))])
    ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.axhline(10, color="k", ls="--", lw=1, label="chance (10 classes)")
    ax.set(title=f"resnet18 on digits (1x{size}x{size}), {epochs} epochs, same seed and batches; 360 test images",
           xlabel="activation function", ylabel="test accuracy (%)", ylim=(0, 105))
    ax.tick_params(axis="x", labelsize=8, rotation=20)
    ax.legend(loc="lower right")
    save_figure(fig, out, "activations_accuracy.png", result)


def run(out: Path | None = None, *, quick: bool = False, seed: int = 0) -> ExperimentResult:
    from archstat.experiments.dead_relu import CASES, dead_relu_table, plot_dead

    seed_everything(seed)
    size, epochs, dead_epochs = (8, 1, 2) if quick else (16, 6, 8)
    names = ["Sigmoid", "ReLU", "LeakyReLU(0.01)"] if quick else list(ACTIVATIONS)
    dead_acts = {k: ACTIVATIONS[k] for k in ("ReLU", "LeakyReLU(0.01)")}
    with progress_steps("activations", 1 + len(names) * epochs + len(dead_acts) * len(CASES)) as step:
        step("curves and the 4096-wide MLP")
        curves = curves_table()
        mlp = mlp_zero_grad_table(width=4096, layers=6, batch=16, seed=seed)
        table, cnn = train_table(size=size, epochs=epochs, seed=seed, names=names, step=step)
        dead_layers, dead = dead_relu_table(dead_acts, epochs=dead_epochs, seed=seed, on_case=step)
    result = ExperimentResult("activations", tables={"accuracy": table, "mlp_zero_grad": mlp,
                                                     "cnn_zero_grad": cnn, "curves": curves,
                                                     "dead_relu": dead, "dead_relu_layers": dead_layers})
    result.summary = {"model": "resnet18", "input": f"1x{size}x{size}", "epochs": epochs}
    result.summary.update({f"test_accuracy[{r.activation}]": float(r.test_accuracy) for r in table.itertuples()})
    for (init, name), d in mlp.groupby(["init", "activation"], sort=False):
        result.summary[f"mlp_zero_grad_share[{init}|{name}]"] = float(d.zero_grad_share.mean())
        result.summary[f"mlp_grad_norm_layer1_over_layer6[{init}|{name}]"] = float(d.grad_norm_rel_top.iloc[0])
    for name, d in cnn.groupby("activation", sort=False):
        result.summary[f"cnn_zero_grad_share[{name}]"] = float(d.zero_grad_share.mean())
        result.summary[f"cnn_dead_channel_share[{name}]"] = float(d.dead_channel_share.mean())
    for r in dead.itertuples():
        result.summary[f"dead_channel_share[{r.activation}|{r.case}]"] = float(r.dead_channel_share)
    result.notes += ["PyTorch parameters: LeakyReLU alpha 0.01 (lecture: 0.1), PReLU alpha initialised 0.25, "
                     "GELU exact (lecture's x*sigmoid(1.702x) is an approximation)",
                     "SGD lr 0.05, momentum 0.9, weight decay 5e-4, batch 64; BN statistics recomputed "
                     "over the training split before evaluation",
                     "one seed; one test image is 0.28 %, so gaps of a few images between the ReLU family are noise",
                     f"dead ReLU panel: 4 convs without BN on 8x8 digits, {dead_epochs} epochs, SGD momentum 0.9; "
                     "a channel is dead when |f'(z)| < 0.005 for every training image at every position"]
    if out is not None:
        _plot_functions(curves, out, result)
        _plot_zero_grads(mlp, cnn, out, result)
        _plot_grad_norms(mlp, out, result)
        _plot_accuracy(table, size, epochs, out, result)
        plot_dead(dead_layers, dead, dead_epochs, out, result)
    save_numbers(result, out)
    return result
