"""``nn.Unfold`` (im2col): sliding blocks out of an image.

Unfold of (N, C, H, W) with kernel (kh, kw): out (N, C*kh*kw, L), where L is the number of block
positions, ``L = prod_d (floor((size_d + 2*p_d - dil_d*(k_d - 1) - 1) / s_d) + 1)``, the
convolution's output size.  No MACs (a copy), a new tensor; nothing saved for backward (col2im
needs only sizes).  fvcore has no handle for aten::im2col.  ``nn.Fold`` (col2im) has no formula
yet: its kernel's temporaries on the CPU are not modelled.
"""
from __future__ import annotations

from torch import nn
from torch.nn.modules.utils import _pair

from archstat.formulas import Cost, ShapeError, register_module
from archstat.formulas.conv import conv_out_size
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
