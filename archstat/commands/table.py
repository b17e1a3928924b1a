"""`archstat table MODEL`: the lecture's per-layer table for any model."""
from __future__ import annotations

import argparse

from archstat.commands._common import add_convention_arg, add_model_args, model_inputs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("table", help="per-layer output size, memory, params and FLOPs")
    add_model_args(p)
    p.add_argument("--dtype", default="float32", help="activation dtype (float32, float16, bfloat16, ...)")
    p.add_argument("--mode", choices=("eval", "train"), default=None,
                   help="trace the eval or training graph (default eval; train with --training)")
    add_convention_arg(p)
    p.add_argument("--format", choices=("text", "markdown", "csv", "json", "latex"), default="text",
                   help="latex: a booktabs tabular for papers (with --symbolic: the named sizes in math mode)")
    p.add_argument("--symbolic", action="store_true",
                   help="closed forms in N, H, W: sizes named once (H1 = floor((H - 7)/4) + 1), rows in the names")
    p.add_argument("--names", choices=("qualified", "lecture"), default="qualified",
                   help="lecture: add a column with the lecture's own row names (conv1, pool1, ..., fc8) where the "
                        "zoo model has them (alexnet, vgg*, googlenet)")
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    p.add_argument("--reconcile", action="store_true", help="break FLOPs down by op kind in every convention")
    p.add_argument("--upto", metavar="LAYER", help="stop after this layer (e.g. features.5, layer1)")
    p.add_argument("--all-rows", action="store_true", help="do not fold activations/dropout into the row before")
    p.add_argument("--training", action="store_true",
                   help="add what a training step costs per layer: bytes saved for backward, backward FLOPs; "
                        "and the step's memory (saved + params + grads + optimizer state)")
    p.add_argument("--optimizer", choices=("sgd", "sgd_plain", "adam", "adamw"), default=None,
                   help="optimizer state for --training (default sgd: with momentum, one buffer per parameter)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="where the training step would run, for --training (default cpu; cuda: dropout keeps a "
                        "bool mask)")
    p.add_argument("--receptive-field", action="store_true", help="add each layer's receptive field and jump")
    p.set_defaults(func=run)


def parse_dtype(name: str):
    """``--dtype`` -> a torch dtype among the floating types the formulas price (one line, exit 2 else)."""
    import torch

    from archstat.errors import ArchstatError

    ANALYSED_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
    value = getattr(torch, name.replace("torch.", ""), None)
    use = "use float32, float16, bfloat16 or float64"
    if not isinstance(value, torch.dtype):
        raise ArchstatError(f"unknown --dtype {name!r}: {use}")
    if value not in ANALYSED_DTYPES:  # int8, bool, complex64, float8 ...: no formula prices them
        raise ArchstatError(f"--dtype {name!r} is not a type archstat analyses: {use}")
    return value


def _symbolic_notice(args: argparse.Namespace) -> None:
    """One stderr line when ``--symbolic`` will not use a number the user gave: ``--batch`` (the batch is
    N) and the first input's spatial sizes (H, W); its channels, dtype and the other inputs are used."""
    import sys

    from archstat.engine.input_text import read_input

    unused = ["--batch"] if args.batch != 1 else []
    first = next((read_input(t) for t in args.input or [] if read_input(t).name is None), None)
    if first is not None and len(first.shape) >= 2:
        unused.append("the spatial sizes of --input (H and W, or L)")
    if unused:
        print(f"archstat: notice: --symbolic writes the batch and the input's spatial sizes as N, H and W: "
              f"{' and '.join(unused)} not used", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from archstat.engine.analyze import analyze_rows, cut_rows
    from archstat.models import resolve_model
    from archstat.errors import ArchstatError

    if not args.training and (args.optimizer or args.device):
        raise ArchstatError("--optimizer and --device size a training step: add --training")
    if args.device == "cuda":
        from archstat.device import resolve_device

        resolve_device("cuda")  # as everywhere: --device cuda without CUDA is one line, exit 2
    if args.format == "latex" and args.reconcile:
        raise ArchstatError("--format latex prints the per-layer table; --reconcile has none (use text, csv or json)")
    lecture = lecture_names(args.model) if args.names == "lecture" else None
    if args.reconcile and args.symbolic:
        raise ArchstatError("--reconcile counts FLOPs at one input size; drop --symbolic (or --reconcile)")
    if args.symbolic:
        _symbolic_notice(args)
    if args.reconcile and (args.training or args.receptive_field or args.upto):
        raise ArchstatError("--reconcile prints FLOPs by op kind for the whole model: drop --training, "
                            "--receptive-field and --upto")
    # a training step's cost is the training graph's (dropout masks, BN batch statistics) unless asked otherwise
    args.mode = args.mode or ("train" if args.training else "eval")
    model, default_input = resolve_model(args.model)
    given = model_inputs(args, default_input)
    if args.reconcile:
        from archstat.analyses.reconcile import reconcile
        from archstat.reporting.reconcile_format import reconcile_text

        table = reconcile(analyze_rows(model, batch=args.batch, mode=args.mode, **given))
        print(table.to_csv(index=False) if args.format == "csv" else
              table.to_json(orient="records") if args.format == "json" else reconcile_text(table))
        return 0
    # one trace: the extra columns below are computed over the whole graph's rows, then cut like the table
    rows = analyze_rows(model, batch=args.batch, dtype=parse_dtype(args.dtype), mode=args.mode,
                        convention=args.convention, symbolic=args.symbolic, **given)
    df = cut_rows(rows, args.upto).df if args.upto is not None else rows.df
    df.attrs["model_name"] = args.model  # the title says what was asked for: resnet50 (ResNet)
    df = with_extras(rows, df, args)
    if lecture is not None:
        df.insert(1, "lecture", [lecture.get(n, "") for n in df["name"]])
    print(render(df, args.format, args.symbolic, folded=not args.all_rows))
    return 0


def lecture_names(spec: str) -> dict[str, str]:
    """The zoo model's lecture row names; a model without them is a one-line error."""
    from archstat.errors import ArchstatError
    from archstat.models import list_models, model_info

    names = model_info(spec).lecture_names if spec in list_models() else {}
    if not names:
        having = [m for m in list_models() if model_info(m).lecture_names]
        raise ArchstatError(f"--names lecture: {spec!r} has no lecture row names; models with them: "
                            f"{', '.join(having)}")
    return names


def render(df, fmt: str, symbolic: bool, folded: bool) -> str:
    """The table in the asked format; symbolic text/Markdown/LaTeX print the named sizes."""
    from archstat.reporting.table_format import FORMATTERS

    if fmt == "latex":
        from archstat.reporting.table_latex import to_latex

        return to_latex(df, folded=folded)
    if symbolic and fmt in ("text", "markdown"):
        from archstat.reporting.table_symbolic import to_symbolic_markdown, to_symbolic_text

        return (to_symbolic_text if fmt == "text" else to_symbolic_markdown)(df, folded=folded)
    return FORMATTERS[fmt](df, folded=folded) if fmt in ("text", "markdown") else FORMATTERS[fmt](df)


def with_extras(rows, df, args: argparse.Namespace):
    """``--training`` and ``--receptive-field`` columns of ``df`` (``rows.df`` or its ``--upto`` cut),
    from the whole graph's ``rows``, under one progress bar."""
    from archstat.progress import progress, set_quiet

    set_quiet(args.quiet)
    steps = [s for s, on in (("training step", args.training), ("receptive field", args.receptive_field)) if on]
    bar = progress(total=len(steps), desc="table", unit="step")
    if args.training:
        from archstat.analyses.table_columns import with_training

        bar.set_postfix_str("training step")
        df = with_training(rows, df, args.optimizer or "sgd", args.device or "cpu")
        bar.update()
    if args.receptive_field:
        from archstat.analyses.table_columns import with_receptive_field

        bar.set_postfix_str("receptive field")
        df = with_receptive_field(rows, df)
        bar.update()
    bar.close()
    return df
