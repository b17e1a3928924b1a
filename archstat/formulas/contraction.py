"""Tensor contractions beyond matmul: ``einsum`` and the fused ``baddbmm`` / ``addmm``.

einsum of two operands, ``"bhqd,bhkd->bhqk"``: every index is a batch index (in both operands and
the output), a free index of one operand (in it and the output), or a contracted index (in both
operands, not in the output).  PyTorch permutes both operands into one ``bmm``, so

    MACs = product of the sizes of all indices (batch x free x free x contracted),

what FlopCounterMode counts (2 per MAC, from that bmm) and fvcore's einsum handle (1 per MAC).
An index in one operand only that is not in the output is summed away before the product (torch
and fvcore then disagree), and a product without a contracted index (or whose contracted indices
all have size 1) is an elementwise ``mul``:
both are left without a formula (flagged), as are einsums of other than two operands.

``baddbmm(input, b1, b2)`` = ``beta * input + alpha * (b1 @ b2)`` with b1 (B, n, k), b2 (B, k, m):
MACs = B * n * k * m, the addition is not a MAC; ``addmm`` likewise without B.  fvcore has a
handle for addmm, not for baddbmm.
"""
from __future__ import annotations

from typing import Any

from archstat.formulas import Cost, ShapeError, register_function
from archstat.formulas._checks import broadcast_shapes
from archstat.spec import Size, TensorSpec, contiguous_strides, is_symbolic, prod, view_strides


def _expand_ellipsis(terms: list[str], ranks: list[int]) -> list[str]:
    """Replace ``...`` by fresh upper-case letters, right-aligned as einsum broadcasts them."""
    width = max([r - (len(t) - 3) for t, r in zip(terms, ranks) if "..." in t] or [0])
    fresh = "".join(chr(ord("A") + i) for i in range(width))
    return [t.replace("...", fresh[width - (r - (len(t) - 3)):]) if "..." in t else t for t, r in zip(terms, ranks)]


def parse_einsum(equation: str, ranks: list[int]) -> tuple[list[str], str]:
    """``"ij,jk->ik"`` -> (["ij", "jk"], "ik"); without ``->`` the output is the indices seen once, sorted."""
    eq = equation.replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    if not arrow:
        letters = "".join(terms).replace("...", "")
        out = ("..." if "..." in lhs else "") + "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    expanded = _expand_ellipsis(terms + [out], ranks + [max(ranks)])
    return expanded[:-1], expanded[-1]


def _operands(args: tuple) -> tuple[str, list[TensorSpec]]:
    equation, rest = args[0], args[1:]
    if len(rest) == 1 and isinstance(rest[0], (list, tuple)):
        rest = tuple(rest[0])
    return equation, [t for t in rest if isinstance(t, TensorSpec)]


@register_function("einsum")
def einsum_function(args: tuple, kwargs: dict) -> Cost:
    equation, ops = _operands(args)
    if len(ops) != 2:
        raise NotImplementedError("einsum of other than two operands")
    (ta, tb), out = parse_einsum(equation, [len(t.shape) for t in ops])
    sizes: dict[str, Any] = {}
    for term, t in zip((ta, tb), ops):
        if len(term) != len(t.shape):
            raise ShapeError(f"einsum {equation!r}: operand of shape {list(t.shape)} has {len(term)} indices")
        for c, s in zip(term, t.shape):
            if c in sizes and sizes[c] != s and 1 not in (sizes[c], s) and not is_symbolic(s):
                raise ShapeError(f"einsum {equation!r}: index {c} is {sizes[c]} and {s}")
            sizes[c] = s if c not in sizes or sizes[c] == 1 else sizes[c]
    # a contracted index of size 1 sums nothing: torch's sumproduct_pair then multiplies elementwise
    # (``mul``, no ``bmm``), so only indices of another size make a contraction
    contracted = [c for c in sizes if c in ta and c in tb and c not in out and not (isinstance(sizes[c], int)
                                                                                  and sizes[c] == 1)]
    summed_alone = [c for c in sizes if c not in out and not (c in ta and c in tb)]
    if not contracted or summed_alone:
        raise NotImplementedError("einsum without a contraction, or summing an index of one operand")
    macs: Size = prod(sizes[c] for c in sizes)
    copies, strides = _bmm_layout(ta, tb, out, ops, sizes)
    out_spec = TensorSpec(tuple(sizes[c] for c in out), ops[0].dtype, strides)
    return Cost(out=out_spec.as_view(out_spec.shape, out_spec.stride), kind="matmul", macs=macs,
                work={"transient_bytes": sum(copies) * ops[0].dtype.itemsize},
                hparams={"fn": "einsum", "equation": f"{ta},{tb}->{out}", "source": equation.replace(" ", ""),
                         "shapes": [list(ops[0].shape), list(ops[1].shape)], "copies": copies})


