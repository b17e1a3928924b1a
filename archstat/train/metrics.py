"""The metrics CSV and the loss/accuracy curves PNG.

One CSV row per iteration (``step, epoch, lr, loss, acc`` of that minibatch); the last row of each
epoch also carries the epoch's summary (running train loss/accuracy, validation loss/accuracy,
EMA validation accuracy, seconds).  The plot follows the lecture's advice: per-iteration losses are
noisy, so they are drawn as a scatter with a moving average ``m_t = mean(loss_{t-w+1..t})`` over
them, and train and validation curves share the same axes.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from archstat.files import write_figure

STEP_FIELDS = ["step", "epoch", "lr", "loss", "acc"]
EPOCH_FIELDS = ["train_loss", "train_acc", "val_loss", "val_acc", "val_loss_ema", "val_acc_ema", "epoch_s"]
FIELDS = STEP_FIELDS + EPOCH_FIELDS


class MetricsCSV:
    """Append-only CSV; on resume, rows after the checkpoint's step are dropped first."""

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = Path(path)
        rows: list[dict[str, str]] = []
        if resume_step is not None and self.path.exists():
            with self.path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        self.file = self.path.open("w", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=FIELDS)
        self.writer.writeheader()
        self.writer.writerows(rows)
        self.file.flush()

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow({k: _fmt(row.get(k)) for k in FIELDS})

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def moving_average(values, window: int):
    """Trailing mean over up to ``window`` points (shorter at the start): same length as ``values``."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def read_metrics(path: str | Path):
    """The CSV as a pandas DataFrame: ``steps`` (every row) and ``epochs`` (summary rows only)."""
    import pandas as pd

    from archstat.errors import ArchstatError

    try:
        df = pd.read_csv(path)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:  # a PNG, an empty file
        raise ArchstatError(f"{path} is not an archstat metrics CSV ({type(exc).__name__})") from None
    missing = [c for c in ("step", "epoch", "loss") if c not in df.columns]
    if missing:
        raise ArchstatError(f"{path} is not an archstat metrics CSV (missing columns {missing})")
    return df, df.dropna(subset=["val_acc"]) if "val_acc" in df.columns else df.iloc[0:0]


def plot_curves(csv_path: str | Path, png_path: str | Path, title: str = "") -> Path:
    """Loss (scatter + moving average, validation at epoch ends), accuracy, and LR against iterations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, epochs = read_metrics(csv_path)
    window = max(5, len(steps) // 25)
    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(1, 3, figsize=(15, 4.2))
    ax_loss.scatter(steps["step"], steps["loss"], s=4, alpha=0.3, color="tab:blue", label="train loss (per iteration)")
    ax_loss.plot(steps["step"], moving_average(steps["loss"], window), color="tab:blue",
                 label=f"train loss, moving average ({window})")
    if len(epochs):
        ax_loss.plot(epochs["step"], epochs["val_loss"], "o-", color="tab:orange", label="val loss")
        ax_acc.plot(epochs["step"], epochs["train_acc"], "o-", color="tab:blue", label="train acc (running)")
        ax_acc.plot(epochs["step"], epochs["val_acc"], "o-", color="tab:orange", label="val acc")
        if epochs["val_acc_ema"].notna().any():
            ax_acc.plot(epochs["step"], epochs["val_acc_ema"], "s--", color="tab:green", label="val acc (EMA)")
    finite = steps["loss"][steps["loss"].apply(math.isfinite)]
    if len(finite) and finite.max() > 20 * max(finite.median(), 1e-3):
        ax_loss.set_yscale("log")  # a diverging run would flatten everything else
    ax_loss.set(xlabel="iteration", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="iteration", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    ax_lr.plot(steps["step"], steps["lr"], color="tab:gray")
    ax_lr.set(xlabel="iteration", ylabel="learning rate", title="learning rate")
    for ax in (ax_loss, ax_acc):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return write_figure(fig, png_path, dpi=90)
