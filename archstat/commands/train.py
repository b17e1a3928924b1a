"""``archstat train MODEL --data digits|PATH ...``: train with the lecture's recipe, checks and after-training tools.

Plain: trains and writes ``metrics.csv``, ``curves.png``, ``last.pt``/``best.pt`` and
``summary.json`` under ``--out``; prints the test accuracy and time per step.  Runs unchanged under
``torchrun --nproc_per_node N`` (DistributedDataParallel; ``--batch`` is per process).
Sanity checks (``--check-init-loss``, ``--overfit-small``, ``--lr-range``, ``--recipe``) and the
curve reading (``--diagnose CSV``) run instead of training; ``--ensemble``, ``--snapshots`` and
``--transfer`` train and compare with a single model on the same test split; ``--ema`` and ``--tta``
are reported beside the plain run's own test accuracy.

Several processes: ``torchrun --standalone --nproc_per_node 2 -m archstat train MODEL ...`` (one
machine) or ``torchrun --nnodes 2 --node_rank K --rdzv-endpoint HOST:PORT --nproc_per_node G -m
archstat train ...`` (several); the logged loss is the mean over ranks.
"""
from __future__ import annotations

import argparse
import math

from archstat.commands._common import float_in, nonneg_int, parse_input, positive_int
from archstat.commands import summary
from archstat.errors import ArchstatError


def _input(text: str) -> tuple[int, ...]:
    try:
        return parse_input(text)
    except ArchstatError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _classes(text: str) -> list[int]:
    try:
        classes = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated class indices, got {text!r}") from None
    if len(set(classes)) < 2:  # one class is no classification: 100% accuracy, a 1x1 confusion matrix
        raise argparse.ArgumentTypeError(f"a classifier needs at least 2 classes, got {text!r}")
    return classes


def add_train_args(p: argparse.ArgumentParser) -> None:
    """The options every training run shares (also used by ``archstat search``)."""
    p.add_argument("model", metavar="MODEL", help="zoo name (see `archstat list`) or package.module:callable")
    p.add_argument("--data", default="digits", help="digits (scikit-learn, no download) or an ImageFolder directory")
    p.add_argument("--input", type=_input, default=None, metavar="CxHxW",
                   help="input per sample (default: the model's smallest, at least 32x32; C=1 for digits)")
    p.add_argument("--epochs", type=positive_int, default=10, help="passes over the training split (default 10)")
    p.add_argument("--batch", type=positive_int, default=64, help="minibatch per process (default 64)")
    p.add_argument("--optimizer", default="sgd", help="sgd (momentum), adam, adamw or rmsprop")
    p.add_argument("--lr", type=float_in(0, math.inf), default=0.05, help="peak learning rate, after any warm-up (default 0.05)")
    p.add_argument("--momentum", type=float_in(0, 1, hi_open=True), default=0.9, help="SGD momentum (default 0.9)")
    p.add_argument("--weight-decay", type=float, default=5e-4,
                   help="L2 weight decay, not on biases and norm weights unless --decay-norm-and-bias (default 5e-4)")
    p.add_argument("--decay-norm-and-bias", action="store_true",
                   help="weight decay on biases and normalisation weights too (default: not on them)")
    p.add_argument("--schedule", default="cosine",
                   help="constant, step, cosine, linear, inverse-sqrt or cyclic (per iteration)")
    p.add_argument("--cycles", type=positive_int, default=1, help="cycles of the cyclic schedule")
    p.add_argument("--warmup", type=nonneg_int, default=0, metavar="ITERS", help="linear LR warm-up iterations")
    p.add_argument("--augment", default="", metavar="LIST",
                   help="e.g. flip,crop=2,rrc=0.35,scale,jitter=0.4,cutout=8,randaug=2:9,mixup=0.2,cutmix=1; "
                        "pca=0.1 on colour images")
    p.add_argument("--label-smoothing", type=float_in(0, 1, hi_open=True), default=0.0, metavar="EPS",
                   help="targets (1 - EPS) on the label, EPS spread over all classes (default 0)")
    p.add_argument("--ema", type=float, default=None, metavar="DECAY",
                   help="keep Polyak/EMA weights, e.g. 0.995 (decay warmed up as min(DECAY, (1+t)/(10+t)))")
    p.add_argument("--no-ema-warmup", dest="ema_warmup", action="store_false", help="fixed EMA decay from step 0")
    p.add_argument("--clip-grad", type=float, default=None, metavar="NORM", help="clip the global gradient norm")
    p.add_argument("--amp", action="store_true", help="mixed precision: bf16 autocast on CPU, fp16 on CUDA")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format for model and batches")
    p.add_argument("--stochastic-depth", type=float, default=0.0, metavar="P",
                   help="zoo ResNets: drop each residual branch per sample in training, probability 0 -> P over the blocks")
    p.add_argument("--sync-bn", action="store_true",
                   help="under torchrun with GPU ranks: SyncBatchNorm (statistics over all ranks); no-op in one process")
    p.add_argument("--classes", type=_classes, default=None, help="train on these classes only, e.g. 0,1,2,3,4")
    p.add_argument("--train-per-class", type=positive_int, default=None, metavar="N", help="a small training split")
    p.add_argument("--model-kw", action="append", default=[], metavar="NAME=VALUE",
                   help="extra keyword for the model builder, e.g. aux_logits=False (repeatable)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.add_argument("--workers", type=nonneg_int, default=0, metavar="N",
                   help="DataLoader processes decoding an image folder's batches (default 0: this process; "
                        "digits stay in memory)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=positive_int, default=None, help="cap the iterations (schedule spans them)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a model on digits or an image folder (curves, checkpoints, checks)",
                              description=summary(__doc__),
                              epilog="several processes: torchrun --standalone --nproc_per_node N -m archstat train "
                                     "MODEL ... (one machine; --batch is per process); across machines add --nnodes, "
                                     "--node_rank and --rdzv-endpoint HOST:PORT")
    add_train_args(p)
    p.add_argument("--out", default=None, help="output folder (default runs/MODEL)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--save", default="best", metavar="WHICH",
                   help="checkpoints: best (best.pt + last.pt, default), last, all (also epoch_K.pt), none")
    p.add_argument("--stop-after", type=positive_int, default=None, metavar="EPOCHS",
                   help="stop after this many epochs, schedule unchanged (continue with --resume)")
    g = p.add_argument_group("sanity checks (run instead of training)")
    g.add_argument("--check-init-loss", action="store_true", help="initial loss within 10%% of ln C, weight decay off")
    g.add_argument("--overfit-small", type=int, nargs="?", const=5, default=None, metavar="BATCHES",
                   help="reach 100%% train accuracy on 5-10 minibatches, regularisation off")
    g.add_argument("--lr-range", nargs="?", const="1e-5,1", default=None, metavar="LO,HI",
                   help="LR range test (default 1e-5,1: geometric sweep, stops when the loss diverges)")
    g.add_argument("--recipe", action="store_true", help="the lecture's steps 3-6 (find LR, coarse grid, train longer, curves)")
    g.add_argument("--diagnose", default=None, metavar="CSV", help="read a metrics CSV's curves as the lecture does")
    a = p.add_argument_group("after training (each against a single model on the same test split)")
    a.add_argument("--ensemble", type=positive_int, default=None, metavar="K", help="K independently trained models")
    a.add_argument("--snapshots", type=positive_int, default=None, metavar="K", help="K snapshots of one cyclic-LR run")
    a.add_argument("--transfer", action="store_true",
                   help="the lecture's 2x2 table: little/much digits 5-9 data x similar (digits 0-4)/different source")
    a.add_argument("--transfer-per-class", type=positive_int, default=5, metavar="N", help="'little data' (default 5)")
    a.add_argument("--transfer-draws", type=positive_int, default=1, metavar="K",
                   help="average the little-data cells over K random draws of the target images (default 1)")
    a.add_argument("--transfer-exemplar-steps", type=nonneg_int, default=None, metavar="N",
                   help="exemplar pre-training of the frozen-feature probe's source network, in batches "
                        "(default: the recipe chosen on validation; 0: the network trained on the source labels alone)")
    a.add_argument("--tta", action="store_true",
                   help="also score test-time augmentation built from --augment (and resize + centre crop)")
    p.set_defaults(func=run)


