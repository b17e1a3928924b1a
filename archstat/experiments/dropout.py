"""Experiment ``dropout``: vanilla against inverted dropout, and the ensemble view.

Convention.  The lecture's ``p`` is the probability of KEEPING a unit; PyTorch's ``nn.Dropout(p)``
takes the probability of DROPPING it.  Here ``keep`` is the lecture's p and ``drop = 1 - keep``
is PyTorch's; the lecture's p = 0.5 is ``nn.Dropout(0.5)`` either way.

With a mask ``U ~ Bernoulli(keep)`` on the units h:

- vanilla dropout trains on ``h * U`` and predicts with ``h * keep``;
- inverted dropout (what ``nn.Dropout`` does) trains on ``h * U / keep`` and predicts with ``h``.

Both make the test-time output equal the expected training-time output, E_U[train(x)] = test(x),
exactly when the only thing after the mask is affine (E[W (h * U) + b] = W (h * keep) + b).
The lecture's 3-layer net has a ReLU after the first mask, so there the scaled test network is an
approximation of the ensemble average over the 2^n masks (Jensen gap); averaging M masks converges
to the ensemble like 1/sqrt(M), and the ensemble sits close to, not on, the scaled network.

The lecture's count of masks for a 4096-unit layer, 2^4096, is 10^1233 (4096 * log10 2 = 1233.0);
the note's "10^1023" is a typo.

Dropout as a regulariser (training vs validation, with and without): :mod:`archstat.experiments.dropout_gap`.
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
from archstat.experiments.dropout_gap import gap_table, plot_gap


class ThreeLayerNet(nn.Module):
    """The lecture's ``H1 = relu(W1 X + b1); H2 = relu(W2 H1 + b2); out = W3 H2 + b3``."""

    def __init__(self, d_in: int, hidden: int, d_out: int) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(d_in, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, d_out)
        for fc in (self.fc1, self.fc2, self.fc3):
            nn.init.kaiming_normal_(fc.weight, nonlinearity="relu")
            nn.init.uniform_(fc.bias, -0.1, 0.1)

    def forward(self, x: torch.Tensor, *, keep: float, mode: str, masks: tuple[bool, bool],
                gen: torch.Generator | None = None) -> torch.Tensor:
        """``mode``: "vanilla_train", "vanilla_test", "inverted_train", "inverted_test", "no_scaling".

        ``masks`` says which of the two hidden layers are dropped (the lecture drops both).
        "no_scaling" is the bug the lecture warns about: vanilla training, unscaled prediction.
        """
        h = torch.relu(self.fc1(x))
        h = _drop(h, keep, mode, gen) if masks[0] else h
        h = torch.relu(self.fc2(h))
        h = _drop(h, keep, mode, gen) if masks[1] else h
        return self.fc3(h)


def _drop(h: torch.Tensor, keep: float, mode: str, gen: torch.Generator | None) -> torch.Tensor:
    if mode == "vanilla_train":
        return h * (torch.rand(h.shape, generator=gen) < keep)  # drop!
    if mode == "vanilla_test":
        return h * keep  # NOTE: scale the activations
    if mode == "inverted_train":
        return h * (torch.rand(h.shape, generator=gen) < keep) / keep  # drop and scale. Notice / keep
    if mode in ("inverted_test", "no_scaling"):
        return h  # test time is unchanged
    raise ValueError(mode)


