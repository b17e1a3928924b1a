"""Convolutions (Conv1d/2d/3d, ConvTranspose1d/2d/3d and F.conv*d).

Output size per spatial dim, as PyTorch computes it:
    L_out = floor((L + 2p - d*(k-1) - 1) / s) + 1                     (convolution)
    L_out = (L - 1)*s - 2p + d*(k-1) + output_padding + 1              (transposed)
MACs (bias is not a MAC):
    conv:       N * C_out * prod(L_out) * (C_in / groups) * prod(k)
    transposed: N * C_in  * prod(L_in)  * (C_out / groups) * prod(k)
"""
from __future__ import annotations

from torch import nn

from archstat.formulas import Cost, register_function, register_module
from archstat.formulas._checks import require_channels, require_positive, require_rank
from archstat.spec import Size, TensorSpec, pair, prod


def conv_out_size(size, k: int, s: int, p: int, d: int):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _conv_cost(x: TensorSpec, c_in: int, c_out: int, k: tuple, s: tuple, p, d: tuple, groups: int,
               bias: bool, what: str) -> Cost:
    dims = len(k)
    require_rank(x, (dims + 2,), what)
    require_channels(x.shape[1], c_in)
    spatial = x.shape[2:]
    if isinstance(p, str):  # "same" keeps the size (stride 1 only, as PyTorch); "valid" pads 0
        out_spatial = tuple(spatial) if p == "same" else tuple(
            conv_out_size(L, kk, ss, 0, dd) for L, kk, ss, dd in zip(spatial, k, s, d))
    else:
        out_spatial = tuple(conv_out_size(L, kk, ss, pp, dd) for L, kk, ss, pp, dd in zip(spatial, k, s, p, d))
    require_positive(out_spatial, spatial)
    out = x.with_shape((x.shape[0], c_out, *out_spatial))
    macs = x.shape[0] * c_out * prod(out_spatial) * (c_in // groups) * prod(k)
    return Cost(out=out, kind="conv", macs=macs, kernel=list(k), stride=list(s),
                padding=p if isinstance(p, str) else list(p), work={"transient_bytes": _same_pad_copy(x, k, p, d)},
                hparams={"groups": groups, "dilation": list(d), "bias": bias, "c_in": c_in, "c_out": c_out})


def _same_pad_copy(x: TensorSpec, k: tuple, p, d: tuple) -> Size:
    """Bytes of the padded input copy an asymmetric ``padding="same"`` makes (transient memory).

    "same" pads ``d * (k - 1)`` per dim; when that is odd, PyTorch first pads a copy of the input by
    the odd remainder on the far side, then convolves it with the symmetric rest.
    """
    extra = [dd * (kk - 1) % 2 for kk, dd in zip(k, d)] if p == "same" else []
    if not any(extra):
        return 0
    return prod(x.shape[:2]) * prod(size + e for size, e in zip(x.shape[2:], extra)) * x.dtype.itemsize


@register_module(nn.Conv1d, nn.Conv2d, nn.Conv3d)
def conv_module(m: nn.Module, inputs: list) -> Cost:
    cost = _conv_cost(inputs[0], m.in_channels, m.out_channels, tuple(m.kernel_size), tuple(m.stride),
                      m.padding if isinstance(m.padding, str) else tuple(m.padding), tuple(m.dilation),
                      m.groups, m.bias is not None, type(m).__name__)
    if m.padding_mode != "zeros":
        _padded_first(cost, inputs[0], m)
    return cost


def _padded_first(cost: Cost, x: TensorSpec, m: nn.Module) -> None:
    """``padding_mode`` reflect / replicate / circular: PyTorch pads a copy of the input by the
    padding (``F.pad``), then convolves it with padding 0.  The copy is alive while the conv runs,
    and it is what backward keeps, instead of the input."""
    total = [2 * p for p in m.padding] if not isinstance(m.padding, str) else (
        [d * (k - 1) for k, d in zip(m.kernel_size, m.dilation)] if m.padding == "same" else [0] * len(m.kernel_size))
    numel = prod(x.shape[:2]) * prod(L + t for L, t in zip(x.shape[2:], total))
    cost.work.update(transient_bytes=numel * x.dtype.itemsize, saved=[("new", numel, x.dtype)])
    cost.hparams["padding_mode"] = m.padding_mode


@register_module(nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
def conv_transpose_module(m: nn.Module, inputs: list) -> Cost:
    x = inputs[0]
    k, s, p, d, op = (tuple(v) for v in (m.kernel_size, m.stride, m.padding, m.dilation, m.output_padding))
    require_rank(x, (len(k) + 2,), type(m).__name__)
    require_channels(x.shape[1], m.in_channels)
    spatial = x.shape[2:]
    out_spatial = tuple((L - 1) * ss - 2 * pp + dd * (kk - 1) + oo + 1
                        for L, kk, ss, pp, dd, oo in zip(spatial, k, s, p, d, op))
    require_positive(out_spatial, spatial)
    macs = x.shape[0] * m.in_channels * prod(spatial) * (m.out_channels // m.groups) * prod(k)
    return Cost(out=x.with_shape((x.shape[0], m.out_channels, *out_spatial)), kind="conv_transpose",
                macs=macs, kernel=list(k), stride=list(s), padding=list(p),
                hparams={"groups": m.groups, "dilation": list(d), "bias": m.bias is not None,
                         "c_in": m.in_channels, "c_out": m.out_channels})


@register_function("conv1d", "conv2d", "conv3d")
def conv_function(args: tuple, kwargs: dict) -> Cost:
    names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
    a = {**dict(zip(names, args)), **kwargs}
    x, w = a["input"], a["weight"]
    dims = len(w.shape) - 2
    groups = a.get("groups", 1)
    pad = a.get("padding", 0)
    return _conv_cost(x, w.shape[1] * groups, w.shape[0], tuple(w.shape[2:]), pair(a.get("stride", 1), dims),
                      pad if isinstance(pad, str) else pair(pad, dims), pair(a.get("dilation", 1), dims),
                      groups, a.get("bias") is not None, f"conv{dims}d")
