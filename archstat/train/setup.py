"""Turning a user's MODEL / --data / --input into a model and data splits (shared by every routine)."""
from __future__ import annotations

import ast
from typing import Any, Sequence

import torch
from torch import nn

from archstat.errors import ArchstatError, message_line
from archstat.train.data import Splits, load_splits


def default_input(model: str, data: str) -> tuple[int, int, int]:
    """The model's smallest input, at least 32x32, with 1 channel for digits and 3 for image folders."""
    channels = 1 if data == "digits" else 3
    if ":" in model:
        from archstat.models import resolve_model

        _, shape = resolve_model(model, device="meta")
        hw = tuple(shape[-2:]) if len(shape) == 3 else (32, 32)
    else:
        from archstat.models import model_info

        hw = tuple(model_info(model).min_input[-2:])
    return (channels, max(hw[0], 32), max(hw[1], 32))


def parse_model_kw(items: Sequence[str] | None) -> dict[str, Any]:
    """``["aux_logits=False", "dropout=0.2"]`` -> keyword arguments (values as Python literals)."""
    kw: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ArchstatError(f"malformed --model-kw {item!r}: expected NAME=VALUE")
        try:
            kw[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kw[key] = value  # a bare word such as init=xavier
    return kw


def build_model(spec: str, num_classes: int, in_channels: int, seed: int = 0,
                model_kw: dict[str, Any] | None = None, device: torch.device | str = "cpu") -> nn.Module:
    """A freshly initialised model under ``torch.manual_seed(seed)`` (same seed -> same weights)."""
    from archstat.models import resolve_model

    torch.manual_seed(seed)
    try:
        model, _ = resolve_model(spec, device="cpu", num_classes=num_classes, in_channels=in_channels,
                                 **(model_kw or {}))
    except TypeError as exc:
        raise ArchstatError(f"cannot build {spec!r} with num_classes/in_channels/--model-kw: {exc}") from None
    return model.to(device)


def check_input_fits(model: nn.Module, shape: tuple[int, int, int], spec: str) -> None:
    """A training-mode forward on 2 samples, so a too-small --input fails as one line, not mid-run."""
    dev = next(model.parameters()).device
    was = model.training
    model.train()
    try:
        with torch.no_grad():
            model(torch.zeros(2, *shape, device=dev))
    except RuntimeError as exc:
        first = message_line(exc)
        raise ArchstatError(f"{spec} does not accept input {'x'.join(map(str, shape))} in training mode: {first}") from None
    finally:
        model.train(was)
    # the BN running statistics that zero input disturbed must not leak into training
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()


def load_data(data: str, input_shape: tuple[int, ...] | None, model: str, seed: int = 0,
              classes: Sequence[int] | None = None, train_per_class: int | None = None, workers: int = 0) -> Splits:
    shape = tuple(input_shape) if input_shape else default_input(model, data)
    if len(shape) != 3:
        raise ArchstatError(f"training needs a CxHxW input, got {'x'.join(map(str, shape))}")
    return load_splits(data, shape, seed=seed, classes=classes, train_per_class=train_per_class, workers=workers)