@torch.no_grad()
def convergence_table(net: ThreeLayerNet, x: torch.Tensor, *, keep: float, max_masks: int, seed: int,
                      chunk: int = 500) -> pd.DataFrame:
    """Relative error || mean of M training outputs - test output || / || test output || against M.

    Cases: inverted/vanilla dropout with one mask (before the last, affine layer: exact in
    expectation), and with both masks (the lecture's net: the ensemble view).
    """
    checkpoints = sorted({int(m) for m in np.unique(np.logspace(0, math.log10(max_masks), 25).round())})
    cases = {  # name: (train mode, test mode, masks)
        "inverted, 1 mask (before last layer)": ("inverted_train", "inverted_test", (False, True)),
        "vanilla, 1 mask (same masks: on the inverted curve)": ("vanilla_train", "vanilla_test", (False, True)),
        "inverted, 2 masks (lecture's net)": ("inverted_train", "inverted_test", (True, True)),
        "vanilla, 2 masks (lecture's net)": ("vanilla_train", "vanilla_test", (True, True)),
        "vanilla, 2 masks, test NOT scaled": ("vanilla_train", "no_scaling", (True, True)),
    }
    rows = []
    for case, (train_mode, test_mode, masks) in cases.items():
        gen = torch.Generator().manual_seed(seed)
        test = net(x, keep=keep, mode=test_mode, masks=masks)
        total, done = torch.zeros_like(test, dtype=torch.float64), 0
        for m in checkpoints:
            while done < m:  # many masks at once: repeat the batch, one mask per copy
                k = min(chunk, m - done)
                outs = net(x.repeat(k, 1), keep=keep, mode=train_mode, masks=masks, gen=gen)
                total += outs.view(k, *test.shape).double().sum(0)
                done += k
            mean = total / done
            err = (mean - test.double()).norm() / test.double().norm()
            rows.append({"case": case, "masks": m, "rel_error": err.item()})
    return pd.DataFrame(rows)


@torch.no_grad()
def ensemble_table(net: ThreeLayerNet, x: torch.Tensor, y: torch.Tensor, *, keep: float, max_masks: int,
                   seed: int) -> tuple[pd.DataFrame, float]:
    """Test accuracy of the mean softmax over M masks (the ensemble) against the scaled net's."""
    gen = torch.Generator().manual_seed(seed)
    scaled = net(x, keep=keep, mode="inverted_test", masks=(True, True))
    scaled_acc = (scaled.argmax(1) == y).float().mean().item()
    checkpoints = sorted({int(m) for m in np.unique(np.logspace(0, math.log10(max_masks), 13).round())})
    probs, logits, done, rows = torch.zeros_like(scaled), torch.zeros_like(scaled), 0, []
    for m in checkpoints:
        while done < m:
            out = net(x, keep=keep, mode="inverted_train", masks=(True, True), gen=gen)
            probs += out.softmax(1)
            logits += out
            done += 1
        rows.append({"masks": m, "ensemble_accuracy": ((probs.argmax(1) == y).float().mean().item()),
                     "agreement_with_scaled": (probs.argmax(1) == scaled.argmax(1)).float().mean().item(),
                     "logit_rel_error": ((logits / m - scaled).norm() / scaled.norm()).item()})
    return pd.DataFrame(rows), scaled_acc


def _plot_ensemble(df: pd.DataFrame, scaled_acc: float, out: Path | None, result: ExperimentResult) -> None:
    """Two quantities, two panels: the ensemble's accuracy, and how often it agrees with the scaled net."""
    fig, (acc, agree) = new_figure(1, 2, size=(12, 4.6))
    acc.semilogx(df.masks, 100 * df.ensemble_accuracy, marker="o", label="ensemble: mean softmax of M masks")
    acc.axhline(100 * scaled_acc, color="k", ls="--", label=f"scaled (test-time) net: {100 * scaled_acc:.1f}%")
    acc.set(title="Test accuracy", xlabel="number of dropout masks averaged, M", ylabel="test accuracy (%)")
    agree.semilogx(df.masks, 100 * df.agreement_with_scaled, marker="s", color="C1",
                   label="ensemble's class = scaled net's class")
    agree.axhline(100, color="k", ls=":", lw=1, label="full agreement")
    agree.set(title="Agreement with the scaled net", xlabel="number of dropout masks averaged, M",
              ylabel="test images where the two predict the same class (%)")
    for ax in (acc, agree):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("Dropout as an ensemble: trained 3-layer net (keep 0.5) on digits, test split")
    save_figure(fig, out, "dropout_ensemble.png", result)


def _plot(df: pd.DataFrame, keep: float, out: Path | None, result: ExperimentResult) -> None:
    fig, ax = new_figure(size=(7.5, 5))
    for i, (case, d) in enumerate(df.groupby("case", sort=False)):
        ax.loglog(d.masks, d.rel_error, marker=".", color=f"C{i}", label=case)
    m = df.masks.unique()
    first = df[df.case.str.startswith("inverted, 1")].rel_error.iloc[0]
    ax.loglog(m, first / np.sqrt(m), "k--", lw=1, label="slope 1/sqrt(M)")
    ax.set(title=f"Dropout: mean of M training outputs vs the test output (keep = {keep}, "
                 f"nn.Dropout(p={1 - keep:g}))",
           xlabel="number of dropout masks averaged, M",
           ylabel="relative error ||mean train - test|| / ||test|| (unitless)")
    ax.title.set_fontsize(10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, out, "dropout_convergence.png", result)


