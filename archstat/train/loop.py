"""``archstat train``'s loop: minibatch SGD/Adam/AdamW/RMSprop with a per-iteration schedule, EMA, checkpoints.

Each iteration: augment (seeded), forward (optionally under autocast, channels-last), cross-entropy
(soft labels after Mixup/CutMix), backward (DDP averages gradients across ranks), optional gradient
clipping, optimizer step, scheduler step, EMA update (:mod:`archstat.train.ema`, decay warmed up).
After every epoch: validation, one CSV row, the curves PNG and the checkpoints ``--save`` asks for
(:mod:`archstat.train.checkpoint`).  The time per step is the mean wall time of an iteration
(augment + forward + backward + update, GPU synchronised), measured after ``WARMUP_STEPS``.
"""
from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archstat.errors import ArchstatError
from archstat.files import write_text
from archstat.train import dist as D
from archstat.train.checkpoint import wanted
from archstat.train.data import Splits, batch_stream
from archstat.train.engine import correct, evaluate, freeze_batchnorm, progress_bar
from archstat.train.metrics import MetricsCSV, plot_curves
from archstat.train.state import LoopState, prepare, resume, save_epoch, summarise, train_step

PLOT_EVERY_S = 30.0  # redraw curves.png at epoch ends at most this often (always at the end)


@dataclass
class TrainConfig:
    model: str
    data: str = "digits"
    input_shape: tuple[int, ...] | None = None
    epochs: int = 10
    batch: int = 64  # per process under torchrun
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    decay_norm_and_bias: bool = False  # weight decay on biases and normalisation weights too
    schedule: str = "cosine"
    cycles: int = 1
    warmup: int = 0
    augment: str = ""
    label_smoothing: float = 0.0
    ema: float | None = None
    ema_warmup: bool = True  # decay min(d, (1+t)/(10+t)); False: the fixed decay from step 0
    clip_grad: float | None = None  # max global gradient norm
    amp: bool = False  # autocast: bf16 on CPU, fp16 (with loss scaling) on CUDA
    channels_last: bool = False
    stochastic_depth: float = 0.0  # zoo ResNets: residual branches dropped per sample, 0 -> P over the blocks
    sync_bn: bool = False  # SyncBatchNorm under DDP (GPU ranks); a notice and no-op in one process
    save: str = "best"  # best | last | all | none
    out: str | None = None
    device: str = "auto"
    seed: int = 0
    resume: bool = False
    max_steps: int | None = None  # caps the planned iterations (the schedule spans them)
    stop_after: int | None = None  # stop after this many epochs, schedule unchanged (resume later)
    classes: list[int] | None = None
    train_per_class: int | None = None
    model_kw: dict[str, Any] = field(default_factory=dict)
    quiet: bool = False
    freeze_bn: bool = False  # BatchNorm in eval mode while training (transfer learning)
    threads: int | None = None  # torch intra-op threads; 1 is fastest for small models on a busy CPU
    workers: int = 0  # DataLoader processes decoding an image folder (digits stay in memory)


@dataclass
class Run:
    """What a training run leaves in memory: the trained model(s) and the summary it wrote."""

    model: nn.Module
    ema_model: nn.Module | None
    splits: Splits
    summary: dict[str, Any]
    snapshots: list[dict[str, torch.Tensor]] = field(default_factory=list)


