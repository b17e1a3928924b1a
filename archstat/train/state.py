"""The training loop's state and the steps that act on it: set-up, resume, one iteration, checkpoints, summary.

:mod:`archstat.train.loop` drives these; each is one concern so the loop reads as the lecture's
recipe (set up, iterate, validate, save).  The config is ``archstat.train.loop.TrainConfig``.
"""
from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from archstat.errors import ArchstatError
from archstat.train import dist as D
from archstat.train.augment import Augmenter, canonical_augment, parse_augment
from archstat.train.checkpoint import atomic_save, check_policy, load_checkpoint, wanted
from archstat.train.data import Splits
from archstat.train.ema import EMA
from archstat.train.engine import count_params, epoch_batches, evaluate, loss_of
from archstat.train.optim import build_optimizer, build_scheduler, cycle_ends, param_groups
from archstat.train.stochastic_depth import apply_stochastic_depth
from archstat.train.setup import build_model, check_input_fits, load_data

WARMUP_STEPS = 3


@dataclass
class LoopState:
    """Everything one training run carries from iteration to iteration (and into ``last.pt``)."""

    model: nn.Module
    net: nn.Module  # the model, DDP-wrapped under torchrun
    splits: Splits
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    batches: Callable[[int], Iterator[list[int]]]
    total: int
    augmenter: Augmenter | None = None
    ema: EMA | None = None
    scaler: Any = None
    snap_at: set[int] = field(default_factory=set)
    start_epoch: int = 0
    step: int = 0
    best_val: float = -1.0
    val_loss: float = float("nan")
    val_acc: float = float("nan")
    snapshots: list[dict[str, torch.Tensor]] = field(default_factory=list)
    snapshots_saved: int = 0  # how many of ``snapshots`` are on disk (an earlier run's files are overwritten)
    step_times: list[float] = field(default_factory=list)
    device: torch.device = torch.device("cpu")


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def prepare(cfg, splits: Splits | None, model: nn.Module | None, env: D.DistEnv) -> LoopState:
    """Data, model, augmenter, optimizer, schedule, EMA: a ready-to-run state at step 0."""
    if cfg.epochs < 1 or cfg.batch < 1:
        raise ArchstatError(f"need --epochs >= 1 and --batch >= 1, got {cfg.epochs} and {cfg.batch}")
    check_policy(cfg.save)
    if cfg.ema is not None and not 0.0 < cfg.ema < 1.0:
        raise ArchstatError(f"--ema decay must be in (0, 1), got {cfg.ema}")
    if cfg.clip_grad is not None and cfg.clip_grad <= 0:
        raise ArchstatError(f"--clip-grad must be > 0, got {cfg.clip_grad}")
    splits = splits or load_data(cfg.data, cfg.input_shape, cfg.model, cfg.seed, cfg.classes, cfg.train_per_class,
                                 cfg.workers)
    if model is None:
        model = build_model(cfg.model, splits.num_classes, splits.input_shape[0], cfg.seed, cfg.model_kw)
        check_input_fits(model, splits.input_shape, cfg.model)
    check_world(len(splits.train), env)
    if cfg.stochastic_depth:
        apply_stochastic_depth(model, cfg.stochastic_depth, cfg.model)
    if cfg.sync_bn:
        if not env.distributed:
            print(D.SYNC_BN_NOTICE, file=sys.stderr)
        model, _ = D.sync_batchnorm(model, env)
    model = model.to(env.device, memory_format=torch.channels_last if cfg.channels_last else torch.preserve_format)
    # only PCA lighting needs every training image at once (an image folder is otherwise never decoded whole)
    raw = splits.denormalise(splits.train.tensors[0]) if "pca" in cfg.augment else None
    pipeline = parse_augment(cfg.augment, splits.num_classes, raw) if cfg.augment else None
    opt = build_optimizer(param_groups(model, cfg.weight_decay, cfg.decay_norm_and_bias), cfg.optimizer, cfg.lr,
                          cfg.weight_decay, cfg.momentum)

    def batches(epoch: int) -> Iterator[list[int]]:
        return epoch_batches(len(splits.train), cfg.batch, epoch, cfg.seed, env.rank, env.world)

    per_epoch = sum(1 for _ in batches(0))
    total = per_epoch * cfg.epochs if cfg.max_steps is None else min(cfg.max_steps, per_epoch * cfg.epochs)
    sched = build_scheduler(opt, cfg.schedule, total, cycles=cfg.cycles, warmup=cfg.warmup)
    scaler = torch.amp.GradScaler("cuda") if cfg.amp and env.device.type == "cuda" else None
    return LoopState(
        model=model, net=D.wrap(model, env), splits=splits, opt=opt, sched=sched, batches=batches, total=total,
        augmenter=Augmenter(pipeline, splits.mean, splits.std, seed=cfg.seed + 1000 * env.rank) if pipeline else None,
        ema=EMA(model, cfg.ema, warmup=cfg.ema_warmup) if cfg.ema is not None else None, scaler=scaler,
        snap_at=set(cycle_ends(total, cfg.cycles)) if cfg.schedule == "cyclic" else set(), device=env.device)


