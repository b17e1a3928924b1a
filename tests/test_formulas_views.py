"""View formulas against PyTorch: shapes, strides, contiguity and when a reshape copies.

Random chains of view ops (permute, transpose, slicing with steps, unsqueeze, squeeze, expand,
chunk, flatten, reshape, view, contiguous) run on a real tensor and through archstat's formulas
side by side.  After every op: the same shape, the same ``is_contiguous()``, the same strides on
every dim of size > 1 (PyTorch's strides of size-1 dims are arbitrary), and for the ops that may
copy, a copy exactly when PyTorch's result lives in a new storage.  ``view`` must fail exactly
when PyTorch refuses it.
"""
from __future__ import annotations

import math

import pytest
import sympy
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from archstat.formulas import FUNCTION_FORMULAS, ShapeError
from archstat.spec import TensorSpec, view_strides

OPS = ["permute", "transpose", "slice", "unsqueeze", "squeeze", "expand", "chunk", "flatten", "reshape", "view",
       "contiguous"]


def formula(name: str, *args, **kwargs):
    return FUNCTION_FORMULAS[name](args, {"_fn": name, **kwargs})


def same_layout(spec: TensorSpec, t: torch.Tensor) -> None:
    assert tuple(spec.shape) == tuple(t.shape)
    assert spec.is_contiguous == t.is_contiguous(), (spec, t.stride())
    for size, ours, real in zip(t.shape, spec.stride, t.stride()):
        if size > 1:
            assert ours == real, (spec, t.stride())


def step(draw, t: torch.Tensor, spec: TensorSpec):
    """One random op on both sides: (new tensor, new spec, copied?) or None when it does not apply."""
    op, rank = draw(st.sampled_from(OPS)), t.dim()
    if op == "permute" and rank >= 2:
        perm = draw(st.permutations(range(rank)))
        return t.permute(*perm), formula("permute", spec, *perm)
    if op == "transpose" and rank >= 2:
        a, b = draw(st.integers(0, rank - 1)), draw(st.integers(0, rank - 1))
        return t.transpose(a, b), formula("transpose", spec, a, b)
    if op == "slice" and rank >= 1:
        d = draw(st.integers(0, rank - 1))
        n = t.shape[d]
        start, stop, stride = draw(st.integers(0, n - 1)), draw(st.integers(1, n)), draw(st.integers(1, 3))
        if stop <= start:
            return None
        index = (slice(None),) * d + (slice(start, stop, stride),)
        return t[index], formula("getitem", spec, index)
    if op == "unsqueeze" and rank < 6:
        d = draw(st.integers(0, rank))
        return t.unsqueeze(d), formula("unsqueeze", spec, d)
    if op == "squeeze":
        return t.squeeze(), formula("squeeze", spec)
    if op == "expand" and 1 in t.shape:
        sizes = [draw(st.integers(2, 3)) if s == 1 else -1 for s in t.shape]
        return t.expand(*sizes), formula("expand", spec, *sizes)
    if op == "chunk" and rank >= 1:
        d = draw(st.integers(0, rank - 1))
        parts = draw(st.integers(1, 3))
        return t.chunk(parts, d)[0], formula("chunk", spec, parts, d).out[0]
    if op == "flatten" and rank >= 1:
        a = draw(st.integers(0, rank - 1))
        b = draw(st.integers(a, rank - 1))
        return t.flatten(a, b), formula("flatten", spec, a, b)
    if op in ("reshape", "view") and rank >= 2:
        a = draw(st.integers(0, rank - 2))  # merge dims a and a+1
        shape = (*t.shape[:a], t.shape[a] * t.shape[a + 1], *t.shape[a + 2:])
        if op == "view":
            try:
                real = t.view(*shape)
            except RuntimeError:
                with pytest.raises(ShapeError, match="non-contiguous"):
                    formula("view", spec, *shape)
                return None
            return real, formula("view", spec, *shape)
        return t.reshape(*shape), formula("reshape", spec, *shape)
    if op == "contiguous":
        return t.contiguous(), formula("contiguous", spec)
    return None


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_random_view_chains_match_pytorch(data):
    shape = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    t = torch.empty(shape)
    spec = TensorSpec(tuple(shape))
    for _ in range(data.draw(st.integers(1, 6))):
        result = step(data.draw, t, spec)
        if result is None:
            continue
        real, cost = result
        copied = real.untyped_storage().data_ptr() != t.untyped_storage().data_ptr()
        if isinstance(cost, TensorSpec):  # one part of a chunk: always a view
            out = cost
            assert not copied
        else:
            out = cost.out
            assert (cost.kind == "copy") == copied, (cost.kind, t.shape, t.stride(), real.shape)
            assert cost.alloc == copied
        same_layout(out, real)
        t, spec = real, out


def test_channel_shuffle_copies_and_its_view_back_is_free():
    n, g, c, h, w = 2, 2, 8, 5, 5
    x = TensorSpec((n, c, h, w))
    grouped = formula("view", x, n, g, c // g, h, w).out
    shuffled = formula("transpose", grouped, 1, 2).out
    assert not shuffled.is_contiguous
    copy = formula("contiguous", shuffled)
    assert copy.kind == "copy" and copy.alloc and copy.out.is_contiguous
    assert formula("view", copy.out, n, c, h, w).kind == "view"
    with pytest.raises(ShapeError):
        formula("view", shuffled, n, c, h, w)  # PyTorch: "view size is not compatible ..."
    assert formula("reshape", shuffled, n, c, h, w).kind == "copy"


def test_symbolic_views_keep_sympy_strides():
    N, H, W = sympy.symbols("N H W", positive=True, integer=True)
    x = TensorSpec((N, 8, H, W))
    tokens = formula("transpose", formula("flatten", x, 2).out, 1, 2).out  # ViT-style N x HW x C
    assert tokens.shape == (N, H * W, 8) and tokens.stride == (8 * H * W, 1, H * W)
    assert not tokens.is_contiguous
    assert formula("contiguous", tokens).kind == "copy"
    assert view_strides((N, 8, H, W), (8 * H * W, H * W, W, 1), (N, 8 * H * W)) == (8 * H * W, 1)


def test_view_with_minus_one_infers_an_int():
    out = formula("reshape", TensorSpec((2, 3, 4)), 2, -1).out
    assert out.shape == (2, 12) and all(type(s) is int for s in out.shape)
    assert math.prod(out.shape) == 24
