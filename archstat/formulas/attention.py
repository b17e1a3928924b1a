"""``F.scaled_dot_product_attention`` as PyTorch runs it on the CPU: the fused flash kernel.

q (B, H, L, E), k (B, H, S, E), v (B, H, S, Ev) -> out (B, H, L, Ev).  The two products
``q @ k^T`` and ``softmax(.) @ v`` make

    MACs = B * H * L * S * (E + Ev)

whether or not the call is causal or masked (the whole score matrix is priced, as FlopCounterMode
prices it on CUDA; the CPU flash kernel skips fully masked causal blocks, so this is an upper bound
of the work there).

Kernel.  On the CPU (torch 2.13) ``_scaled_dot_product_flash_attention_for_cpu`` runs when q, k, v
are 4-d with equal batch, heads and head size, the mask is 2-d or 4-d, and ``dropout_p == 0``.
It allocates the output in q's memory order (q from the usual ``(B, L, H, E)`` projection transposed
to ``(B, H, L, E)``: so is the output, and ``out.transpose(1, 2).reshape(B, L, H * Ev)`` is a view;
q made contiguous as (B, H, L, E): so is the output, and that reshape copies), and a float32
log-sum-exp (B, H, L), and, for a boolean mask, a copy of
the mask in q's dtype; backward keeps q, k, v, the output, the log-sum-exp and the mask (the float
copy of a boolean one).  This is the kernel the estimate assumes.  Any other call (dropout, 3-d
inputs, different head sizes, grouped-query attention) runs the unfused math kernel, whose
temporaries this formula does not model: it is flagged unsupported rather than guessed.

Conventions: FlopCounterMode has no formula for the CPU flash kernel (it counts 0, forward and
backward), fvcore has no handle for ``aten::scaled_dot_product_attention`` (oracle unsupported);
the lecture convention counts the MACs, as for any matrix product.
"""
from __future__ import annotations

import torch

from archstat.formulas import Cost, ShapeError, register_function
from archstat.spec import TensorSpec, prod

NAMES = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")


def flash_cpu_runs(q: TensorSpec, k: TensorSpec, v: TensorSpec, mask, dropout_p: float, gqa: bool) -> bool:
    """Does torch 2.13 pick the CPU flash kernel for this call (sdp_utils_cpp.cpp's constraints)?"""
    if dropout_p > 0 or gqa or any(len(t.shape) != 4 for t in (q, k, v)):
        return False
    if not (q.shape[:2] == k.shape[:2] == v.shape[:2] and q.shape[-1] == k.shape[-1] == v.shape[-1]):
        return False
    if mask is not None and len(mask.shape) not in (2, 4):
        return False
    return all(t.stride[-1] == 1 for t in (q, k, v))


def dense_strides(shape: tuple, like: tuple) -> tuple:
    """Strides of a dense tensor of ``shape`` whose dimensions lie in memory in the order of the strides
    ``like`` (largest first; ties keep the dimension order), as ``torch.empty_like`` lays one out."""
    order = sorted(range(len(shape)), key=lambda d: (-like[d], d))
    strides, step = [0] * len(shape), 1
    for d in reversed(order):
        strides[d] = step
        step *= shape[d]
    return tuple(strides)


@register_function("scaled_dot_product_attention")
def sdpa_function(args: tuple, kwargs: dict) -> Cost:
    a = {**dict(zip(NAMES, args)), **kwargs}
    q, k, v, mask = a["query"], a["key"], a["value"], a.get("attn_mask")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ShapeError(f"attention of q {list(q.shape)}, k {list(k.shape)}, v {list(v.shape)}")
    if not flash_cpu_runs(q, k, v, mask, float(a.get("dropout_p") or 0.0), bool(a.get("enable_gqa"))):
        raise NotImplementedError("scaled_dot_product_attention on the math kernel")
    b, h, length, e = q.shape
    s, ev = k.shape[-2], v.shape[-1]
    lse = b * h * length  # float32 log-sum-exp per query row
    saved = [("in", 0), ("in", 1), ("in", 2), ("out",), ("new", lse, torch.float32)]
    transient = lse * 4
    if mask is not None and mask.dtype == torch.bool:  # converted to q's dtype, and that copy is saved
        saved.append(("new", prod(mask.shape), q.dtype))
        transient += prod(mask.shape) * q.dtype.itemsize
    elif mask is not None and type(mask) is TensorSpec:  # an activation (a parameter or buffer is state)
        saved.append(("in", 3))
    out = q.as_view((b, h, length, ev), dense_strides((b, h, length, ev), q.stride))
    return Cost(out=out, kind="attention", macs=b * h * length * s * (e + ev),
                hparams={"kernel": "flash_cpu", "is_causal": bool(a.get("is_causal")), "masked": mask is not None},
                work={"transient_bytes": transient, "saved": saved})
