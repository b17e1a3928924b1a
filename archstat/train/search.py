"""Hyper-parameter search (random and grid) and the lecture's steps 3-6.

Random search (Bergstra & Bengio 2012) draws each trial's LR and weight decay log-uniformly:
``log10 lr ~ U(log10 lo, log10 hi)``, so every decade gets the same number of trials and, unlike
a grid, no trial repeats another's value of the parameter that matters most.  Grid search tries
every pair of the given lists.  Each trial is a short ``train`` run; all use the same data split
and the same seed, and are ranked by validation accuracy (the test split is never looked at).
"""
from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from archstat.train.data import Splits
from archstat.train.loop import TrainConfig, train
from archstat.files import replacing, write_figure

RESULT_FIELDS = ["trial", "lr", "weight_decay", "epochs", "val_acc", "best_val_acc", "train_loss", "time_per_step_s"]


def run_trial(base: TrainConfig, splits: Splits, trial: int, **overrides: Any) -> dict[str, Any]:
    """One short run with ``overrides`` applied to ``base``; returns a results-table row."""
    cfg = dataclasses.replace(base, out=None, resume=False, quiet=True, **overrides)
    run = train(cfg, splits=splits)
    s = run.summary
    loss = _final_train_loss(run)
    return {"trial": trial, "lr": cfg.lr, "weight_decay": cfg.weight_decay, "epochs": cfg.epochs,
            "val_acc": s["final_val_acc"], "best_val_acc": s["best_val_acc"], "train_loss": loss,
            "time_per_step_s": s["time_per_step_s"]}


def _final_train_loss(run) -> float:
    from archstat.train.engine import evaluate

    return evaluate(run.model, run.splits.train)[0]


def random_configs(n: int, lr_range: tuple[float, float], wd_range: tuple[float, float], seed: int = 0) -> list[dict]:
    """``n`` (lr, weight decay) pairs, each log-uniform in its range."""
    rng = np.random.default_rng(seed)
    lrs = 10 ** rng.uniform(math.log10(lr_range[0]), math.log10(lr_range[1]), n)
    wds = 10 ** rng.uniform(math.log10(wd_range[0]), math.log10(wd_range[1]), n)
    return [{"lr": float(a), "weight_decay": float(b)} for a, b in zip(lrs, wds)]


def grid_configs(lrs: Sequence[float], wds: Sequence[float]) -> list[dict]:
    return [{"lr": float(a), "weight_decay": float(b)} for a in lrs for b in wds]


def run_search(base: TrainConfig, splits: Splits, configs: list[dict], progress: bool = True) -> list[dict]:
    from archstat.progress import progress as bar

    rows = []
    for i, c in enumerate(bar(configs, disable=not progress, desc="trials")):
        rows.append(run_trial(base, splits, i, **c))
    return sorted(rows, key=lambda r: -r["val_acc"])


def write_results(rows: list[dict], path: Path) -> None:
    with replacing(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=RESULT_FIELDS)
        w.writeheader()
        w.writerows(rows)


def format_table(rows: list[dict]) -> str:
    """Markdown table, best first."""
    lines = ["| rank | lr | weight decay | epochs | val acc | best val acc | train loss | s/step |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for k, r in enumerate(rows, 1):
        lines.append(f"| {k} | {r['lr']:.3g} | {r['weight_decay']:.3g} | {r['epochs']} | {100 * r['val_acc']:.1f}% | "
                     f"{100 * r['best_val_acc']:.1f}% | {r['train_loss']:.3f} | {r['time_per_step_s'] or float('nan'):.4f} |")
    return "\n".join(lines)


def plot_search(rows: list[dict], path: Path, title: str = "") -> None:
    """The lecture's picture: trials in the (lr, weight decay) plane, coloured by validation accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 5))
    # weight decay 0 cannot sit on a log axis: draw it one decade below the smallest positive value
    pos = [r["weight_decay"] for r in rows if r["weight_decay"] > 0]
    floor = min(pos) / 10 if pos else 1e-6
    wd = [r["weight_decay"] if r["weight_decay"] > 0 else floor for r in rows]
    sc = ax.scatter([r["lr"] for r in rows], wd, c=[r["val_acc"] for r in rows], cmap="viridis", s=80,
                    edgecolors="k")
    best = rows[0]
    ax.scatter([best["lr"]], [best["weight_decay"] if best["weight_decay"] > 0 else floor], marker="*", s=300,
               c="red", label=f"best: lr {best['lr']:.2g}, wd {best['weight_decay']:.2g}")
    fig.colorbar(sc, label="validation accuracy")
    ax.set(xscale="log", yscale="log", xlabel="learning rate",
           ylabel="weight decay" + (f" (0 drawn at {floor:.0e})" if len(pos) < len(rows) else ""), title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    write_figure(fig, path, dpi=90)
