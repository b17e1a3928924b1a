"""Arguments shared by every subcommand (one flag, one meaning).  Models resolve in ``archstat.models``."""
from __future__ import annotations

import argparse

from archstat.engine.convention_names import CONVENTIONS, DEFAULT_CONVENTION
from archstat.errors import ArchstatError


def parse_input(text: str) -> tuple[int, ...]:
    """``"3x227x227"`` -> ``(3, 227, 227)``: one float input's shape per sample (``train --input``)."""
    from archstat.engine.inputs import parse_input as parse_spec

    spec = parse_spec(text)
    if spec.dtype is not None:
        raise ArchstatError(f"--input {text!r}: this command takes one float input (CxHxW), no dtype")
    return spec.shape


def input_arg(text: str) -> tuple:
    """argparse type for the analysis commands' repeatable ``--input [NAME=]SHAPE[:DTYPE[:HIGH]]``:
    ``(name or None, InputSpec)``; a malformed one is a usage error (one line, exit 2)."""
    from archstat.engine.inputs import parse_input as parse_spec

    name, _, shape = text.rpartition("=")
    try:
        if name and not name.isidentifier():
            raise ArchstatError(f"malformed --input {text!r}: a keyword input is NAME=SHAPE, such as mask=16x16:bool")
        return (name or None, parse_spec(shape))
    except ArchstatError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def model_inputs(args: argparse.Namespace, default_input) -> dict:
    """``{"inputs": [...], "kwargs": {...}}`` for analyze/validate/profile from the ``--input`` flags,
    in order (positional ones in forward's order, ``NAME=...`` by name), or the model's default input."""
    given = args.input or [(None, default_input)]
    named = {n: s for n, s in given if n is not None}
    if len(named) != sum(1 for n, _ in given if n is not None):
        raise ArchstatError("--input: a keyword input is given twice")
    return {"inputs": [s for n, s in given if n is None], "kwargs": named}


def positive_int(text: str) -> int:
    """argparse type for --batch, --repeat ...: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_model_args(parser: argparse.ArgumentParser, *, many: bool = False) -> None:
    """MODEL (zoo name or package.module:callable), --input, --batch."""
    if many:
        parser.add_argument("models", nargs="+", metavar="MODEL", help="zoo names or package.module:callable")
    else:
        parser.add_argument("model", metavar="MODEL", help="zoo name (see `archstat list`) or package.module:callable")
    parser.add_argument("--input", type=input_arg, action="append", default=None, metavar="SHAPE[:DTYPE[:HIGH]]",
                        help="input shape per sample, CxHxW (default: the model's default input); repeat it for a "
                             "model with several inputs, in forward's order, each with its own dtype "
                             "(--input 3x224x224 --input 77:int64:1000: integers drawn below 1000, zeros without a "
                             "bound); NAME=SHAPE gives a keyword input")
    parser.add_argument("--batch", type=positive_int, default=1, metavar="N", help="batch size (default 1)")


def add_convention_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--convention", choices=CONVENTIONS, default=DEFAULT_CONVENTION,
                        help="how FLOPs are counted (default: lecture = MACs + pooling windows)")
