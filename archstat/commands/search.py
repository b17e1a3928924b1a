"""``archstat search MODEL --mode random|grid``: hyper-parameter search over LR and weight decay.

Random: ``--trials N`` pairs drawn log-uniformly from ``--lr-range`` and ``--wd-range`` (the
lecture's example: both in [1e-4, 1e-1]).  Grid: every pair of ``--lrs`` x ``--wds``.  Each trial
trains ``--epochs`` epochs; results (best first, by validation accuracy) go to a table on stdout,
``results.csv`` and ``search.png`` under ``--out``.
"""
from __future__ import annotations

import argparse

from archstat.commands import summary


def _floats(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not vals:
        raise argparse.ArgumentTypeError("expected at least one number")
    return vals


def _range(text: str) -> tuple[float, float]:
    vals = _floats(text)
    if len(vals) != 2 or not 0 < vals[0] < vals[1]:
        raise argparse.ArgumentTypeError(f"expected LO,HI with 0 < LO < HI, got {text!r}")
    return vals[0], vals[1]


def register(subparsers) -> None:
    from archstat.commands.train import add_train_args

    p = subparsers.add_parser("search", help="random or grid search over learning rate and weight decay",
                              description=summary(__doc__))
    add_train_args(p)
    p.set_defaults(epochs=2)
    p.add_argument("--mode", choices=("random", "grid"), default="random")
    p.add_argument("--trials", type=int, default=8, help="random search trials (default 8)")
    p.add_argument("--lr-range", type=_range, default=None, metavar="LO,HI",
                   help="random mode: LRs drawn log-uniformly in LO..HI (default 1e-4,1e-1)")
    p.add_argument("--wd-range", type=_range, default=None, metavar="LO,HI",
                   help="random mode: weight decays drawn log-uniformly in LO..HI (default 1e-4,1e-1)")
    p.add_argument("--lrs", type=_floats, default=None, metavar="A,B,...",
                   help="grid mode: the LRs (default 1e-4,1e-3,1e-2,1e-1)")
    p.add_argument("--wds", type=_floats, default=None, metavar="A,B,...",
                   help="grid mode: the weight decays (default 1e-4,1e-3,1e-2,1e-1)")
    p.add_argument("--out", default=None, help="output folder (default runs/search_MODEL)")
    p.set_defaults(func=run)


DEFAULT_RANGE = (1e-4, 1e-1)  # the lecture's example, for LR and weight decay alike
DEFAULT_GRID = [1e-4, 1e-3, 1e-2, 1e-1]


def run(args) -> int:
    from pathlib import Path

    from archstat.commands.train import config_from
    from archstat.errors import ArchstatError
    from archstat.train.search import format_table, grid_configs, plot_search, random_configs, run_search, write_results
    from archstat.train.setup import load_data

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    cfg = config_from(args)
    grid_flags = [f for f, v in (("--lrs", args.lrs), ("--wds", args.wds)) if v is not None]
    range_flags = [f for f, v in (("--lr-range", args.lr_range), ("--wd-range", args.wd_range)) if v is not None]
    if args.mode == "random":
        if grid_flags:  # silently ignored before
            raise ArchstatError(f"{' and '.join(grid_flags)} list the grid's values: add --mode grid, or give "
                                "--lr-range/--wd-range for a random search")
        if args.trials < 1:
            raise ArchstatError(f"--trials must be >= 1, got {args.trials}")
        configs = random_configs(args.trials, args.lr_range or DEFAULT_RANGE, args.wd_range or DEFAULT_RANGE,
                                 seed=args.seed)
    else:
        if range_flags:
            raise ArchstatError(f"{' and '.join(range_flags)} bound a random search: drop --mode grid, or give "
                                "--lrs/--wds for the grid")
        lrs, wds = args.lrs or DEFAULT_GRID, args.wds or DEFAULT_GRID
        if any(v <= 0 for v in lrs) or any(v < 0 for v in wds):
            raise ArchstatError("grid values need lr > 0 and weight decay >= 0")
        configs = grid_configs(lrs, wds)
    splits = load_data(cfg.data, cfg.input_shape, cfg.model, cfg.seed, cfg.classes, cfg.train_per_class)
    rows = run_search(cfg, splits, configs, progress=not args.quiet)
    out = Path(args.out or f"runs/search_{args.model.replace(':', '_')}")
    out.mkdir(parents=True, exist_ok=True)
    write_results(rows, out / "results.csv")
    plot_search(rows, out / "search.png", f"{args.mode} search, {args.model}, {cfg.epochs} epochs per trial")
    print(format_table(rows))
    print(f"wrote {out / 'results.csv'} and {out / 'search.png'}")
    return 0
