"""``nn.Unfold`` (im2col): sliding blocks out of an image.

Unfold of (N, C, H, W) with kernel (kh, kw): out (N, C*kh*kw, L), where L is the number of block
positions, ``L = prod_d (floor((size_d + 2*p_d - dil_d*(k_d - 1) - 1) / s_d) + 1)``, the
convolution's output size.  No MACs (a copy), a new tensor; nothing saved for backward (col2im
needs only sizes).  fvcore has no handle for aten::im2col.

``nn.Fold`` (col2im) is the reverse: (N, C*kh*kw, L) -> (N, C, H, W) for ``output_size`` (H, W),
summing the blocks where they overlap (one add per input element beyond the first per output
element, not priced by any convention: a copy, as for Unfold).  One aten op, so nothing transient
at the dispatch level, but on the CPU its result lives in a storage of max(input, output) bytes
(made like the input, then resized); backward is im2col and saves nothing.  fvcore has no handle for
aten::col2im; FlopCounterMode has no formula for it.
"""
from __future__ import annotations

from torch import nn
from torch.nn.modules.utils import _pair

from archstat.formulas import Cost, ShapeError, register_module
from archstat.formulas.conv import conv_out_size
from archstat.formulas.timeline import size_max
from archstat.spec import Size, prod


def _blocks(size: tuple, m: nn.Module) -> tuple[Size, ...]:
    k, d, p, s = (_pair(v) for v in (m.kernel_size, m.dilation, m.padding, m.stride))
    counts = tuple(conv_out_size(size[i], k[i], s[i], p[i], d[i]) for i in range(2))
    if any(isinstance(c, int) and c < 1 for c in counts):
        raise ShapeError(f"kernel {list(k)} does not fit an input of {list(size)} with padding {list(p)}")
    return counts


@register_module(nn.Unfold)
def unfold_module(m: nn.Unfold, inputs: list) -> Cost:
    x = inputs[0]
    if len(x.shape) != 4:
        raise ShapeError(f"Unfold expects N x C x H x W, got a {len(x.shape) - 1}-d input per sample")
    n, c, h, w = x.shape
    k = _pair(m.kernel_size)
    return Cost(out=x.with_shape((n, c * k[0] * k[1], prod(_blocks((h, w), m)))), kind="copy",
                kernel=list(k), stride=list(_pair(m.stride)), padding=list(_pair(m.padding)),
                hparams={"fn": "unfold"})


@register_module(nn.Fold)
def fold_module(m: nn.Fold, inputs: list) -> Cost:
    x = inputs[0]
    if len(x.shape) != 3:
        raise ShapeError(f"Fold expects N x C*kh*kw x L, got a {len(x.shape) - 1}-d input per sample")
    n, ck, length = x.shape
    k, size = _pair(m.kernel_size), _pair(m.output_size)
    if not isinstance(ck, int) or ck % (k[0] * k[1]):
        raise ShapeError(f"Fold's {ck} input channels are not a multiple of the kernel's {k[0] * k[1]} positions")
    blocks = prod(_blocks(size, m))
    if isinstance(length, int) and isinstance(blocks, int) and length != blocks:
        raise ShapeError(f"Fold to {list(size)} needs {blocks} blocks, got {length}")
    out = x.with_shape((n, ck // (k[0] * k[1]), *size))
    # the CPU kernel makes its result like the input, then resizes it: the storage keeps the larger size
    return Cost(out=out, kind="copy", kernel=list(k), stride=list(_pair(m.stride)), padding=list(_pair(m.padding)),
                hparams={"fn": "fold"}, work={"storage_bytes": size_max(x.nbytes, out.nbytes)})
