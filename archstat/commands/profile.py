"""`archstat profile MODEL`: measured latency, per-layer times and a roofline from measured ceilings."""
from __future__ import annotations

import argparse

from archstat.commands._common import add_model_args, model_inputs, nonneg_int, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="measured latency, per-layer times, memory and a measured roofline")
    add_model_args(p)
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="where to run (default: cuda when available, else cpu)")
    p.add_argument("--precision", choices=("fp32", "tf32", "bf16", "fp16"), default="fp32",
                   help="fp32 = strict (TF32 off for convs and matmul); tf32 = TF32 on for both; bf16/fp16 cast "
                        "the model and input (default fp32)")
    p.add_argument("--channels-last", action="store_true", help="model and input in channels-last memory format")
    p.add_argument("--warmup", type=nonneg_int, default=None, metavar="N",
                   help="untimed calls first (default 10 on cuda, 2 on cpu)")
    p.add_argument("--repeat", type=positive_int, default=None, metavar="N",
                   help="timed calls (default 50 on cuda, 5 on cpu)")
    p.add_argument("--layer-repeat", type=positive_int, default=None, metavar="N",
                   help="per-layer passes (default 10 on cuda, 3 on cpu)")
    p.add_argument("--train", action="store_true", help="also time a full training step (forward, backward, SGD)")
    p.add_argument("--no-layers", action="store_true", help="whole-model timing only")
    p.add_argument("--no-roofline", action="store_true", help="skip measuring device ceilings and the roofline")
    p.add_argument("--quick", action="store_true", help="small ceiling calibration (smoke tests)")
    p.add_argument("--refresh-ceilings", action="store_true",
                   help="measure the device ceilings and the time model's calibration again (ignore the cache)")
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    p.add_argument("--top", type=nonneg_int, default=0, metavar="K", help="text: only the K slowest op calls (0 = all)")
    p.add_argument("--format", choices=("text", "json", "csv"), default="text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from archstat.models import resolve_model
    from archstat.profiling.profile import profile
    from archstat.profiling.profile_format import to_csv, to_json, to_text
    from archstat.device import resolve_device

    device = resolve_device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))  # before any build
    model, default_input = resolve_model(args.model, device=device)
    result = profile(model, batch=args.batch, device=device, precision=args.precision,
                     channels_last=args.channels_last, warmup=args.warmup, repeat=args.repeat,
                     layer_repeat=args.layer_repeat, train=args.train, layers=not args.no_layers,
                     ceilings=not args.no_roofline, quick=args.quick, refresh_ceilings=args.refresh_ceilings,
                     quiet=True if args.quiet else None, **model_inputs(args, default_input))
    print(to_json(result) if args.format == "json" else to_csv(result) if args.format == "csv"
          else to_text(result, top=args.top))
    return 0
