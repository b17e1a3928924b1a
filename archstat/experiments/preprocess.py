"""Experiment ``preprocess``: per-channel normalisation and PCA whitening on digits.

Data: scikit-learn's 8x8 digits in their own units (intensity 0..16, like 0..255 for photographs),
from ``digits_splits`` (whose normalised output is un-done with the stored train-split mean/std).

Transforms, all fitted on the training split only:

- zero-centred: ``x - mean_c``;
- normalised (the lecture's code): ``(x - mean_c) / std_c`` with one mean and std per channel
  (digits have one channel, so one pair of numbers for all 64 pixels);
- PCA-decorrelated: ``U^T (x - mu)`` with ``Sigma = U diag(lambda) U^T`` the pixel covariance; the
  coordinates are uncorrelated, with variances lambda;
- PCA-whitened: ``diag(lambda + eps)^(-1/2) U^T (x - mu)``: identity covariance (eps = 1e-2 of the
  normalised scale keeps the near-constant border pixels from being blown up to unit variance).

Figure 1 is the lecture's pair of scatter plots for two neighbouring pixels (2-D PCA of those two).
Figure 2 is the effect on optimisation: the same linear classifier (softmax regression, the
lecture's setting for "sensitive to small changes in the weights") and the same small MLP, trained
with the same SGD, batches and steps on each version of the data.  Raw inputs are far from the
origin and badly scaled, so one learning rate cannot suit all directions; a step size that is good
for normalised data makes the raw-data loss jump around or diverge.
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
from archstat.experiments._train import Budget, epoch_means, evaluate, train

PIXELS = (27, 28)  # row 3, columns 3 and 4 of the 8x8 image: two strongly correlated pixels
EPS = 1e-2


def raw_digits(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flattened train/test images in the dataset's 0..16 units, and their labels."""
    from archstat.train.data import digits_splits

    splits = digits_splits(input_shape=(1, 8, 8), seed=seed)
    (xtr, ytr), (xte, yte) = splits.train.tensors, splits.test.tensors
    to_raw = lambda x: (splits.denormalise(x) * 16.0).flatten(1).double()  # noqa: E731
    return to_raw(xtr), ytr, to_raw(xte), yte


def fit_transforms(x: torch.Tensor, eps: float = EPS) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """Name -> function, every statistic computed from ``x`` (the training split) only."""
    mean_c, std_c = x.mean(), x.std(unbiased=False)  # one channel: over all pixels and images
    mu = x.mean(0)
    cov = torch.cov(((x - mean_c) / std_c).T)  # PCA on the normalised scale, so eps is in its units
    lam, u = torch.linalg.eigh(cov)
    lam, u = lam.flip(0).clamp_min(0), u.flip(1)  # largest variance first
    scale = (lam + eps).rsqrt()
    return {
        "raw (0..16)": lambda z: z,
        "zero-centred": lambda z: z - mean_c,
        "normalised (per channel)": lambda z: (z - mean_c) / std_c,
        "PCA-decorrelated": lambda z: ((z - mu) / std_c) @ u,
        "PCA-whitened": lambda z: ((z - mu) / std_c) @ u * scale,
    }


def _pair_views(x: torch.Tensor) -> dict[str, np.ndarray]:
    """The lecture's 2-D pictures for two pixels: original, centred, normalised, decorrelated, whitened."""
    p = x[:, list(PIXELS)]
    mean_c, std_c = x.mean(), x.std(unbiased=False)
    c = p - p.mean(0)
    lam, u = torch.linalg.eigh(torch.cov(c.T))
    lam, u = lam.flip(0), u.flip(1)
    dec = c @ u
    return {"original data": p, "zero-centred data (channel mean)": p - mean_c,
            "normalised data (channel mean, std)": (p - mean_c) / std_c,
            "decorrelated data": dec, "whitened data": dec / lam.sqrt()}