def config_from(args, **extra):
    """A ``TrainConfig`` from parsed arguments; unknown optimizer/schedule/--save are one-line errors."""
    from archstat.train.checkpoint import check_policy
    from archstat.train.loop import TrainConfig
    from archstat.train.optim import OPTIMIZERS, SCHEDULES, check_choice
    from archstat.train.setup import parse_model_kw

    check_choice("optimizer", args.optimizer, OPTIMIZERS)
    check_choice("schedule", args.schedule, SCHEDULES)
    if "save" not in extra:
        extra["save"] = check_policy(getattr(args, "save", "best"))
    return TrainConfig(
        model=args.model, data=args.data, input_shape=args.input, epochs=args.epochs, batch=args.batch,
        optimizer=args.optimizer, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
        schedule=args.schedule, cycles=args.cycles, warmup=args.warmup, augment=args.augment,
        label_smoothing=args.label_smoothing, ema=args.ema, device=args.device, seed=args.seed,
        max_steps=args.max_steps, classes=args.classes, train_per_class=args.train_per_class,
        model_kw=parse_model_kw(args.model_kw), quiet=args.quiet, threads=args.threads, workers=args.workers,
        decay_norm_and_bias=args.decay_norm_and_bias, ema_warmup=args.ema_warmup, clip_grad=args.clip_grad,
        amp=args.amp, channels_last=args.channels_last,
        stochastic_depth=args.stochastic_depth, sync_bn=args.sync_bn, **extra)


def run(args) -> int:
    if args.diagnose:
        from pathlib import Path

        from archstat.train.diagnose import diagnose

        if not Path(args.diagnose).is_file():
            raise ArchstatError(f"--diagnose: no file {args.diagnose!r}")
        for f in diagnose(args.diagnose):
            print(f"[{f.code}] {f.message}")
        return 0
    out = args.out or f"runs/{args.model.replace(':', '_').replace('/', '_')}"
    cfg = config_from(args, out=out, resume=args.resume, stop_after=args.stop_after)
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    checks = args.check_init_loss or args.overfit_small is not None or args.lr_range is not None or args.recipe
    if checks:
        from archstat.commands._train_actions import run_checks

        return run_checks(cfg, args)
    if args.ensemble or args.snapshots or args.transfer:
        from archstat.commands._train_actions import run_after

        return run_after(cfg, args)
    from archstat.commands._train_actions import run_plain

    return run_plain(cfg, tta=args.tta)

