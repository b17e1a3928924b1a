"""Arguments and model resolution shared by every subcommand (one flag, one meaning)."""
from __future__ import annotations

import argparse
import importlib
from typing import Any

import torch
from torch import nn

from archstat.errors import ArchstatError

CONVENTIONS = ("lecture", "fvcore", "flopcounter")


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
    parser.add_argument("--convention", choices=CONVENTIONS, default="lecture",
                        help="how FLOPs are counted (default: lecture = MACs + pooling windows)")


def _import_callable(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import failure is the user's model spec, not our bug
        raise ArchstatError(f"cannot import {module_name!r} for model {spec!r}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ArchstatError(f"{module_name!r} has no attribute {attr!r} (model {spec!r})")
        obj = getattr(obj, part)
    return obj


def resolve_model(spec: str, *, device: str | torch.device = "meta", **kwargs: Any) -> tuple[nn.Module, tuple[int, ...]]:
    """A zoo name or ``package.module:callable`` -> (module, default input shape).

    Zoo models and callables are built under ``device`` (``meta`` by default, so that analysis
    allocates no weights).  A callable's default input is its ``default_input`` attribute, else
    3x224x224.
    """
    if ":" in spec:
        obj = _import_callable(spec)
        if isinstance(obj, nn.Module):
            return obj, tuple(getattr(obj, "default_input", (3, 224, 224)))
        if not callable(obj):
            raise ArchstatError(f"{spec!r} is neither an nn.Module nor a callable that builds one")
        with torch.device(device):
            model = obj(**kwargs)
        if not isinstance(model, nn.Module):
            raise ArchstatError(f"{spec!r} returned {type(model).__name__}, not an nn.Module")
        return model, tuple(getattr(model, "default_input", getattr(obj, "default_input", (3, 224, 224))))
    from archstat.models import get_model, model_info

    info = model_info(spec)
    return get_model(spec, device=device, **kwargs), info.default_input