def _plot_scatter(views: dict[str, np.ndarray], out: Path, result: ExperimentResult) -> None:
    fig, axes = new_figure(1, len(views), size=(4 * len(views), 4.2))
    units = {"original data": "intensity (0..16)", "zero-centred data (channel mean)": "intensity - channel mean",
             "normalised data (channel mean, std)": "(x - mean) / std (unitless)", "decorrelated data": "PCA coordinate (intensity)",
             "whitened data": "whitened coordinate (unitless)"}
    for ax, (title, v) in zip(axes, views.items()):
        v = v.numpy()
        cov = np.cov(v.T)
        corr = cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])
        ax.scatter(v[:, 0], v[:, 1], s=4, alpha=0.4, color="C0", label=f"training images (corr {corr:+.2f})")
        ax.axhline(0, color="k", lw=0.6)
        ax.axvline(0, color="k", lw=0.6)
        ax.set(title=f"{title}\nvar {cov[0, 0]:.3g}, {cov[1, 1]:.3g}", xlabel=f"first: {units[title]}",
               ylabel=f"second: {units[title]}")
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"Digits, pixels {PIXELS[0]} and {PIXELS[1]} (row 3, columns 3-4) of each training image: "
                 "per-channel normalisation, then PCA decorrelation and whitening")
    save_figure(fig, out, "preprocess_scatter.png", result)


