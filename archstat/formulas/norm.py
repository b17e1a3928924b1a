"""Normalisation layers: BatchNorm1d/2d/3d, GroupNorm, LayerNorm, InstanceNorm, LocalResponseNorm.

All keep the input's shape and cost no MACs.  What they cost in FLOPs is a convention question
(fvcore: 1 or 2 per element in eval, 4 or 5 in training; the lecture: nothing), answered in
``conventions.py`` from ``kind`` and ``work["affine"]``/``hparams["training"]`` recorded here.
"""
from __future__ import annotations

import torch
from torch import nn

from archstat.formulas import Cost, ShapeError, register_function, register_module
from archstat.formulas._checks import require_channels, require_rank, spatial_dims
from archstat.spec import Size, TensorSpec, is_symbolic, prod


@register_module(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
def batch_norm_module(m: nn.Module, inputs: list) -> Cost:
    x = inputs[0]
    dims = spatial_dims(m, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    require_rank(x, (2, 3) if dims == 1 else (dims + 2,), type(m).__name__)
    require_channels(x.shape[1], m.num_features, "channels")
    # batch statistics are used in training, and always when no running stats are tracked
    training = m.training or m.running_mean is None
    return Cost(out=x.with_shape(x.shape), kind="batch_norm",
                work={"affine": m.affine, "transient_bytes": _statistics(x, x.shape[1]) if training else 0,
                      "updates_state": bool(m.training and m.running_mean is not None)},
                hparams={"training": training, "affine": m.affine})


def _statistics(x: TensorSpec, count: Size) -> Size:
    """Bytes of the mean and inverse std that native_batch_norm / group_norm / layer_norm return
    besides their output (``count`` of each, in the accumulation type), dropped by the module:
    transient memory for ``archstat.analyses.live_memory``."""
    return 2 * count * (8 if x.dtype == torch.float64 else 4)


@register_function("batch_norm")
def batch_norm_function(args: tuple, kwargs: dict) -> Cost:
    names = ("input", "running_mean", "running_var", "weight", "bias", "training")
    a = {**dict(zip(names, args)), **kwargs}
    affine, x = a.get("weight") is not None, a["input"]
    training = bool(a.get("training", False)) or a.get("running_mean") is None
    updates = bool(a.get("training", False)) and a.get("running_mean") is not None  # running stats written
    return Cost(out=x.with_shape(x.shape), kind="batch_norm",
                work={"affine": affine, "transient_bytes": _statistics(x, x.shape[1]) if training else 0,
                      "updates_state": updates},
                hparams={"training": training, "affine": affine})


@register_module(nn.GroupNorm)
def group_norm_module(m: nn.GroupNorm, inputs: list) -> Cost:
    require_channels(inputs[0].shape[1], m.num_channels, "channels")
    return _group_norm_cost(inputs[0], m.num_groups, m.affine)


@register_function("group_norm")
def group_norm_function(args: tuple, kwargs: dict) -> Cost:
    a = {**dict(zip(("input", "num_groups", "weight", "bias", "eps"), args)), **kwargs}
    return _group_norm_cost(a["input"], a["num_groups"], a.get("weight") is not None)


def _group_norm_cost(x: TensorSpec, groups: int, affine: bool) -> Cost:
    return Cost(out=x.with_shape(x.shape), kind="group_norm",
                work={"affine": affine, "transient_bytes": _statistics(x, x.shape[0] * groups)},
                hparams={"groups": groups})


@register_module(nn.LayerNorm)
def layer_norm_module(m: nn.LayerNorm, inputs: list) -> Cost:
    return _layer_norm_cost(inputs[0], tuple(m.normalized_shape), m.elementwise_affine)


@register_function("layer_norm")
def layer_norm_function(args: tuple, kwargs: dict) -> Cost:
    """F.layer_norm, as ConvNeXt's channels-last LayerNorm2d calls it after a permute."""
    a = {**dict(zip(("input", "normalized_shape", "weight", "bias", "eps"), args)), **kwargs}
    shape = a["normalized_shape"]
    return _layer_norm_cost(a["input"], tuple(shape) if isinstance(shape, (tuple, list)) else (shape,),
                            a.get("weight") is not None)


def _layer_norm_cost(x: TensorSpec, shape: tuple, affine: bool) -> Cost:
    tail = tuple(x.shape[-len(shape):])
    if tail != shape and not any(is_symbolic(t) for t in tail):
        raise ShapeError(f"expects trailing dims {list(shape)}, got {list(tail)}")
    rows = prod(x.shape[:len(x.shape) - len(shape)])
    return Cost(out=x.with_shape(x.shape), kind="layer_norm",
                work={"affine": affine, "transient_bytes": _statistics(x, rows)},
                hparams={"normalized_shape": list(shape)})


@register_module(nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
def instance_norm_module(m: nn.Module, inputs: list) -> Cost:
    """at::instance_norm runs batch_norm on the input viewed as (1, N*C, ...), with the affine
    parameters and running stats repeated N times: those copies and, with input statistics, the
    returned mean and inverse std (N*C each) are transient."""
    x = inputs[0]
    per_channel = x.shape[0] * x.shape[1] if len(x.shape) > 2 else x.shape[0]
    use_input_stats = m.training or not m.track_running_stats
    repeats = (2 if m.affine else 0) + (2 if m.running_mean is not None else 0)
    transient = (repeats * per_channel * x.dtype.itemsize + (_statistics(x, per_channel) if use_input_stats else 0)
                 + (0 if x.is_contiguous else x.nbytes))
    return Cost(out=x.with_shape(x.shape), kind="instance_norm",
                work={"affine": m.affine, "transient_bytes": transient})


@register_module(nn.LocalResponseNorm)
def lrn_module(m: nn.LocalResponseNorm, inputs: list) -> Cost:
    """b = a / (k + alpha/n * sum_{window of n channels} a^2)^beta, per element."""
    x = inputs[0]
    require_rank(x, (3, 4, 5), "LocalResponseNorm")
    # F.local_response_norm runs as several ops, whose temporaries peak besides the input at either
    # the squared input plus its copy padded by size-1 channels, or three input-sized tensors at once
    # in `div.mul(alpha).add(k).pow(beta)` (the pooled sum, the product, the sum).  The row's own
    # output is one input-sized tensor; the rest is transient.
    channels, nbytes = x.shape[1], x.nbytes
    padded = x.numel // channels * (channels + m.size - 1) * x.dtype.itemsize
    transient = max(padded, 2 * nbytes) if not (is_symbolic(padded) or is_symbolic(nbytes)) else None
    return Cost(out=x.with_shape(x.shape), kind="lrn", work={"window": m.size, "transient_bytes": transient},
                hparams={"size": m.size, "alpha": m.alpha, "beta": m.beta, "k": m.k})
