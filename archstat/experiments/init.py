"""Experiment ``init``: weight initialisation, the lecture's 7-layer 4096-wide MLP.

The lecture's code, in torch::

    dims = [4096] * 7
    x = randn(16, dims[0])
    for Din, Dout in zip(dims[:-1], dims[1:]):
        W = scale * randn(Din, Dout)          # 0.01, 0.05, or sqrt(2 / Din) (Kaiming/MSRA)
        x = relu(x @ W)                       # six hidden layers: hs[0] .. hs[5]

Why it behaves as it does: for zero-mean W with Var(W) = s^2, a pre-activation has
Var(z) = Din * s^2 * E[a^2], and ReLU keeps half the second moment, E[relu(z)^2] = Var(z) / 2.
So each ReLU layer multiplies the activations' second moment by ``Din * s^2 / 2``:
0.41 for s = 0.01 (std x 0.64 per layer: collapse), 5.1 for s = 0.05 (std x 2.3: blow-up),
and exactly 1 for Kaiming's s^2 = 2 / Din.  Tanh saturates at +/-1 instead of blowing up.

Xavier, s^2 = 1 / Din (the lecture's scale for tanh), keeps Var(z) = E[a^2] but tanh itself contracts:
E[tanh(z)^2] < Var(z) for every z != 0, and for small q = Var(z), E[tanh(z)^2] ~ q - 2 q^2, so the
activations still *decay* with depth, slowly (~1/sqrt(layer) in std; here 0.63 at layer 1 to ~0.3 at
layer 6, see init.json).  The lecture's histograms do not show this decay; the experiment does, and
says so.  PyTorch's ``calculate_gain("tanh") = 5/3`` multiplies the Xavier std to offset the
contraction; with it the std settles at a fixed point instead of decaying (a fifth scheme here).

Residual variant (the lecture's last paragraph).  A block ``y = x + F(x)``, F = conv-ReLU-conv,
has Var(y) = Var(x) + Var(F(x)) when F(x) is uncorrelated with x.  Kaiming on both convs gives
Var(F(x)) of the order of Var(x), so the variance multiplies at every block; a zero-initialised
second conv makes F(x) = 0 at init, so Var(F(x) + x) = Var(x) exactly.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from archstat.experiments._common import (ExperimentResult, new_figure, progress_steps, save_figure, save_numbers,
                                          seed_everything)

SCHEMES = ("0.01", "0.05", "kaiming", "xavier", "xavier_tanh_gain")
TANH_GAIN = 5.0 / 3.0  # torch.nn.init.calculate_gain("tanh")
ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh}


def weight_std(scheme: str, fan_in: int) -> float:
    """The std of W under each scheme: fixed 0.01/0.05, Kaiming sqrt(2/Din), Xavier sqrt(1/Din), x 5/3 with the tanh gain."""
    if scheme == "kaiming":
        return math.sqrt(2.0 / fan_in)
    if scheme == "xavier":
        return math.sqrt(1.0 / fan_in)
    if scheme == "xavier_tanh_gain":
        return TANH_GAIN * math.sqrt(1.0 / fan_in)
    return float(scheme)


def mlp_activations(acts: list[str], schemes: list[str], *, width: int = 4096, layers: int = 6,
                    batch: int = 16, seed: int = 0) -> dict[tuple[str, str], list[torch.Tensor]]:
    """The lecture's forward pass for every (activation, scheme): the hidden activations ``hs``.

    Every run sees the same x and the same unit-normal matrices, so the schemes differ only by
    the scale, as in the lecture's three listings.  Layer by layer, one matrix is drawn and shared
    by all runs (8x fewer 4096^2 draws than one pass per run).
    """
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn(batch, width, generator=gen)
    runs = [(a, s) for a in acts for s in schemes]
    xs = {run: x0 for run in runs}
    hs: dict[tuple[str, str], list[torch.Tensor]] = {run: [] for run in runs}
    for _ in range(layers):
        w = torch.randn(width, width, generator=gen)
        for act, scheme in runs:
            x = ACTIVATIONS[act](xs[(act, scheme)] @ w * weight_std(scheme, width))
            xs[(act, scheme)] = x
            hs[(act, scheme)].append(x)
    return hs


def mlp_table(*, width: int, layers: int, batch: int, seed: int) -> tuple[pd.DataFrame, dict]:
    """Per-layer mean/std for every (activation, scheme); also the raw hs for the histograms."""
    all_hs = mlp_activations(list(ACTIVATIONS), list(SCHEMES), width=width, layers=layers, batch=batch,
                             seed=seed)
    rows, hists = [], {}
    for (act, scheme), hs in all_hs.items():
        hists[(act, scheme)] = [h.flatten().numpy() for h in hs]
        for i, h in enumerate(hs, start=1):
            rows.append({"activation": act, "init": scheme, "layer": i, "mean": h.mean().item(),
                         "std": h.std().item(), "share_zero": (h == 0).float().mean().item(),
                         # |tanh| > 0.99 means tanh'(z) < 0.02: a saturated unit
                         "share_saturated": (h.abs() > 0.99).float().mean().item() if act == "tanh"
                         else float("nan")})
    return pd.DataFrame(rows), hists


class _ResidualBlock(nn.Module):
    """``y = x + conv2(relu(conv1(x)))`` without BN, so that init alone sets the variance."""

    def __init__(self, channels: int, zero_last: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        nn.init.kaiming_normal_(self.conv1.weight, nonlinearity="relu")  # fan_in, gain sqrt(2)
        if zero_last:
            nn.init.zeros_(self.conv2.weight)
        else:
            nn.init.kaiming_normal_(self.conv2.weight, nonlinearity="relu")

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(torch.relu(self.conv1(x)))


@torch.no_grad()
def residual_table(*, blocks: int, channels: int, size: int, batch: int, seed: int) -> pd.DataFrame:
    """Var(x), Var(F(x)) and Var(F(x)+x) through a stack of blocks, both inits, same x."""
    rows = []
    for scheme, zero_last in (("kaiming_both", False), ("zero_init_conv2", True)):
        torch.manual_seed(seed)
        stack = [_ResidualBlock(channels, zero_last) for _ in range(blocks)]
        x = torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(seed))
        var0 = x.var().item()
        for i, block in enumerate(stack, start=1):
            fx = block.residual(x)
            y = x + fx
            rows.append({"init": scheme, "block": i, "var_in": x.var().item(), "var_F": fx.var().item(),
                         "var_out": y.var().item(), "var_out_over_in": y.var().item() / x.var().item(),
                         "var_out_over_input": y.var().item() / var0})
            x = y
    return pd.DataFrame(rows)


def _plot_std(df: pd.DataFrame, out: Path | None, result: ExperimentResult) -> None:
    fig, axes = new_figure(1, 2, size=(11, 4.2))
    for ax, act in zip(axes, ACTIVATIONS):
        for scheme in SCHEMES:
            d = df[(df.activation == act) & (df.init == scheme)]
            ax.semilogy(d.layer, d["std"], marker="o", label=f"W = {_scheme_label(scheme)}")
        ax.set(title=f"{act}: activation std per layer (7-layer 4096-wide MLP)",
               xlabel="hidden layer (1 = first)", ylabel="std of activations (unitless, log scale)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, out, "init_std_per_layer.png", result)


def _scheme_label(scheme: str) -> str:
    return {"kaiming": "randn * sqrt(2/Din) (Kaiming)", "xavier": "randn * sqrt(1/Din) (Xavier)",
            "xavier_tanh_gain": "randn * 5/3 * sqrt(1/Din) (Xavier, tanh gain)"}.get(scheme, f"{scheme} * randn")


def _plot_histograms(df: pd.DataFrame, hists: dict, out: Path | None, result: ExperimentResult) -> None:
    """The lecture's figure: one histogram per layer, one row per init, one file per activation."""
    for act in ACTIVATIONS:
        layers = int(df.layer.max())
        fig, axes = new_figure(len(SCHEMES), layers, size=(2.3 * layers, 2.2 * len(SCHEMES)))
        for r, scheme in enumerate(SCHEMES):
            # one x range per row, as in the lecture's figure, so collapse and blow-up are visible
            row_values = [v[v != 0] if act == "relu" else v for v in hists[(act, scheme)]]
            lo = min(float(v.min()) for v in row_values)
            hi = max(float(v.max()) for v in row_values)
            bins = np.linspace(lo, hi, 61)
            for c in range(layers):
                ax = axes[r][c]
                values = row_values[c]
                row = df[(df.activation == act) & (df.init == scheme) & (df.layer == c + 1)].iloc[0]
                ax.hist(values, bins=bins, color=f"C{r}", label=_scheme_label(scheme) if c == 0 else None)
                ax.set_title(f"layer {c + 1}: mean {row['mean']:.2g}\nstd {row['std']:.2g}", fontsize=8)
                ax.tick_params(labelsize=6)
                if r == len(SCHEMES) - 1:
                    ax.set_xlabel("activation value (unitless)", fontsize=7)
                if c == 0:
                    ax.set_ylabel("count", fontsize=7)
                    ax.legend(fontsize=6, loc="upper right")
        left_out = " ReLU's exact zeros (half of them) left out;" if act == "relu" else ""
        fig.suptitle(f"{act}: histograms of hidden activations per layer and weight init "
                     f"(16 x 4096 values each;{left_out} one x range per row)")
        save_figure(fig, out, f"init_hist_{act}.png", result)


