"""`archstat validate MODEL`: the symbolic table against one real run, fvcore and FlopCounterMode."""
from __future__ import annotations

import argparse

from archstat.commands._common import add_convention_arg, add_model_args, model_inputs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="prove shapes, params, memory and FLOPs against the real model and "
                                        "fvcore / FlopCounterMode (exit 0 only if all agree)")
    add_model_args(p)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the real run happens")
    p.add_argument("--mode", choices=("eval", "train"), default="eval", help="validate the eval or training graph")
    add_convention_arg(p)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights of zoo models and of the input")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from archstat.models import resolve_model
    from archstat.device import resolve_device
    from archstat.validation.validate import STAGES, exit_code, validate
    from archstat.reporting.validate_format import to_json, to_text

    device = resolve_device(args.device)  # before building anything: CUDA asked for but absent is one line
    torch.manual_seed(args.seed)
    model, default_input = resolve_model(args.model, device=device)
    from archstat.progress import progress, set_quiet, stepper

    set_quiet(args.quiet)
    with progress(total=len(STAGES), desc="validate", unit="check") as bar:
        df = validate(model, batch=args.batch, device=device, mode=args.mode,
                      convention=args.convention, seed=args.seed, on_stage=stepper(bar),
                      **model_inputs(args, default_input))
    print(to_json(df) if args.format == "json" else to_text(df))
    return exit_code(df)