def train(cfg: TrainConfig, splits: Splits | None = None, model: nn.Module | None = None,
          env: D.DistEnv | None = None) -> Run:
    """Train ``cfg.model`` on ``cfg.data``; write CSV/PNG/checkpoints/summary to ``cfg.out`` if given."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    own_env = env is None
    env = env or D.setup(cfg.device)
    try:
        return _train(cfg, splits, model, env)
    finally:
        if own_env:
            D.cleanup(env)


def _say_stale_checkpoints(out: Path, save: str, epochs: int) -> None:
    """A new run into a folder that holds an earlier run's checkpoints, which this run will not write
    again (``best.pt`` under ``--save last``, ``epoch_K.pt`` beyond this run's epochs): one notice naming
    them (``evaluate --checkpoint OUT/best.pt`` would score the old model).  They are left where they
    are, since nothing the user had is removed.  (Snapshots are rewritten by the run that makes them.)"""
    stale = []
    for path in sorted(out.glob("*.pt")):
        epoch = re.fullmatch(r"epoch_(\d+)\.pt", path.name)
        kind = {"best.pt": "best", "last.pt": "last"}.get(path.name, "epoch" if epoch else None)
        if kind is not None and (not wanted(save, kind) or (epoch is not None and int(epoch.group(1)) > epochs)):
            stale.append(path.name)
    if stale:
        print(f"archstat: notice: {out} holds {', '.join(stale)} from an earlier run, which this run "
              f"(--save {save}) does not replace", file=sys.stderr)


def _train(cfg: TrainConfig, splits: Splits | None, model: nn.Module | None, env: D.DistEnv) -> Run:
    st = prepare(cfg, splits, model, env)
    out = Path(cfg.out) if cfg.out else None
    if out and env.main:
        out.mkdir(parents=True, exist_ok=True)
        if not cfg.resume:
            _say_stale_checkpoints(out, cfg.save, cfg.epochs)
    if cfg.resume:
        resume(st, cfg, out, env)
    log = MetricsCSV(out / "metrics.csv", resume_step=st.step if cfg.resume else None) if out and env.main else None
    bar = progress_bar(st.total, st.step, cfg.quiet or not env.main)
    t_run = last_plot = time.perf_counter()
    for epoch in range(st.start_epoch, cfg.epochs):
        if st.step >= st.total or (cfg.stop_after is not None and epoch >= cfg.stop_after):
            break
        row = _epoch(st, cfg, epoch, env, bar, log)
        if not cfg.quiet and env.main:
            bar.write(_epoch_line(epoch + 1, cfg.epochs, row))
        st.best_val, improved = max(st.best_val, st.val_acc), st.val_acc > st.best_val
        if out and env.main:
            log.flush()
            save_epoch(st, cfg, out, epoch + 1, improved)
            if time.perf_counter() - last_plot > PLOT_EVERY_S:  # matplotlib is slow next to tiny epochs
                plot_curves(out / "metrics.csv", out / "curves.png", title=f"{cfg.model} on {cfg.data}")
                last_plot = time.perf_counter()
    bar.close()
    wall = time.perf_counter() - t_run
    if log:
        log.close()
        plot_curves(out / "metrics.csv", out / "curves.png", title=f"{cfg.model} on {cfg.data}")
    summary = summarise(st, cfg, env, wall)
    if out and env.main:
        write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return Run(st.model, st.ema.module if st.ema is not None else None, st.splits, summary, st.snapshots)


def _epoch_line(epoch: int, epochs: int, row: dict[str, Any]) -> str:
    """The line kept on screen after each epoch (the bar itself is redrawn in place)."""
    ema = f", val acc EMA {100 * row['val_acc_ema']:.2f}%" if "val_acc_ema" in row else ""
    return (f"epoch {epoch}/{epochs}: train loss {row['train_loss']:.4f}, train acc {100 * row['train_acc']:.2f}%, "
            f"val loss {row['val_loss']:.4f}, val acc {100 * row['val_acc']:.2f}%{ema}, {row['epoch_s']:.1f} s")


def _epoch(st: LoopState, cfg: TrainConfig, epoch: int, env: D.DistEnv, bar, log: MetricsCSV | None) -> dict[str, Any]:
    """One pass over this rank's shard of the training split; returns the epoch's summary row."""
    st.net.train()
    if cfg.freeze_bn:
        freeze_batchnorm(st.net)
    t_epoch, seen, loss_sum, corr_sum = time.perf_counter(), 0, 0.0, 0.0
    batches = list(st.batches(epoch))
    row: dict[str, Any] = {}
    # in memory (digits) or decoded by cfg.workers DataLoader processes while the model trains (a folder)
    for i, (idx, (x, y)) in enumerate(zip(batches, batch_stream(st.splits.train, batches, cfg.workers))):
        if st.step >= st.total:
            break
        loss_v, logits, y, lr = train_step(st, cfg, x, y)
        c, n = correct(logits.detach().float(), y), len(idx)
        seen, loss_sum, corr_sum = seen + n, loss_sum + loss_v * n, corr_sum + c
        row = {"step": st.step, "epoch": epoch + 1, "lr": lr, "loss": loss_v, "acc": c / n}
        if st.step >= st.total or i == len(batches) - 1:
            st.val_loss, st.val_acc = evaluate(st.model, st.splits.val, device=env.device)
            row.update(train_loss=loss_sum / seen, train_acc=corr_sum / seen, val_loss=st.val_loss,
                       val_acc=st.val_acc, epoch_s=time.perf_counter() - t_epoch)
            if st.ema is not None:
                row["val_loss_ema"], row["val_acc_ema"] = evaluate(st.ema.module, st.splits.val, device=env.device)
        if log:
            log.write(row)
        bar.update(1)
        bar.set_postfix(epoch=epoch + 1, loss=f"{loss_v:.3f}", lr=f"{lr:.2g}",
                        val=f"{st.val_acc:.3f}" if st.val_acc == st.val_acc else "-")
    if "val_acc" not in row:
        raise ArchstatError(f"epoch {epoch + 1} ran no iteration (training split of {len(st.splits.train)} images)")
    return row
