"""``archstat train``'s loop: minibatch SGD/AdamW with a per-iteration schedule, EMA, checkpoints.

Each iteration: augment (seeded), forward, cross-entropy (soft labels after Mixup/CutMix),
backward (DDP averages gradients across ranks), optimizer step, scheduler step, EMA update

    theta_ema <- d * theta_ema + (1 - d) * theta      (Polyak averaging, the lecture's x_test)

via ``torch.optim.swa_utils.AveragedModel`` with BatchNorm buffers averaged too.  After every epoch:
validation, one CSV row, the curves PNG, ``last.pt`` (everything needed to resume) and ``best.pt``
(best validation accuracy).  The time per step is the mean wall time of an iteration (augment +
forward + backward + update, GPU synchronised), measured after ``WARMUP_STEPS``.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archstat.errors import ArchstatError
from archstat.train import dist as D
from archstat.train.augment import Augmenter, parse_augment
from archstat.train.data import Splits
from archstat.train.engine import correct, count_params, epoch_batches, evaluate, loss_of, take
from archstat.train.metrics import MetricsCSV, plot_curves
from archstat.train.optim import build_optimizer, build_scheduler, cycle_ends
from archstat.train.setup import build_model, check_input_fits, load_data

WARMUP_STEPS = 3
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
    schedule: str = "cosine"
    cycles: int = 1
    warmup: int = 0
    augment: str = ""
    label_smoothing: float = 0.0
    ema: float | None = None
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


@dataclass
class Run:
    """What a training run leaves in memory: the trained model(s) and the summary it wrote."""

    model: nn.Module
    ema_model: nn.Module | None
    splits: Splits
    summary: dict[str, Any]
    snapshots: list[dict[str, torch.Tensor]] = field(default_factory=list)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _progress(total: int, initial: int, disable: bool):
    from archstat.progress import progress

    return progress(total=total, initial=initial, disable=disable, unit="it")


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


def _train(cfg: TrainConfig, splits: Splits | None, model: nn.Module | None, env: D.DistEnv) -> Run:
    if cfg.epochs < 1 or cfg.batch < 1:
        raise ArchstatError(f"need --epochs >= 1 and --batch >= 1, got {cfg.epochs} and {cfg.batch}")
    splits = splits or load_data(cfg.data, cfg.input_shape, cfg.model, cfg.seed, cfg.classes, cfg.train_per_class)
    if model is None:
        model = build_model(cfg.model, splits.num_classes, splits.input_shape[0], cfg.seed, cfg.model_kw)
        check_input_fits(model, splits.input_shape, cfg.model)
    model = model.to(env.device)
    pipeline = parse_augment(cfg.augment, splits.num_classes, splits.denormalise(splits.train.tensors[0])) if cfg.augment else None
    augmenter = Augmenter(pipeline, splits.mean, splits.std, seed=cfg.seed + 1000 * env.rank) if pipeline else None
    opt = build_optimizer([p for p in model.parameters() if p.requires_grad], cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum)
    n_train = len(splits.train)
    per_epoch = sum(1 for _ in epoch_batches(n_train, cfg.batch, 0, cfg.seed, env.rank, env.world))
    total = per_epoch * cfg.epochs if cfg.max_steps is None else min(cfg.max_steps, per_epoch * cfg.epochs)
    sched = build_scheduler(opt, cfg.schedule, total, cycles=cfg.cycles, warmup=cfg.warmup)
    ema = None
    if cfg.ema is not None:
        if not 0.0 < cfg.ema < 1.0:
            raise ArchstatError(f"--ema decay must be in (0, 1), got {cfg.ema}")
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
    snap_at = set(cycle_ends(total, cfg.cycles)) if cfg.schedule == "cyclic" else set()
    out = Path(cfg.out) if cfg.out else None
    start_epoch, step, best_val, snapshots = 0, 0, -1.0, []
    if out and env.main:
        out.mkdir(parents=True, exist_ok=True)
    if cfg.resume:
        if out is None or not (out / "last.pt").exists():
            raise ArchstatError(f"--resume: no checkpoint {out / 'last.pt' if out else 'last.pt (no --out given)'}")
        ck = torch.load(out / "last.pt", map_location=env.device, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        if ema is not None and ck.get("ema") is not None:
            ema.load_state_dict(ck["ema"])
        if augmenter is not None and ck.get("aug_rng") is not None:
            augmenter.g.set_state(ck["aug_rng"].cpu())
        torch.set_rng_state(ck["torch_rng"].cpu())  # map_location may have moved it
        start_epoch, step, best_val = ck["epoch"], ck["step"], ck["best_val_acc"]
        snapshots = [torch.load(out / f"snapshot_{k}.pt", weights_only=True) for k in range(ck.get("n_snapshots", 0))]
    net = D.wrap(model, env)
    log = MetricsCSV(out / "metrics.csv", resume_step=step if cfg.resume else None) if out and env.main else None
    step_times: list[float] = []
    bar = _progress(total, step, cfg.quiet or not env.main)
    t_run = last_plot = time.perf_counter()
    sync = torch.cuda.synchronize if env.device.type == "cuda" else (lambda: None)
    val_loss = val_acc = float("nan")
    for epoch in range(start_epoch, cfg.epochs):
        if step >= total or (cfg.stop_after is not None and epoch >= cfg.stop_after):
            break
        net.train()
        if cfg.freeze_bn:
            from archstat.train.transfer import freeze_batchnorm

            freeze_batchnorm(net)
        t_epoch, seen, loss_sum, corr_sum = time.perf_counter(), 0, 0.0, 0.0
        for i, idx in enumerate(epoch_batches(n_train, cfg.batch, epoch, cfg.seed, env.rank, env.world)):
            if step >= total:
                break
            t0 = time.perf_counter()
            x, y = take(splits.train, idx)
            if augmenter is not None:
                x, y = augmenter(x, y)
            x, y = x.to(env.device, non_blocking=True), y.to(env.device, non_blocking=True)
            loss, logits = loss_of(net(x), y, cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            lr = opt.param_groups[0]["lr"]
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            sync()
            step += 1
            if step > WARMUP_STEPS:
                step_times.append(time.perf_counter() - t0)
            loss_v, n = loss.item(), len(idx)
            if not math.isfinite(loss_v):
                raise ArchstatError(f"loss became {loss_v} at iteration {step} (lr {lr:.3g} too high?)")
            c = correct(logits.detach(), y)
            seen, loss_sum, corr_sum = seen + n, loss_sum + loss_v * n, corr_sum + c
            if step in snap_at:
                snapshots.append(_cpu_state(model))
                if out and env.main:
                    torch.save(snapshots[-1], out / f"snapshot_{len(snapshots) - 1}.pt")
            row = {"step": step, "epoch": epoch + 1, "lr": lr, "loss": loss_v, "acc": c / n}
            last = step >= total or i == per_epoch - 1
            if last:
                val_loss, val_acc = evaluate(model, splits.val, device=env.device)
                row.update(train_loss=loss_sum / seen, train_acc=corr_sum / seen, val_loss=val_loss,
                           val_acc=val_acc, epoch_s=time.perf_counter() - t_epoch)
                if ema is not None:
                    row["val_loss_ema"], row["val_acc_ema"] = evaluate(ema.module, splits.val, device=env.device)
            if log:
                log.write(row)
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss_v:.3f}", lr=f"{lr:.2g}",
                            val=f"{val_acc:.3f}" if val_acc == val_acc else "-")
        if out and env.main:
            log.flush()
            if val_acc > best_val:
                best_val = val_acc
                torch.save(_cpu_state(model), out / "best.pt")
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                        "ema": ema.state_dict() if ema is not None else None, "epoch": epoch + 1, "step": step,
                        "best_val_acc": best_val, "torch_rng": torch.get_rng_state(),
                        "aug_rng": augmenter.g.get_state() if augmenter else None,
                        "n_snapshots": len(snapshots), "config": asdict(cfg)}, out / "last.pt")
            if time.perf_counter() - last_plot > PLOT_EVERY_S:  # matplotlib is slow next to tiny epochs
                plot_curves(out / "metrics.csv", out / "curves.png", title=f"{cfg.model} on {cfg.data}")
                last_plot = time.perf_counter()
        best_val = max(best_val, val_acc)
    bar.close()
    wall = time.perf_counter() - t_run
    if log:
        log.close()
        plot_curves(out / "metrics.csv", out / "curves.png", title=f"{cfg.model} on {cfg.data}")
    summary = _summarise(cfg, model, ema, splits, env, step, total, step_times, wall, best_val, net)
    if out and env.main:
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return Run(model, ema.module if ema is not None else None, splits, summary, snapshots)


def _summarise(cfg, model, ema, splits, env, step, total, step_times, wall, best_val, net) -> dict[str, Any]:
    test_loss, test_acc = evaluate(model, splits.test, device=env.device)
    summary: dict[str, Any] = {
        "model": cfg.model, "data": cfg.data, "input": list(splits.input_shape), "params": count_params(model),
        "train/val/test": [len(splits.train), len(splits.val), len(splits.test)],
        "epochs": cfg.epochs, "steps": step, "planned_steps": total, "batch_per_process": cfg.batch,
        "world_size": env.world, "device": str(env.device),
        "final_val_acc": evaluate(model, splits.val, device=env.device)[1], "best_val_acc": best_val,
        "test_loss": test_loss, "test_acc": test_acc,
        "time_per_step_s": sum(step_times) / len(step_times) if step_times else None,
        "wall_s": wall,
    }
    if ema is not None:
        summary["test_acc_ema"] = evaluate(ema.module, splits.test, device=env.device)[1]
    if env.distributed:
        summary["rank"] = env.rank
        summary["rank_param_max_diff"] = D.max_param_diff(net, env)
    return summary
