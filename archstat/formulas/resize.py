"""Resampling: ``nn.Upsample`` / ``F.interpolate`` and ``PixelShuffle`` / ``PixelUnshuffle``.

Interpolation to ``size`` gives that size; with ``scale_factor`` f an input length L becomes
``floor(L * f)`` (PyTorch's rule, for f < 1 too).  No MACs: fvcore prices nearest and bilinear
2-d upsampling at 1 and 4 per output element (``conventions.fvcore``), FlopCounterMode at 0.

Pixel shuffle with factor r moves channels into space, ``(C*r*r, H, W) -> (C, H*r, W*r)``, and
unshuffle back; either writes a new tensor (a copy, kind ``copy``) and keeps nothing for backward.
"""
from __future__ import annotations

import math
from typing import Any, Optional

from torch import nn

from archstat.formulas import Cost, ShapeError, register_function, register_module
from archstat.spec import Size, TensorSpec, is_symbolic, simplify


def _scaled(length: Size, factor: float) -> Size:
    """``floor(length * factor)``, as PyTorch sizes an interpolation's output (in double precision)."""
    if is_symbolic(length):
        import sympy

        return sympy.floor(length * sympy.nsimplify(factor))
    return math.floor(length * factor)


def _resized(x: TensorSpec, size: Any, scale_factor: Any, mode: str) -> Cost:
    dims = len(x.shape) - 2
    if size is not None:
        spatial = tuple(size) if isinstance(size, (tuple, list)) else (size,) * dims
    elif scale_factor is not None:
        factors = scale_factor if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * dims
        spatial = tuple(simplify(L * int(f)) if float(f).is_integer() else _scaled(L, float(f))
                        for L, f in zip(x.shape[2:], factors))
    else:
        raise ShapeError("interpolate needs size or scale_factor")
    return Cost(out=x.with_shape((*x.shape[:2], *spatial)), kind="upsample", hparams={"mode": mode})


@register_module(nn.Upsample)  # also UpsamplingNearest2d / UpsamplingBilinear2d, which keep its forward
def upsample_module(m: nn.Upsample, inputs: list) -> Cost:
    return _resized(inputs[0], m.size, m.scale_factor, m.mode)


@register_function("interpolate")  # F.upsample* are wrappers: their inner interpolate call is the row
def interpolate_function(args: tuple, kwargs: dict) -> Cost:
    a = {**dict(zip(("input", "size", "scale_factor", "mode"), args)), **kwargs}
    fn = kwargs.get("_fn", "interpolate")
    mode = {"upsample_nearest": "nearest", "upsample_bilinear": "bilinear"}.get(fn, a.get("mode") or "nearest")
    return _resized(a["input"], a.get("size"), a.get("scale_factor"), mode)


def _shuffled(x: TensorSpec, r: int, fn: str) -> Cost:
    c, h, w = x.shape[-3], x.shape[-2], x.shape[-1]
    lead = tuple(x.shape[:-3])
    if fn == "pixel_shuffle":
        if not isinstance(c, int) or c % (r * r):
            raise ShapeError(f"pixel_shuffle({r}) needs channels divisible by {r * r}, got {c}")
        shape = (*lead, c // (r * r), h * r, w * r)
    else:
        if any(isinstance(s, int) and s % r for s in (h, w)):
            raise ShapeError(f"pixel_unshuffle({r}) needs height and width divisible by {r}, got {h}x{w}")
        shape = (*lead, c * r * r, simplify(h / r), simplify(w / r))
    return Cost(out=x.with_shape(shape), kind="copy", hparams={"fn": fn, "factor": r})


@register_module(nn.PixelShuffle, nn.PixelUnshuffle)
def pixel_shuffle_module(m: nn.Module, inputs: list) -> Cost:
    if isinstance(m, nn.PixelShuffle):
        return _shuffled(inputs[0], m.upscale_factor, "pixel_shuffle")
    return _shuffled(inputs[0], m.downscale_factor, "pixel_unshuffle")


@register_function("pixel_shuffle", "pixel_unshuffle")
def pixel_shuffle_function(args: tuple, kwargs: dict) -> Cost:
    fn: Optional[str] = kwargs.get("_fn")
    factor = args[1] if len(args) > 1 else kwargs.get("upscale_factor", kwargs.get("downscale_factor"))
    return _shuffled(args[0], int(factor), fn or "pixel_shuffle")