def _plot_residual(df: pd.DataFrame, out: Path | None, result: ExperimentResult) -> None:
    fig, ax = new_figure(size=(6.4, 4.4))
    labels = {"kaiming_both": "Kaiming on conv1 and conv2", "zero_init_conv2": "Kaiming conv1, zero conv2"}
    for scheme, d in df.groupby("init", sort=False):
        ax.semilogy(np.r_[0, d.block], np.r_[d.var_in.iloc[0], d.var_out], marker="o", label=labels[scheme])
    ax.set(title="Residual blocks y = x + F(x): variance at init", xlabel="residual block (0 = input)",
           ylabel="Var(y) (unitless, log scale)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    save_figure(fig, out, "init_residual_variance.png", result)


def run(out: Path | None = None, *, quick: bool = False, seed: int = 0) -> ExperimentResult:
    """Run the experiment.  The lecture's sizes are cheap, so ``quick`` changes nothing here."""
    seed_everything(seed)
    result = ExperimentResult("init")
    with progress_steps("init", 2) as step:
        step("the 4096-wide MLP, every activation and init")
        df, hists = mlp_table(width=4096, layers=6, batch=16, seed=seed)
        step("residual stacks")
        res = residual_table(blocks=8, channels=16, size=16, batch=32, seed=seed)
    result.tables = {"mlp": df, "residual": res}

    def ratio(act: str, scheme: str) -> float:  # std at layer 6 / std at layer 1
        d = df[(df.activation == act) & (df.init == scheme)].set_index("layer")["std"]
        return float(d.iloc[-1] / d.iloc[0])

    for act in ACTIVATIONS:
        for scheme in SCHEMES:
            result.summary[f"{act}_{scheme}_std_ratio_l6_over_l1"] = ratio(act, scheme)
    tanh_sat = df[(df.activation == "tanh") & (df.init == "0.05") & (df.layer == 6)].share_saturated.item()
    result.summary["tanh_0.05_share_saturated_l6"] = tanh_sat
    for scheme, d in res.groupby("init", sort=False):
        result.summary[f"residual_{scheme}_var_growth_per_block"] = float(d.var_out_over_in.mean())
        result.summary[f"residual_{scheme}_var_final_over_input"] = float(d.var_out_over_input.iloc[-1])
    result.notes.append("Kaiming = randn * sqrt(2/Din) (ReLU gain); Xavier = randn * sqrt(1/Din), the lecture's "
                        "scale for tanh; Xavier x 5/3 = PyTorch's calculate_gain('tanh')")
    xav, gained = result.summary["tanh_xavier_std_ratio_l6_over_l1"], result.summary["tanh_xavier_tanh_gain_std_ratio_l6_over_l1"]
    result.notes.append(f"tanh with Xavier (gain 1) still decays: std at layer 6 is {xav:.2f}x layer 1's (tanh contracts: "
                        f"E[tanh(z)^2] < Var(z)); the lecture's 'nicely scaled' histograms do not hold here; with "
                        f"the tanh gain 5/3 the ratio is {gained:.2f}")
    if out is not None:  # drawing is the slow part; skip it when nothing is written
        _plot_std(df, out, result)
        _plot_histograms(df, hists, out, result)
        _plot_residual(res, out, result)
    save_numbers(result, out)
    return result
