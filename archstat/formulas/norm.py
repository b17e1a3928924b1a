"""Normalisation layers: BatchNorm1d/2d/3d, GroupNorm, LayerNorm, InstanceNorm, LocalResponseNorm.

All keep the input's shape and cost no MACs.  What they cost in FLOPs is a convention question
(fvcore: 1 or 2 per element in eval, 4 or 5 in training; the lecture: nothing), answered in
``conventions.py`` from ``kind`` and ``work["affine"]``/``hparams["training"]`` recorded here.
"""
from __future__ import annotations

from torch import nn

from archstat.formulas import Cost, ShapeError, register_function, register_module
from archstat.formulas._checks import require_channels, require_rank
from archstat.spec import is_symbolic


@register_module(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
def batch_norm_module(m: nn.Module, inputs: list) -> Cost:
    x = inputs[0]
    dims = int(type(m).__name__[-2])
    require_rank(x, (2, 3) if dims == 1 else (dims + 2,), type(m).__name__)
    require_channels(x.shape[1], m.num_features, "channels")
    # batch statistics are used in training, and always when no running stats are tracked
    training = m.training or m.running_mean is None
    return Cost(out=x, kind="batch_norm", work={"affine": m.affine},
                hparams={"training": training, "affine": m.affine})


@register_function("batch_norm")
def batch_norm_function(args: tuple, kwargs: dict) -> Cost:
    names = ("input", "running_mean", "running_var", "weight", "bias", "training")
    a = {**dict(zip(names, args)), **kwargs}
    affine = a.get("weight") is not None
    return Cost(out=a["input"], kind="batch_norm", work={"affine": affine},
                hparams={"training": bool(a.get("training", False)) or a.get("running_mean") is None,
                         "affine": affine})


@register_module(nn.GroupNorm)
def group_norm_module(m: nn.GroupNorm, inputs: list) -> Cost:
    require_channels(inputs[0].shape[1], m.num_channels, "channels")
    return Cost(out=inputs[0], kind="group_norm", work={"affine": m.affine}, hparams={"groups": m.num_groups})


@register_module(nn.LayerNorm)
def layer_norm_module(m: nn.LayerNorm, inputs: list) -> Cost:
    x = inputs[0]
    shape = tuple(m.normalized_shape)
    tail = tuple(x.shape[-len(shape):])
    if tail != shape and not any(is_symbolic(t) for t in tail):
        raise ShapeError(f"expects trailing dims {list(shape)}, got {list(tail)}")
    return Cost(out=x, kind="layer_norm", work={"affine": m.elementwise_affine},
                hparams={"normalized_shape": list(shape)})


@register_module(nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
def instance_norm_module(m: nn.Module, inputs: list) -> Cost:
    return Cost(out=inputs[0], kind="instance_norm", work={"affine": m.affine})


@register_module(nn.LocalResponseNorm)
def lrn_module(m: nn.LocalResponseNorm, inputs: list) -> Cost:
    """b = a / (k + alpha/n * sum_{window of n channels} a^2)^beta, per element."""
    x = inputs[0]
    require_rank(x, (3, 4, 5), "LocalResponseNorm")
    return Cost(out=x, kind="lrn", work={"window": m.size},
                hparams={"size": m.size, "alpha": m.alpha, "beta": m.beta, "k": m.k})
