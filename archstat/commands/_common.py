"""Arguments shared by every subcommand (one flag, one meaning).  Models resolve in ``archstat.models``."""
from __future__ import annotations

import argparse

from archstat.engine.convention_names import CONVENTIONS, DEFAULT_CONVENTION
from archstat.errors import ArchstatError


def parse_input(text: str) -> tuple[int, ...]:
    """``"3x227x227"`` -> ``(3, 227, 227)``; ``CxL`` for 1-d models.  Per sample, no batch."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise ArchstatError(f"malformed --input {text!r}: expected CxHxW such as 3x224x224") from None
    if len(dims) not in (1, 2, 3):
        raise ArchstatError(f"malformed --input {text!r}: expected CxHxW (or CxL, or F), got {len(dims)} numbers")
    if any(d <= 0 for d in dims):
        raise ArchstatError(f"--input {text!r} has a zero or negative size; every size must be >= 1")
    return dims


def input_arg(text: str) -> tuple[int, ...]:
    """argparse type for --input: a malformed shape is a usage error (one line, exit 2)."""
    try:
        return parse_input(text)
    except ArchstatError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
    parser.add_argument("--input", type=input_arg, default=None, metavar="CxHxW",
                        help="input shape per sample (default: the model's default input)")
    parser.add_argument("--batch", type=positive_int, default=1, metavar="N", help="batch size (default 1)")


def add_convention_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--convention", choices=CONVENTIONS, default=DEFAULT_CONVENTION,
                        help="how FLOPs are counted (default: lecture = MACs + pooling windows)")
