"""The model registry: one builder per name, with the metadata reports and tests need.

A family file registers each builder with ``@register_model(...)``; ``list_models()`` and
``get_model()`` are what the CLI, the reports and the tests use.  Tests parametrize over
``list_models()`` so a newly registered model is tested for free.
"""
from __future__ import annotations

import difflib
import importlib
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from archstat.errors import ArchstatError, first_line


@dataclass(frozen=True)
class Published:
    """A number the literature prints, with where it comes from.

    ``value`` is ``None`` when no source gives one; ``note`` then says why.  ``convention``
    names what was counted (``"params"``, ``"macs"`` ...) so comparisons use the same one.
    """

    value: float | None
    source: str
    note: str = ""


@dataclass(frozen=True)
class ModelInfo:
    """Metadata of one registered architecture."""

    name: str
    builder: Callable[..., nn.Module]
    family: str
    paper: str
    year: int
    url: str
    default_input: tuple[int, ...]
    # smallest C x H x W input the model accepts in both eval and train mode
    min_input: tuple[int, ...]
    # published figures, keyed by what is counted: "params", "macs", "top1_err", "top5_err" (one
    # network, one crop), "ilsvrc_top5_err" (the challenge entry the lecture quotes, often an ensemble)
    published: dict[str, Published] = field(default_factory=dict)
    # torchvision builds the same architecture with the same state_dict layout
    torchvision_name: str | None = None
    notes: str = ""
    # the lecture's own row names (``archstat table MODEL --names lecture``): qualified name -> slide name
    lecture_names: dict[str, str] = field(default_factory=dict)


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    *,
    family: str,
    paper: str,
    year: int,
    url: str,
    default_input: tuple[int, ...] = (3, 224, 224),
    min_input: tuple[int, ...] = (3, 32, 32),
    published: dict[str, Published] | None = None,
    torchvision_name: str | None = None,
    notes: str = "",
    name: str | None = None,
    lecture_names: dict[str, str] | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder function under its own name (or ``name``)."""

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        if key in _REGISTRY:
            raise ValueError(f"model {key!r} registered twice")
        _REGISTRY[key] = ModelInfo(
            name=key, builder=fn, family=family, paper=paper, year=year, url=url,
            default_input=tuple(default_input), min_input=tuple(min_input),
            published=dict(published or {}), torchvision_name=torchvision_name, notes=notes,
            lecture_names=dict(lecture_names or {}),
        )
        return fn

    return decorator


def _load_families() -> None:
    # Importing the family modules runs their @register_model decorators.
    from archstat.models import _families  # noqa: F401


def list_models() -> list[str]:
    """Registered model names, in registration order (the lecture's order)."""
    _load_families()
    return list(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    """Metadata of ``name``; an unknown name raises ArchstatError with close matches."""
    _load_families()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `archstat list`"
        raise ArchstatError(f"unknown model {name!r}{hint}")
    return _REGISTRY[name]


def get_model(name: str, *, device: str | torch.device | None = None, **kwargs: Any) -> nn.Module:
    """Build a registered model.  ``device="meta"`` builds it without allocating weights."""
    info = model_info(name)
    if device is None:
        return info.builder(**kwargs)
    with torch.device(device):
        return info.builder(**kwargs)


def _import_from_here(module_name: str) -> Any:
    """``importlib.import_module``, with the current folder searched too (last), as ``python -m`` and
    ``python script.py`` would: the ``archstat`` console script does not put it on ``sys.path``, so a
    ``mynet.py`` beside the user was not found."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        here = os.getcwd()
        top = module_name.split(".")[0]
        if exc.name != top or here in sys.path or "" in sys.path:
            raise
        sys.path.append(here)
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError as again:
            sys.path.remove(here)
            if again.name == top:
                raise exc from None  # not here either: the first error, which names the module
            raise


def import_callable(spec: str) -> Any:
    """``"package.module:attr.path"`` -> the object; an import failure is the user's spec, one line."""
    module_name, _, attr = spec.partition(":")
    try:
        module = _import_from_here(module_name)
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
        obj = import_callable(spec)
        if isinstance(obj, nn.Module):
            return obj, tuple(getattr(obj, "default_input", (3, 224, 224)))
        if not callable(obj):
            raise ArchstatError(f"{spec!r} is neither an nn.Module nor a callable that builds one")
        try:
            with torch.device(device):
                model = obj(**kwargs)
        except Exception as exc:  # a class that needs arguments, a builder that raises: the user's input
            raise ArchstatError(f"building {spec!r} failed: {first_line(exc)}") from None
        if not isinstance(model, nn.Module):
            raise ArchstatError(f"{spec!r} returned {type(model).__name__}, not an nn.Module")
        return model, tuple(getattr(model, "default_input", getattr(obj, "default_input", (3, 224, 224))))
    info = model_info(spec)
    return get_model(spec, device=device, **kwargs), info.default_input
