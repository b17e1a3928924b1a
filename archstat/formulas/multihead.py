"""``nn.MultiheadAttention``: projections, attention and the output projection, as PyTorch runs them.

Per call, with batch B, target length L, source length S, embed_dim E, H heads of size E/H:

    MACs = in-projections + B*L*S*2E (scores and weighted sum, all heads) + L*B*E*E (out_proj)

where the in-projections are L*B*E*3E for self-attention (``mha(x, x, x)``: one packed linear),
L*B*E*E + S*B*E*2E when key is value, and L*B*E*E + S*B*kdim*E + S*B*vdim*E otherwise.

Which kernels run (torch 2.13, ``MultiheadAttention.forward``), so what the oracles see:

* eval, self-attention, ``batch_first``, an even number of heads, one embed size, no float mask
  given: the fused fast path ``aten::_native_multi_head_attention`` (under ``no_grad``, as
  ``archstat validate`` and any inference run it).  FlopCounterMode has no formula for it: 0.
* otherwise ``F.multi_head_attention_forward``: linears (FlopCounterMode: 2 per MAC), then with
  ``need_weights`` (the default) ``bmm`` / ``baddbmm`` (with a mask) and ``softmax``, averaged over
  heads unless ``average_attn_weights=False``; without it the CPU flash kernel of
  ``scaled_dot_product_attention`` (FlopCounterMode: 0, forward and backward).
* fvcore traces the second form always: its linear handle, its ``bmm`` handle (no ``baddbmm``, no
  SDPA), and ops it does not handle (the scaling ``mul``, ``softmax``): oracle unsupported inside.

The call decides as much as the module (``need_weights``, masks, whether key is query): the formula
reads the call's arguments (``inputs.args`` / ``inputs.kwargs``).  Memory: ``Timeline`` replays the
kernels' allocations for the inference peak; ``saved`` lists what autograd keeps.  Not modelled,
so flagged unsupported: ``add_bias_kv``, ``add_zero_attn``, ``is_causal``, unbatched (2-d) input,
a 3-d ``attn_mask``, projections without bias, and training dropout with ``need_weights=False``
(the SDPA math kernel).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from archstat.formulas import Cost, register_module
from archstat.formulas._checks import require_channels, require_rank
from archstat.formulas.timeline import Timeline
from archstat.spec import Size, TensorSpec, view_strides

NAMES = ("query", "key", "value", "key_padding_mask", "need_weights", "attn_mask", "average_attn_weights", "is_causal")


def _unsupported(m: nn.MultiheadAttention, a: dict) -> bool:
    mask = a.get("attn_mask")
    return bool(a.get("is_causal") or m.bias_k is not None or m.add_zero_attn or m.out_proj.bias is None
                or m.in_proj_bias is None or (mask is not None and len(mask.shape) != 2)
                or len(a["query"].shape) != 3
                or (m.training and m.dropout > 0 and not a.get("need_weights", True)))


def fast_path(m: nn.MultiheadAttention, a: dict) -> bool:
    """Does inference take ``aten::_native_multi_head_attention`` (MultiheadAttention.forward's checks)?"""
    q, masks = a["query"], [a.get("attn_mask"), a.get("key_padding_mask")]
    float_mask = any(t is not None and t.dtype.is_floating_point for t in masks)
    return (not m.training and q is a["key"] is a["value"] and m.batch_first and m.num_heads % 2 == 0
            and m._qkv_same_embed_dim and not float_mask and q.dtype == m.in_proj_bias.dtype)


def _projections(m: nn.MultiheadAttention, a: dict, b: Size, length: Size, src: Size) -> list[tuple[int, Size, Size]]:
    """The in-projection linears: (input index, rows, MACs) each."""
    e = m.embed_dim
    if not m._qkv_same_embed_dim:
        return [(0, length * b, length * b * e * e), (1, src * b, src * b * m.kdim * e), (2, src * b, src * b * m.vdim * e)]
    if a["query"] is a["key"] is a["value"]:
        return [(0, length * b, length * b * e * 3 * e)]
    if a["key"] is a["value"]:
        return [(0, length * b, length * b * e * e), (1, src * b, src * b * e * 2 * e)]
    return [(k, n * b, n * b * e * e) for k, n in ((0, length), (1, src), (2, src))]


@register_module(nn.MultiheadAttention)
def multihead_attention_module(m: nn.MultiheadAttention, inputs: list) -> Cost:
    a: dict[str, Any] = {**dict(zip(NAMES, getattr(inputs, "args", ()))), **getattr(inputs, "kwargs", {})}
    if "query" not in a:  # called by a user's code without the call: cannot tell self-attention apart
        raise NotImplementedError("MultiheadAttention without its call's arguments")
    q, k = a["query"], a["key"]
    require_rank(q, (3,), "MultiheadAttention")
    if _unsupported(m, a):
        raise NotImplementedError("MultiheadAttention variant")
    bf, e, h = m.batch_first, m.embed_dim, m.num_heads
    b, length = (q.shape[0], q.shape[1]) if bf else (q.shape[1], q.shape[0])
    src = k.shape[1] if bf else k.shape[0]
    require_channels(q.shape[-1], e, "query features")
    require_channels(k.shape[-1], m.kdim, "key features")
    require_channels(a["value"].shape[-1], m.vdim, "value features")
    need, avg = bool(a.get("need_weights", True)), bool(a.get("average_attn_weights", True))
    proj = _projections(m, a, b, length, src)
    half = b * length * src * e  # the scores q k^T, and the weighted sum of v: each B*H*L*S*(E/H)
    out_macs = length * b * e * e
    fast = fast_path(m, a)
    masked = a.get("attn_mask") is not None or a.get("key_padding_mask") is not None
    out, weights = _outputs(q, b, length, src, e, h, need, avg, fast, bf)
    outs = (out, weights)
    out_bytes = out.nbytes + (weights.nbytes if weights is not None else 0)
    size = q.dtype.itemsize
    memo = _Memory(m, a, b, length, src, size, need, avg, bf, fast)
    # backward products: each in-projection's weight, its input when that needs a gradient; with
    # need_weights two bmm's with both operands computed; the out-projection's weight and input
    bwd = [(macs, -1) for _, _, macs in proj] + [(macs, k) for k, _, macs in proj]
    bwd += [(half, -1)] * (4 if need else 0) + [(out_macs, -1)] * 2
    return Cost(out=outs, kind="attention", macs=sum(x for _, _, x in proj) + 2 * half + out_macs,
                hparams={"fn": "multi_head_attention", "kernel": "native_mha" if fast else
                         ("bmm" if need else "flash_cpu"), "need_weights": need, "masked": masked,
                         "in_proj_macs": sum(x for _, _, x in proj), "score_macs": half, "context_macs": half,
                         "out_proj_macs": out_macs,
                         "batch_first": bf},
                work={"transient_bytes": memo.transient(out_bytes), "saved": memo.saved(inputs), "bwd_products": bwd})


def _outputs(q: TensorSpec, b: Size, length: Size, src: Size, e: int, h: int, need: bool, avg: bool, fast: bool,
             bf: bool) -> tuple:
    """(attn_output, attn_weights or None).  The slow path computes (L, B, E) and returns it
    transposed when batch_first; the weights are the head mean, or a view of the softmax."""
    if fast or not bf:
        out = q.with_shape((b, length, e) if bf else (length, b, e))
    else:
        out = q.as_view((b, length, e), (e, b * e, 1))
    weights = None if not need else q.with_shape((b, length, src) if avg else (b, h, length, src))
    return out, weights


class _Memory:
    """The kernels' allocations, in order (for the inference peak), and what autograd saves."""

    def __init__(self, m: nn.MultiheadAttention, a: dict, b: Size, length: Size, src: Size, size: int, need: bool,
                 avg: bool, bf: bool, fast: bool) -> None:
        self.m, self.a, self.b, self.length, self.src, self.size = m, a, b, length, src, size
        self.need, self.avg, self.bf, self.fast = need, avg, bf, fast
        self.e, self.h = m.embed_dim, m.num_heads
        self.kpm, self.mask = a.get("key_padding_mask"), a.get("attn_mask")

    def _mask_copies(self, t: Timeline) -> list[tuple[str, Size, Any]]:
        """``_canonical_mask``: a boolean mask becomes a float one in the query's dtype (a new tensor)."""
        made = []
        for name, mask in (("kpm", self.kpm), ("mask", self.mask)):
            if mask is not None and mask.dtype == torch.bool:
                t.new(name, mask.numel * self.size)
                made.append((name, mask.numel, mask))
        return made

    def transient(self, out_bytes: Size) -> Size:
        t = Timeline()
        self._mask_copies(t)
        b, length, src, e, h, s = self.b, self.length, self.src, self.e, self.h, self.size
        if self.fast:
            if self.kpm is not None and self.mask is not None:  # merge_masks: expanded sum (B, H, L, L)
                t.new("merged", b * h * length * length * s)
            t.new("out", out_bytes)
            return t.transient(out_bytes)
        q_at, k_at, v_at = self._in_projections(t)
        if self.kpm is not None:  # (B, S) -> (B*H, 1, S): a copy of the expanded view
            t.new("kpm_rows", b * h * src * s)
            if self.mask is not None:
                t.new("mask_sum", b * h * length * src * s)
        scores = b * h * length * src * s
        if self.need:
            t.new("q_scaled", length * b * e * s)
            t.new("scores", scores)
            t.free("q_scaled")  # ``del q_scaled, k``: k's own projection goes (q keeps a packed one)
            if k_at not in (q_at, v_at):
                t.free(k_at)
            t.new("softmax", scores)
            t.free("scores")
            t.new("context", length * b * e * s)
            if v_at != q_at:  # ``del v``
                t.free(v_at)
            t.new("rows", length * b * e * s)  # transpose + reshape to (L*B, E): a copy
            t.free("context")
        else:  # the flash kernel's output (laid out as q: (L, B, H, E/H), so the reshape is a view)
            t.new("rows", length * b * e * s)
            t.new("lse", b * h * length * 4)  # and its float32 log-sum-exp
            t.free("lse", *dict.fromkeys((q_at, k_at, v_at)))  # ``del q, k, v``
        t.new("out", length * b * e * s)
        t.free("rows")
        if self.need and self.avg:
            t.new("weights", b * length * src * s)
            t.free("softmax")
        return t.transient(out_bytes)

    def _in_projections(self, t: Timeline) -> tuple[str, str, str]:
        """The in-projections, then the packed one's ``contiguous()`` copy: views of it are q, k, v
        (or k, v).  Returns the allocations that hold q, k and v."""
        s, e = self.size, self.e
        holders = []
        for k, rows, width in self._linears():
            name = f"proj{k}"
            if self._copied(k):  # (L, B, E) transposed: matmul copies it to (L*B, E), mm, then the bias add
                t.new("copy", rows * self._in_features(k) * s)
                t.new("mm", rows * width * s)
                t.free("copy")
                t.new(name, rows * width * s)
                t.free("mm")
            else:  # contiguous: one addmm on a view
                t.new(name, rows * width * s)
            if width > e:  # unflatten + transpose + contiguous: a packed copy
                t.new(f"packed{k}", rows * width * s)
                t.free(name)
                name = f"packed{k}"
            holders += [name] * (width // e)
        return holders[0], holders[1], holders[2]

    def _copied(self, k: int) -> bool:
        """Is input ``k`` copied by its in-projection?  The linear reshapes its (L, B, E) operand to
        (L*B, E), a copy unless that is a view.  batch_first inputs are transposed to (L, B, E) first (a
        view exists only for L = 1 or B = 1); a time-major input is copied when it is itself such a view,
        ``x.transpose(0, 1)`` of a batch-first tensor (its linear then keeps the copy, not the input: a
        ReLU's output before it was counted once for both, 64 bytes short at N = L = 2, E = 4)."""
        x = self.a[("query", "key", "value")[k]]
        shape, st = tuple(x.shape), tuple(x.stride)
        if self.bf:
            shape, st = (shape[1], shape[0], *shape[2:]), (st[1], st[0], *st[2:])
        return view_strides(shape, st, (shape[0] * shape[1], *shape[2:])) is None

    def _in_features(self, k: int) -> int:
        return (self.e, self.m.kdim, self.m.vdim)[k] if not self.m._qkv_same_embed_dim else self.e

    def _linears(self) -> list[tuple[int, Size, int]]:
        """(input index, rows, output width) of each in-projection linear."""
        return [(k, rows, macs // (rows * self._in_features(k)))
                for k, rows, macs in _projections(self.m, self.a, self.b, self.length, self.src)]

    def saved(self, inputs: list) -> list:
        """What autograd keeps for backward on the slow path (training)."""
        b, length, src, e, h, s = self.b, self.length, self.src, self.e, self.h, self.size
        dtype = self.a["query"].dtype
        items: list = []
        projected: dict[int, bool] = {}  # input index -> its projection is a packed (k, v) copy
        for k, rows, width in self._linears():
            # the linear keeps its input: the reshaped copy of a transposed input, else the input
            items.append(("new", rows * self._in_features(k), dtype) if self._copied(k) else ("in", k))
            projected[k] = width > e
        packed = [("new", rows * width, dtype) for k, rows, width in self._linears() if width > e]
        plain = [("new", rows * e, dtype) for k, rows, width in self._linears() if width == e]
        scores = b * h * length * src
        if self.need:
            # q * scale (saved by the scores' bmm), k and v: the packed copy, or the k / v projections
            items += [("new", length * b * e, dtype)] + packed + [p for p in plain[1:]]
            items.append(("new", scores, dtype))  # softmax keeps its output
            if self.m.training and self.m.dropout > 0:  # the CPU mask, and the dropped weights bmm keeps
                items += [("new", scores, dtype), ("new", scores, dtype)]
        else:
            # the flash kernel keeps q, k, v, its output, the float32 log-sum-exp and the float mask
            items += packed + plain + [("new", b * h * length, torch.float32)] + self._sdpa_mask(inputs, dtype)
        # the out-projection keeps its (L*B, E) input: a copy of the context, or (flash) its output
        items.append(("new", length * b * e, dtype))
        return items

    def _sdpa_mask(self, inputs: list, dtype: torch.dtype) -> list:
        b, length, src, h = self.b, self.length, self.src, self.h
        if self.kpm is not None:
            return [("new", b * h * length * src if self.mask is not None else b * h * src, dtype)]
        if self.mask is None:
            return []
        if self.mask.dtype == torch.bool:
            return [("new", self.mask.numel, dtype)]
        index = next((i for i, x in enumerate(inputs) if x is self.mask), None)
        return [] if index is None or not type(self.mask) is TensorSpec else [("in", index)]