def _bmm_layout(ta: str, tb: str, out: str, ops: list[TensorSpec], sizes: dict) -> tuple[list[Size], tuple]:
    """torch's ``sumproduct_pair``: the operands, aligned to the output's indices then the contracted
    ones, are permuted to (batch, free, contracted) and (batch, contracted, free) and reshaped for one
    ``bmm``: a copy of each (elements; 0 if none) where no such view exists.  The result is the bmm's
    (batch, left free, right free) laid out that way and permuted to the output's order: its strides."""
    if any(is_symbolic(s) for s in sizes.values()):
        return [0, 0], contiguous_strides([sizes[c] for c in out])
    summed = sorted(c for c in sizes if c not in out)
    big = {c: [c in t and sizes[c] != 1 and t_shape[t.index(c)] != 1 for t, t_shape in
               ((ta, ops[0].shape), (tb, ops[1].shape))] for c in sizes}
    lro = [c for c in out if all(big[c])]
    lo = [c for c in out if big[c][0] and not big[c][1]]
    ro = [c for c in out if c not in lro and c not in lo]
    total = [c for c in summed if all(big[c])]
    copies = []
    for term, t, order, groups in ((ta, ops[0], lro + lo + total, (lro, lo, total)),
                                   (tb, ops[1], lro + total + ro, (lro, total, ro))):
        shape = [t.shape[term.index(c)] if c in term else 1 for c in order]
        stride = [t.stride[term.index(c)] if c in term else 1 for c in order]
        target = [prod(sizes[c] for c in g) for g in groups]
        copies.append(prod(target) if view_strides(shape, stride, target) is None else 0)
    made = lro + lo + ro  # the bmm's result, contiguous in this order
    step, of = 1, {}
    for c in reversed(made):
        of[c] = step
        step = step * sizes[c]
    return copies, tuple(of[c] for c in out)


@register_function("baddbmm", "addmm")
def baddbmm_function(args: tuple, kwargs: dict) -> Cost:
    names = ("input", "mat1", "mat2") if kwargs.get("_fn") == "addmm" else ("input", "batch1", "batch2")
    a = {**dict(zip(names, args)), **kwargs}
    x, m1, m2 = a[names[0]], a[names[1]], a[names[2]]
    rank = 2 if names[1] == "mat1" else 3
    if len(m1.shape) != rank or len(m2.shape) != rank:
        raise ShapeError(f"{kwargs.get('_fn')} expects {rank}-d products, got {list(m1.shape)} and {list(m2.shape)}")
    if m1.shape[-1] != m2.shape[-2] and not is_symbolic(m1.shape[-1]):
        raise ShapeError(f"cannot multiply shapes {list(m1.shape)} and {list(m2.shape)}")
    shape = (*m1.shape[:-1], m2.shape[-1])
    broadcast_shapes(x.shape, shape)  # the added input broadcasts to the product's shape
    return Cost(out=m1.with_shape(shape), kind="matmul", macs=prod(shape) * m1.shape[-1],
                hparams={"fn": kwargs.get("_fn", "baddbmm"), "shapes": [list(m1.shape), list(m2.shape)],
                         "added": True})