def check_world(n_train: int, env: D.DistEnv) -> None:
    """Under torchrun each rank needs at least one training sample of its own.

    ``--batch`` is per process, so any world size works with any batch; but with fewer training
    samples than ranks, ``DistributedSampler`` would pad the shards with repeated samples.
    """
    if n_train < env.world:
        raise ArchstatError(f"torchrun with {env.world} processes needs at least {env.world} training samples, "
                            f"the training split has {n_train}")


# what a resumed run may set differently from the run it continues: where and how it runs, not what it learns
RESUME_MAY_CHANGE = frozenset({"resume", "stop_after", "save", "out", "device", "quiet", "threads", "workers",
                               "channels_last", "sync_bn"})  # memory layout; SyncBatchNorm is a no-op in one process


def _plain(value: Any) -> Any:
    """Tuples as lists, recursively: a config read back from a checkpoint compares equal to the live one."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _canonical(key: str, value: Any) -> Any:
    """A config value as the run uses it: an augmentation spec with its defaults filled in (``flip,crop``
    is ``flip,crop=2``), a data folder as its absolute path."""
    if key == "augment" and isinstance(value, str):
        return canonical_augment(value)
    if key == "data" and isinstance(value, str) and value != "digits":
        return str(Path(value).resolve())
    return _plain(value)


def check_same_run(saved: dict[str, Any], now: dict[str, Any], path: Path) -> None:
    """``--resume`` continues the run ``path`` holds, so everything it learns from must be as it was: the
    model, data, input, split seed, classes, batch, optimizer, schedule, augmentation ...  A change was a
    traceback (another model or optimizer), or a wrong number with no word (another input size read a
    16x16 run's weights at 32x32; another --seed trained on former validation images)."""
    changed = [k for k in now if k not in RESUME_MAY_CHANGE and k in saved
               and _canonical(k, saved[k]) != _canonical(k, now[k])]
    if changed:
        flag = {"model": "MODEL", "input_shape": "--input", "model_kw": "--model-kw"}
        shown = ", ".join(f"{flag.get(k, '--' + k.replace('_', '-'))} {saved[k]!r} (now {now[k]!r})" for k in changed)
        raise ArchstatError(f"--resume: {path} was trained with {shown}; resume with the run's own settings "
                            "or train into a new --out")


def resume(st: LoopState, cfg, out: Path | None, env: D.DistEnv) -> None:
    """Restore model, optimizer, schedule, EMA, RNGs and counters from ``out/last.pt``."""
    if out is None or not (out / "last.pt").exists():
        raise ArchstatError(f"--resume: no checkpoint {out / 'last.pt' if out else 'last.pt (no --out given)'}")
    ck = load_checkpoint(out / "last.pt", map_location=env.device)
    saved, now = dict(ck.get("config") or {}), asdict(cfg)
    if "input" in ck:  # the input as resolved, on both sides: no --input is the model's default input
        saved["input_shape"], now["input_shape"] = ck["input"], list(st.splits.input_shape)
    check_same_run(saved, now, out / "last.pt")
    try:
        st.model.load_state_dict(ck["model"])
        st.opt.load_state_dict(ck["optimizer"])
        st.sched.load_state_dict(ck["scheduler"])
    except (KeyError, RuntimeError, ValueError) as exc:  # a checkpoint from before configs were compared
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArchstatError(f"--resume: {out / 'last.pt'} does not fit this run ({first[:120]}); "
                            "train into a new --out") from None
    if st.ema is not None and ck.get("ema") is not None:
        st.ema.load_state_dict(ck["ema"])
    if st.augmenter is not None and ck.get("aug_rng") is not None:
        st.augmenter.g.set_state(ck["aug_rng"].cpu())
    torch.set_rng_state(ck["torch_rng"].cpu())  # map_location may have moved it
    st.start_epoch, st.step, st.best_val = ck["epoch"], ck["step"], ck["best_val_acc"]
    st.snapshots = [torch.load(out / f"snapshot_{k}.pt", weights_only=True) for k in range(ck.get("n_snapshots", 0))]
    st.snapshots_saved = len(st.snapshots)


def _autocast(cfg, device: torch.device):
    if not cfg.amp:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _backward_and_step(st: LoopState, cfg, loss: torch.Tensor) -> None:
    st.opt.zero_grad(set_to_none=True)
    if st.scaler is not None:
        st.scaler.scale(loss).backward()
        st.scaler.unscale_(st.opt)
    else:
        loss.backward()
    if cfg.clip_grad is not None:
        torch.nn.utils.clip_grad_norm_(st.model.parameters(), cfg.clip_grad)
    if st.scaler is not None:
        st.scaler.step(st.opt)
        st.scaler.update()
    else:
        st.opt.step()


def train_step(st: LoopState, cfg, x: torch.Tensor, y: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor, float]:
    """One iteration; returns (loss, logits, targets as used, the LR it ran at)."""
    t0 = time.perf_counter()
    if st.augmenter is not None:
        x, y = st.augmenter(x, y)
    x, y = x.to(st.device, non_blocking=True), y.to(st.device, non_blocking=True)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with _autocast(cfg, st.device):
        loss, logits = loss_of(st.net(x), y, cfg.label_smoothing)
    _backward_and_step(st, cfg, loss)
    lr = st.opt.param_groups[0]["lr"]
    st.sched.step()
    if st.ema is not None:
        st.ema.update(st.model)
    if st.device.type == "cuda":
        torch.cuda.synchronize()
    st.step += 1
    if st.step > WARMUP_STEPS:
        st.step_times.append(time.perf_counter() - t0)
    loss_v = D.mean_over_ranks(loss.detach().float())
    if not math.isfinite(loss_v):
        raise ArchstatError(f"loss became {loss_v} at iteration {st.step} (lr {lr:.3g} too high?)")
    if st.step in st.snap_at:
        st.snapshots.append(cpu_state(st.model))
    return loss_v, logits, y, lr


def save_epoch(st: LoopState, cfg, out: Path, epoch: int, improved: bool) -> None:
    """The checkpoints ``cfg.save`` asks for, each written atomically (rank 0 only)."""
    for k in range(st.snapshots_saved, len(st.snapshots)):  # each once; a file an earlier run left is replaced
        atomic_save(st.snapshots[k], out / f"snapshot_{k}.pt")
    st.snapshots_saved = len(st.snapshots)
    config = asdict(cfg)
    weights = {"model": cpu_state(st.model), "config": config, "epoch": epoch, "val_acc": st.val_acc,
               "classes": st.splits.class_names, "input": list(st.splits.input_shape),
               "mean": st.splits.mean, "std": st.splits.std}
    if improved and wanted(cfg.save, "best"):
        atomic_save(weights, out / "best.pt")
    if wanted(cfg.save, "epoch"):
        atomic_save(weights, out / f"epoch_{epoch}.pt")
    if wanted(cfg.save, "last"):
        atomic_save({**weights, "optimizer": st.opt.state_dict(), "scheduler": st.sched.state_dict(),
                     "ema": st.ema.state_dict() if st.ema is not None else None, "step": st.step,
                     "best_val_acc": st.best_val, "torch_rng": torch.get_rng_state(),
                     "aug_rng": st.augmenter.g.get_state() if st.augmenter else None,
                     "n_snapshots": len(st.snapshots)}, out / "last.pt")


def summarise(st: LoopState, cfg, env: D.DistEnv, wall: float) -> dict[str, Any]:
    """Final validation and test figures (EMA's after re-estimating its BatchNorm statistics)."""
    splits, model = st.splits, st.model
    test_loss, test_acc = evaluate(model, splits.test, device=env.device)
    summary: dict[str, Any] = {
        "model": cfg.model, "data": cfg.data, "input": list(splits.input_shape), "params": count_params(model),
        "train/val/test": [len(splits.train), len(splits.val), len(splits.test)],
        "epochs": cfg.epochs, "steps": st.step, "planned_steps": st.total, "batch_per_process": cfg.batch,
        "world_size": env.world, "device": str(env.device),
        "final_val_acc": evaluate(model, splits.val, device=env.device)[1], "best_val_acc": st.best_val,
        "test_loss": test_loss, "test_acc": test_acc,
        "time_per_step_s": sum(st.step_times) / len(st.step_times) if st.step_times else None,
        "wall_s": wall,
    }
    if st.ema is not None:
        st.ema.recompute_batchnorm(splits.train.tensors[0], batch=max(cfg.batch, 64))
        summary["ema_decay"], summary["ema_updates"] = cfg.ema, st.ema.updates
        summary["val_acc_ema"] = evaluate(st.ema.module, splits.val, device=env.device)[1]
        summary["test_acc_ema"] = evaluate(st.ema.module, splits.test, device=env.device)[1]
    if env.distributed:
        summary["rank"] = env.rank
        summary["rank_param_max_diff"] = D.max_param_diff(st.net, env)
    return summary
