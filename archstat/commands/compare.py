"""`archstat compare MODEL MODEL ...`: one row per model (params, MACs, memory, depth, errors)."""
from __future__ import annotations

import argparse

from archstat.commands._common import add_convention_arg, add_model_args, model_inputs

SORT_KEYS = ("model", "params", "macs", "flops", "act_bytes", "train_bytes_1", "train_bytes_n", "depth",
             "weight_layers", "top1_err", "top5_err", "ilsvrc_top5_err", "latency_ms")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare models side by side (params, FLOPs, memory, depth, errors)")
    add_model_args(p, many=True)
    add_convention_arg(p)
    p.add_argument("--format", choices=("text", "markdown", "csv", "json"), default="text")
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    p.add_argument("--sort", choices=SORT_KEYS, metavar="COLUMN",
                   help=f"sort rows by a column ({', '.join(SORT_KEYS)}); missing values last")
    p.add_argument("--descending", action="store_true", help="with --sort: largest first")
    p.add_argument("--plot", metavar="FILE.png", help="also draw params, GFLOPs, memory and depth as bars")
    p.add_argument("--gpu-results", default=None, metavar="DIR",
                   help="folder of bench/gpu_run.sh results (one CARD/runs.csv per card) for the latency column "
                        "(default: reports/gpu where there is one)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from archstat.reporting.compare import compare
    from archstat.reporting.compare_format import FORMATTERS
    from archstat.errors import ArchstatError

    if args.plot and not args.plot.lower().endswith(".png"):
        raise ArchstatError(f"--plot {args.plot!r}: give a .png file name")
    if args.plot and not Path(args.plot).resolve().parent.is_dir():
        raise ArchstatError(f"--plot {args.plot!r}: folder {Path(args.plot).parent} does not exist")
    if args.gpu_results is not None and not Path(args.gpu_results).is_dir():
        raise ArchstatError(f"--gpu-results {args.gpu_results!r}: no such folder")
    from archstat.progress import progress, set_quiet

    set_quiet(args.quiet)
    with progress(total=len(args.models), desc="compare", unit="model", disable=len(args.models) < 3) as bar:
        given = model_inputs(args, None) if args.input else {}
        table = compare(args.models, batch=args.batch, convention=args.convention, sort=args.sort,
                        descending=args.descending, gpu_dir=Path(args.gpu_results or "reports/gpu"), on_model=bar.update,
                        **given)
    print(FORMATTERS[args.format](table))
    if args.plot:
        from archstat.reporting.plots import compare_bars

        compare_bars(table, Path(args.plot))
    return 0