def _model(kind: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    if kind == "linear":
        return nn.Linear(64, 10)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


def training_table(xtr, ytr, xte, yte, *, epochs: int, lrs: tuple[float, ...], seed: int,
                   step: Callable[[str], None] = lambda _: None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per (model, preprocessing, lr): the training loss of every epoch, and the final numbers."""
    transforms = fit_transforms(xtr)
    curves, finals = [], []
    steps = -(-len(xtr) // 64)
    for kind in ("linear", "mlp"):
        for name, f in transforms.items():
            a, b = f(xtr).float(), f(xte).float()
            for lr in lrs:
                step(f"{kind}, {name}, lr {lr:g}")
                model = _model(kind, seed)
                losses = train(model, a, ytr, Budget(epochs=epochs, batch=64, lr=lr), seed=seed)
                per_epoch = epoch_means(losses, steps)
                curves += [{"model": kind, "preprocessing": name, "lr": lr, "epoch": e + 1, "train_loss": v}
                           for e, v in enumerate(per_epoch)]
                diverged = not np.isfinite(losses[-1])
                tr = (float("nan"), float("nan")) if diverged else evaluate(model, a, ytr)
                te = (float("nan"), float("nan")) if diverged else evaluate(model, b, yte)
                finals.append({"model": kind, "preprocessing": name, "lr": lr, "diverged": diverged,
                               "first_epoch_loss": per_epoch[0], "final_train_loss": tr[0],
                               "train_accuracy": tr[1], "test_accuracy": te[1]})
    return pd.DataFrame(curves), pd.DataFrame(finals)


@torch.no_grad()
def weight_sensitivity(xtr: torch.Tensor, ytr: torch.Tensor, *, sigma: float = 0.01, draws: int = 20,
                       seed: int = 0) -> pd.DataFrame:
    """The lecture's "loss very sensitive to small changes in the weights", measured.

    For the same linear classifier W0 (seeded init) on each version of the data, the mean
    |L(W0 + delta) - L(W0)| over ``draws`` perturbations delta ~ N(0, sigma^2) of every weight.
    A logit moves by delta . x, whose std is sigma * ||x||: large, off-centre inputs amplify it.
    """
    rows = []
    for name, f in fit_transforms(xtr).items():
        a = f(xtr).float()
        model = _model("linear", seed)
        base = nn.functional.cross_entropy(model(a), ytr).item()
        gen = torch.Generator().manual_seed(seed)
        w0 = model.weight.clone()
        changes = []
        for _ in range(draws):
            model.weight.copy_(w0 + sigma * torch.randn(w0.shape, generator=gen))
            changes.append(abs(nn.functional.cross_entropy(model(a), ytr).item() - base))
        rows.append({"preprocessing": name, "mean_input_norm": a.norm(dim=1).mean().item(),
                     "mean_abs_loss_change": float(np.mean(changes))})
    return pd.DataFrame(rows)


def _plot_training(curves: pd.DataFrame, finals: pd.DataFrame, lr: float, out: Path, result: ExperimentResult) -> None:
    fig, axes = new_figure(2, 2, size=(12, 8.5))
    for col, kind in enumerate(("linear", "mlp")):
        label = "softmax regression 64-10" if kind == "linear" else "MLP 64-128-10"
        ax = axes[0][col]
        d = curves[(curves.model == kind) & (curves.lr == lr)]
        for i, (name, c) in enumerate(d.groupby("preprocessing", sort=False)):
            ax.plot(c.epoch, c.train_loss, marker="o", color=f"C{i}", label=name)
        ax.set(title=f"{label}: SGD lr {lr}, momentum 0.9", xlabel="epoch",
               ylabel="mean training cross-entropy of the epoch (nats)")
        ax = axes[1][col]
        d = finals[finals.model == kind]
        for i, (name, c) in enumerate(d.groupby("preprocessing", sort=False)):
            ax.plot(c.lr, c.final_train_loss, marker="o", color=f"C{i}", label=name)
        ax.set_xscale("log")
        ax.set(title=f"{label}: final training loss against the learning rate", xlabel="SGD learning rate",
               ylabel="training cross-entropy after the budget (nats)")
        for ax in (axes[0][col], axes[1][col]):
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle("Effect of preprocessing on training (digits; same init, batches and steps for every curve)")
    save_figure(fig, out, "preprocess_training_loss.png", result)


def run(out: Path | None = None, *, quick: bool = False, seed: int = 0) -> ExperimentResult:
    seed_everything(seed)
    xtr, ytr, xte, yte = raw_digits(seed)
    lrs = (0.01, 0.1) if quick else (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
    with progress_steps("preprocess", 2 * len(fit_transforms(xtr)) * len(lrs) + 1) as step:
        curves, finals = training_table(xtr, ytr, xte, yte, epochs=3 if quick else 5, lrs=lrs, seed=seed, step=step)
        step("pixel pairs and the loss's sensitivity to the weights")
        views = _pair_views(xtr)
        sens = weight_sensitivity(xtr, ytr, seed=seed)
    pair_stats = pd.DataFrame([{"view": k, "mean_0": float(v[:, 0].mean()), "mean_1": float(v[:, 1].mean()),
                                "var_0": float(v[:, 0].var()), "var_1": float(v[:, 1].var()),
                                "corr": float(np.corrcoef(v.numpy().T)[0, 1])} for k, v in views.items()])
    result = ExperimentResult("preprocess", tables={"pair_stats": pair_stats, "sensitivity": sens,
                                                    "final": finals, "curves": curves})
    whitened = fit_transforms(xtr)["PCA-whitened"](xtr)
    cov_w = torch.cov(whitened.T)
    lam = torch.linalg.eigvalsh(torch.cov(xtr.T))
    result.summary = {
        "raw_mean": float(xtr.mean()), "raw_std": float(xtr.std(unbiased=False)),
        "pixel_pair_corr_original": float(pair_stats["corr"].iloc[0]),
        "pixel_pair_corr_decorrelated": float(pair_stats["corr"].iloc[3]),
        "whitened_cov_max_offdiag": float((cov_w - torch.diag(torch.diag(cov_w))).abs().max()),
        "raw_cov_condition_number_nonzero": float(lam[lam > 1e-9].max() / lam[lam > 1e-9].min()),
    }
    for _, r in sens.iterrows():
        result.summary[f"loss_change_under_weight_noise[{r.preprocessing}]"] = float(r.mean_abs_loss_change)
    for (kind, name), d in finals.groupby(["model", "preprocessing"], sort=False):
        best = d.loc[d.final_train_loss.idxmin()]
        result.summary[f"best_lr[{kind}|{name}]"] = float(best.lr)
        result.summary[f"best_final_train_loss[{kind}|{name}]"] = float(best.final_train_loss)
        for _, r in d.iterrows():
            result.summary[f"first_epoch_loss[{kind}|{name}|lr={r.lr:g}]"] = float(r.first_epoch_loss)
    result.notes += ["all statistics (means, std, PCA) from the training split only",
                     f"whitening adds eps = {EPS} to the eigenvalues (normalised units)",
                     "diverged runs (non-finite loss) have NaN final numbers"]
    if out is not None:
        _plot_scatter(views, out, result)
        _plot_training(curves, finals, 0.1, out, result)
    save_numbers(result, out)
    return result