@torch.no_grad()
def torch_dropout_is_inverted(drop: float, n: int, seed: int) -> dict[str, float]:
    """``nn.Dropout(drop)`` in training mode: kept values are scaled by 1/(1 - drop), mean preserved."""
    torch.manual_seed(seed)
    y = nn.Dropout(drop).train()(torch.ones(n))
    kept = y[y != 0]
    return {"torch_kept_share": (y != 0).float().mean().item(), "torch_kept_value": kept.unique().tolist()[0],
            "torch_mean_output": y.mean().item()}


def run(out: Path | None = None, *, quick: bool = False, seed: int = 0) -> ExperimentResult:
    from archstat.train.data import digits_splits

    gen = seed_everything(seed)
    keep = 0.5  # the lecture's p (keep); PyTorch's p = 1 - keep
    max_masks = 1_000 if quick else 20_000
    epochs = 16 if quick else 30
    with progress_steps("dropout", 2 + 4 * epochs) as step:
        step("mean of M masks against the test output")
        net = ThreeLayerNet(64, 256, 10)
        x = torch.randn(8, 64, generator=gen)
        df = convergence_table(net, x, keep=keep, max_masks=max_masks, seed=seed)
        splits = digits_splits(input_shape=(1, 8, 8), seed=seed)
        gap, trained = gap_table(splits, epochs=epochs, seed=seed, step=step)
        step("the trained net as an ensemble of masks")
        xte, yte = splits.test.tensors
        ens, scaled_acc = ensemble_table(trained, xte.flatten(1), yte, keep=keep,
                                         max_masks=100 if quick else 1000, seed=seed)
    result = ExperimentResult("dropout", tables={"convergence": df, "ensemble": ens, "regularisation": gap})
    last = df[df.masks == df.masks.max()].set_index("case").rel_error
    final = gap[gap.epoch == epochs]
    result.summary = {
        "keep_probability_lecture_p": keep,
        "pytorch_dropout_p": 1 - keep,
        "masks": int(df.masks.max()),
        **{f"rel_error[{case}]": float(v) for case, v in last.items()},
        **torch_dropout_is_inverted(1 - keep, 200_000, seed),
        "log10_masks_4096_units": 4096 * math.log10(2),
        "digits_scaled_net_test_accuracy": scaled_acc,
        "digits_ensemble_test_accuracy": float(ens.ensemble_accuracy.iloc[-1]),
        "digits_ensemble_agreement_with_scaled": float(ens.agreement_with_scaled.iloc[-1]),
        "digits_single_mask_test_accuracy": float(ens.ensemble_accuracy.iloc[0]),
        "regularisation_epochs": epochs,
    }
    for r in final.itertuples():
        key = f"{r.setting}|{r.variant}"
        result.summary[f"train_accuracy[{key}]"] = float(r.train_accuracy)
        result.summary[f"val_accuracy[{key}]"] = float(r.val_accuracy)
        result.summary[f"accuracy_gap[{key}]"] = float(r.train_accuracy - r.val_accuracy)
        result.summary[f"loss_gap[{key}]"] = float(r.val_loss - r.train_loss)
    result.notes += [
        "lecture p = keep probability; PyTorch nn.Dropout(p) = drop probability",
        "one mask before an affine layer: E[train] = test exactly; the error falls like 1/sqrt(M)",
        "two masks (ReLU in between): the scaled net only approximates the ensemble mean (Jensen gap: "
        "large for the random net, small for the trained one, whose predictions agree with it)",
        "2^4096 = 10^1233 masks for a 4096-unit layer (the note's 10^1023 is a typo)",
        "regularisation: gap = training - validation accuracy (loss gap = validation - training loss) at the "
        "last epoch; training accuracy is against the labels trained on (the noisy ones in the noisy setting)",
    ]
    if out is not None:  # drawing is the slow part; skip it when nothing is written
        _plot(df, keep, out, result)
        _plot_ensemble(ens, scaled_acc, out, result)
        plot_gap(gap, out, result)
    save_numbers(result, out)
    return result
