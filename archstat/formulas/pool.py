"""Pooling: Max/AvgPool1d/2d/3d, AdaptiveAvg/MaxPool1d/2d/3d and their functional forms.

Output size per spatial dim (PyTorch's ``pooling_output_shape``):
    L_out = floor((L + 2p - d*(k-1) - 1) / s) + 1                 (ceil_mode=False)
    L_out = ceil((L + 2p - d*(k-1) - 1) / s) + 1, minus 1 if the last window would start
            in the right padding, i.e. if (L_out - 1)*s >= L + p      (ceil_mode=True)
Adaptive pools split L into O bins [floor(i*L/O), ceil((i+1)*L/O)); ``window`` is the largest
bin's length, so the lecture's "K*K per output element" uses the window that really runs.
"""
from __future__ import annotations

import functools

import torch
from torch import nn

from archstat.formulas import Cost, register_function, register_module
from archstat.formulas._checks import require_positive, require_rank, spatial_dims
from archstat.spec import Size, TensorSpec, ceil_div, is_symbolic, pair, prod


def pool_out_size(size, k: int, s: int, p: int, d: int, ceil_mode: bool):
    span = size + 2 * p - d * (k - 1) - 1
    if not ceil_mode:
        return span // s + 1
    out = ceil_div(span, s) + 1
    if is_symbolic(out):
        # (out-1)*s < span + s, so the last window always starts inside when p + s - 1 <= d*(k-1)
        # (no padding to start in): then no Piecewise is needed, and sympy stays fast and exact.
        if p + s - 1 <= d * (k - 1):
            return out
        import sympy  # symbolic mode only: sympy is already loaded

        return sympy.Piecewise((out - 1, sympy.Ge((out - 1) * s, size + p)), (out, True))
    return out - 1 if (out - 1) * s >= size + p else out


def adaptive_window(size, out: int):
    """Length of the largest of the ``out`` bins that adaptive pooling cuts ``size`` into."""
    if is_symbolic(size):
        return _symbolic_window(size, out)
    return max(ceil_div((i + 1) * size, out) - (i * size) // out for i in range(out))


@functools.lru_cache(maxsize=512)
def _symbolic_window(size, out: int):
    """``Max`` of the ``out`` bin lengths of a symbolic ``size``, built once per (size, out).

    sympy simplifies a ``Max`` by comparing its arguments pairwise (a quarter of a second for
    the 7 bins of a VGG's pool), and every symbolic analysis of the same model asks again.
    The result depends on its arguments alone, so remembering it changes no number.
    """
    import sympy  # symbolic mode only: sympy is already loaded

    lengths = [ceil_div((i + 1) * size, out) - (i * size) // out for i in range(out)]
    return sympy.Max(*lengths) if len(lengths) > 1 else lengths[0]


def _pool_cost(x: TensorSpec, dims: int, k, s, p, d, ceil_mode: bool, mode: str, what: str,
               return_indices: bool = False) -> Cost:
    require_rank(x, (dims + 1, dims + 2), what)
    k = pair(k, dims)
    s = pair(s if s not in (None, []) else k, dims)  # PyTorch: stride defaults to kernel_size
    p, d = pair(p, dims), pair(d, dims)
    spatial = x.shape[-dims:]
    out_spatial = tuple(pool_out_size(L, kk, ss, pp, dd, ceil_mode) for L, kk, ss, pp, dd in zip(spatial, k, s, p, d))
    require_positive(out_spatial, spatial)
    out = x.with_shape((*x.shape[:-dims], *out_spatial))
    work = {"window": prod(k), "transient_bytes": _dropped_indices(out, mode, return_indices)}
    if return_indices:
        out = (out, TensorSpec(out.shape, torch.int64))
    return Cost(out=out, kind="pool", kernel=list(k), stride=list(s), padding=list(p),
                work=work, hparams={"mode": mode, "ceil_mode": ceil_mode, "dilation": list(d)})


def _dropped_indices(out: TensorSpec, mode: str, returned: bool) -> Size:
    """Bytes of the int64 argmax indices a max pool computes and throws away (see live_memory).

    With autograd's dispatch key active (``torch.no_grad()`` included, on every device) max pooling
    runs as ``max_pool*d_with_indices`` and keeps only the values; adaptive max pooling always does.
    """
    return out.numel * 8 if mode == "max" and not returned else 0


@register_module(nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
def max_pool_module(m: nn.Module, inputs: list) -> Cost:
    dims = spatial_dims(m, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
    return _pool_cost(inputs[0], dims, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, "max",
                      type(m).__name__, m.return_indices)


@register_module(nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
def avg_pool_module(m: nn.Module, inputs: list) -> Cost:
    dims = spatial_dims(m, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
    return _pool_cost(inputs[0], dims, m.kernel_size, m.stride, m.padding, 1, m.ceil_mode, "avg", type(m).__name__)


def _pool_function(dims: int, mode: str, with_indices: bool = False):
    names = ("input", "kernel_size", "stride", "padding", "dilation" if mode == "max" else "ceil_mode",
             "ceil_mode" if mode == "max" else "count_include_pad")

    def formula(args: tuple, kwargs: dict) -> Cost:
        a = {**dict(zip(names, args)), **kwargs}
        return _pool_cost(a["input"], dims, a["kernel_size"], a.get("stride"), a.get("padding", 0),
                          a.get("dilation", 1), bool(a.get("ceil_mode", False)), mode, f"{mode}_pool{dims}d",
                          with_indices or bool(a.get("return_indices", False)))

    return formula


for _dims in (1, 2, 3):
    register_function(f"max_pool{_dims}d")(_pool_function(_dims, "max"))
    # F.max_pool2d(..., return_indices=True) dispatches to this one, which always returns (values, indices)
    register_function(f"max_pool{_dims}d_with_indices")(_pool_function(_dims, "max", with_indices=True))
    register_function(f"avg_pool{_dims}d")(_pool_function(_dims, "avg"))


def _adaptive_cost(x: TensorSpec, dims: int, output_size, mode: str, what: str) -> Cost:
    require_rank(x, (dims + 1, dims + 2), what)
    spatial = x.shape[-dims:]
    wanted = pair(output_size, dims)
    out_spatial = tuple(L if o is None else o for L, o in zip(spatial, wanted))  # None keeps the size
    window = [adaptive_window(L, o) for L, o in zip(spatial, out_spatial)]
    out = x.with_shape((*x.shape[:-dims], *out_spatial))
    return Cost(out=out, kind="adaptive_pool", kernel=window,
                work={"window": prod(window), "transient_bytes": _dropped_indices(out, mode, False)},
                hparams={"mode": mode, "output_size": list(out_spatial)})


def _adaptive_module(m: nn.Module, inputs: list) -> Cost:
    maxes = (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
    mode = "max" if isinstance(m, maxes) else "avg"
    dims = spatial_dims(m, *maxes) if mode == "max" else spatial_dims(
        m, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
    return _adaptive_cost(inputs[0], dims, m.output_size, mode, type(m).__name__)


register_module(nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
                nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)(_adaptive_module)


def _adaptive_function(dims: int, mode: str):
    def formula(args: tuple, kwargs: dict) -> Cost:
        a = {**dict(zip(("input", "output_size"), args)), **kwargs}
        return _adaptive_cost(a["input"], dims, a["output_size"], mode, f"adaptive_{mode}_pool{dims}d")

    return formula


for _dims in (1, 2, 3):
    register_function(f"adaptive_avg_pool{_dims}d")(_adaptive_function(_dims, "avg"))
    register_function(f"adaptive_max_pool{_dims}d")(_adaptive_function(_dims, "max"))
