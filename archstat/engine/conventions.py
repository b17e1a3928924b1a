"""The counting conventions, in one place: what a "flop" is for each tool archstat reproduces.

Every formula reports convention-free facts (``macs``, ``kind``, ``work``, shapes).  A convention
turns them into a FLOP count, and says whether its reference tool handles the op at all:

* ``lecture`` (default): the EECS 498 slides.  flop = MACs for conv / linear / matmul, plus
  ``K*K`` per output element for pooling (``pool1 = 64*27*27 * 3*3 = 419,904``).  Activations,
  normalisation, adds and reshapes cost 0.
* ``fvcore``: ``fvcore.nn.FlopCountAnalysis``.  One fused multiply-add is one flop; batch norm costs
  1 (2 with affine) per element in eval and 4 (5) in training; group/layer norm 4 (5); instance norm
  likewise; adaptive average pooling 1 per input element; upsampling 1 (nearest) or 4 (bilinear)
  per output element.  ReLU, dropout, cat and reshapes are deliberately 0; max/avg pooling, adds,
  other activations are ops fvcore does not handle ("oracle unsupported": it warns and counts 0).
* ``flopcounter``: ``torch.utils.flop_counter.FlopCounterMode``: 2 per MAC for conv and matrix
  products, nothing else.  A product it has no formula for (``aten::mv``, the fused inference
  kernel of multi-head attention, oneDNN's LSTM) counts 0 and is flagged: the tool does not count it.
* ``hardware``: the work a device really does, for achieved FLOP/s and rooflines (not a table
  convention): 2 per MAC, plus elementwise work (1 per output element for activations and
  binary ops, ``window`` per output for pooling, 2 per element for eval BN).
"""
from __future__ import annotations

import math
from typing import Callable

from archstat.engine.convention_names import CONVENTIONS
from archstat.errors import ArchstatError
from archstat.formulas import Cost
from archstat.spec import Size, is_symbolic, prod

MATRIX_KINDS = ("conv", "conv_transpose", "linear", "matmul")

def _numel(spec) -> Size:
    return prod(spec.shape)


def _out(cost: Cost):
    return cost.out[0] if isinstance(cost.out, tuple) else cost.out


def lecture(cost: Cost, inputs: list) -> tuple[Size, bool]:
    if cost.kind in MATRIX_KINDS or cost.kind in ("attention", "recurrent"):  # their matrix products
        return cost.macs, True
    if cost.kind in ("pool", "adaptive_pool"):
        return _numel(_out(cost)) * cost.work["window"], True
    return 0, cost.kind != "unsupported"


# Elementwise ops on fvcore's ignore list (counted 0 on purpose, not "unsupported").
FVCORE_IGNORED_ELEMENTWISE = ("clamp", "floordiv", "eq", "ge", "gt", "masked_fill")
# copies fvcore has neither a handle for nor on its ignore list (it ignores zeros_like, full_like, roll)
FVCORE_UNHANDLED_COPIES = ("pixel_shuffle", "pixel_unshuffle", "pad", "ones_like", "empty_like", "rand_like",
                           "randn_like", "flip", "clone", "repeat", "index_select", "unfold", "fold", "embedding",
                           "new_ones", "setitem_scalar", "zero", "fill")


def fvcore(cost: Cost, inputs: list) -> tuple[Size, bool]:
    """fvcore's handles, op by op (fvcore/nn/flop_count.py and its ignore list in jit_analysis.py)."""
    kind, affine = cost.kind, bool(cost.work.get("affine", False))
    if kind in ("conv", "conv_transpose"):
        # padding="same"/"valid" runs aten::_convolution_mode, which fvcore has no handle for; with
        # a padding_mode other than zeros, F.pad runs first and the conv itself pads nothing
        string_padded = isinstance(cost.padding, str) and cost.hparams.get("padding_mode", "zeros") == "zeros"
        return (0, False) if string_padded else (cost.macs, True)
    if kind == "attention" and cost.hparams.get("fn") == "multi_head_attention":
        # traced as linears, bmm for the weighted sum, and for the scores bmm (baddbmm with a mask:
        # no handle); without need_weights SDPA (no handle); the scaling mul and softmax inside
        hp = cost.hparams
        if hp["kernel"] == "native_mha":  # inference under no_grad: the fused kernel, no handle
            return 0, False
        if not hp["need_weights"]:
            return hp["in_proj_macs"] + hp["out_proj_macs"], True
        return hp["in_proj_macs"] + hp["out_proj_macs"] + hp["context_macs"] + hp["score_macs"] * (not hp["masked"]), True
    if kind == "matmul" and cost.hparams.get("fn") == "einsum":
        hp = cost.hparams
        return fvcore_einsum(hp.get("source") or hp["equation"], hp["equation"], cost.macs), True
    if kind == "matmul" and cost.hparams.get("fn") == "baddbmm":  # no handle for aten::baddbmm
        return 0, False
    if kind == "matmul":
        a, b = cost.hparams["shapes"]
        if len(b) < 2:  # matrix-vector: fvcore's matmul handle asserts a 2-d right operand
            return 0, False
        return prod(a) * b[-1], True  # fvcore: prod(left shape) * columns (no broadcast of the left side)
    if kind in MATRIX_KINDS:
        return cost.macs, True
    if kind == "batch_norm":
        if cost.hparams.get("training"):
            return _numel(inputs[0]) * (5 if affine else 4), True
        return _numel(inputs[0]) * (2 if affine else 1), True
    if kind in ("group_norm", "layer_norm"):
        return _numel(inputs[0]) * (5 if affine else 4), True
    if kind == "instance_norm":
        return _numel(inputs[0]) * (5 if affine else 4), True
    if kind == "adaptive_pool":  # a handle for aten::adaptive_avg_pool2d only (not 1d/3d, not max)
        two_d = len(cost.hparams["output_size"]) == 2
        return (_numel(inputs[0]), True) if cost.hparams["mode"] == "avg" and two_d else (0, False)
    if kind == "upsample":  # upsample_nearest2d and upsample_bilinear2d only
        scale = {"nearest": 1, "bilinear": 4}.get(cost.hparams.get("mode"))
        two_d = len(_out(cost).shape) == 4
        return (_numel(_out(cost)) * scale, True) if scale and two_d else (0, False)
    if kind in ("identity", "dropout") and "p" in cost.hparams:  # a dropout call, active or not:
        # aten::dropout is on the ignore list, the in-place aten::dropout_ (MobileNetV3's head) is not
        return 0, cost.hparams.get("fn", "dropout") == "dropout" and not cost.hparams.get("inplace")
    if kind == "copy" and cost.hparams.get("fn") in FVCORE_UNHANDLED_COPIES:  # F.pad is traced as aten::pad
        return 0, False
    if kind == "reduce" and cost.hparams.get("fn") == "max":
        return 0, True  # aten::max (all three forms) is on the ignore list; aten::min is not
    if kind in ("identity", "view", "copy", "concat"):  # aten::contiguous / reshape are on the ignore list
        return 0, True
    if kind == "activation":
        return 0, cost.hparams.get("fn") == "relu"
    if kind == "elementwise":
        return 0, cost.hparams.get("fn") in FVCORE_IGNORED_ELEMENTWISE
    return 0, False  # pooling, reductions, LRN, unsupported: fvcore skips them


def fvcore_einsum(source: str, equation: str, macs: Size) -> Size:
    """fvcore's einsum handle: the MACs for ``abc,abd->acd`` and ``abc,adc->adb`` (letters renamed
    in order of appearance); any other equation reads numpy's ``einsum_path`` report, whose
    "Optimized FLOP count" is printed as ``%.3e`` of ``2*MACs + 1`` (numpy counts a multiply and
    an add, plus one), then halved and floored: 4 significant digits (MaxViT's attention:
    39,337,984 MACs read as 39,340,000).  ``source`` is the equation as written, ``equation`` the
    parsed one (``...`` expanded, the output explicit).  Symbolic MACs are kept whole."""
    letters = {c: chr(97 + i) for i, c in enumerate(dict.fromkeys(c for c in source if c.isalpha()))}
    renamed = "".join(letters.get(c, c) for c in source)
    if renamed in ("abc,abd->acd", "abc,adc->adb") or is_symbolic(macs):
        return macs
    inputs, out = equation.split("->")
    summed = set(inputs.replace(",", "")) - set(out)
    return math.floor(float(f"{(2 if summed else 1) * macs + 1:.3e}") / 2)


def fvcore_unsupported_inside(kind: str, hparams: dict) -> bool:
    """Does fvcore report an unsupported op inside a row whose main op it counts?  A conv with
    ``padding_mode`` reflect / replicate / circular runs ``aten::pad`` (unhandled) before the conv."""
    return (kind == "conv" and hparams.get("padding_mode", "zeros") != "zeros") or \
        (kind == "attention" and hparams.get("fn") == "multi_head_attention")  # its scaling mul, softmax


def _matrix_vector(cost: Cost) -> bool:
    return cost.kind == "matmul" and len(cost.hparams["shapes"][1]) < 2


def flopcounter(cost: Cost, inputs: list) -> tuple[Size, bool]:
    """FlopCounterMode: 2 per multiply-add of mm/addmm/bmm/baddbmm and convolutions (aten level)."""
    if _matrix_vector(cost):  # runs aten::mv / aten::dot, which FlopCounterMode has no formula for
        return 0, False
    if cost.kind == "attention" and cost.hparams.get("fn") == "multi_head_attention":
        # the fused inference kernel has no formula; the slow path's linears and bmm's do (flash SDPA: 0)
        hp = cost.hparams
        if hp["kernel"] == "native_mha":  # counted 0, so not counted: flagged, as aten::mv is
            return 0, False
        return 2 * (hp["in_proj_macs"] + hp["out_proj_macs"] + (hp["score_macs"] + hp["context_macs"]) * hp["need_weights"]), True
    if cost.kind == "recurrent":  # oneDNN's fused LSTM has no formula (flagged); the aten path's mm/addmm do
        return (0, False) if cost.hparams["kernel"] == "mkldnn" else (2 * cost.macs, True)
    if cost.kind in MATRIX_KINDS:
        return 2 * cost.macs, True
    return 0, cost.kind != "unsupported"


def hardware(cost: Cost, inputs: list) -> tuple[Size, bool]:
    """Arithmetic a device performs: 2 per MAC plus the elementwise work."""
    kind = cost.kind
    if kind in MATRIX_KINDS or kind == "attention":
        return 2 * cost.macs, True
    if kind == "recurrent":  # the gates' products and the cells' pointwise ops
        return 2 * cost.macs + cost.work["pointwise"], True
    if kind in ("pool", "adaptive_pool"):
        return _numel(_out(cost)) * cost.work["window"], True
    if kind == "batch_norm":
        return _numel(inputs[0]) * (2 if not cost.hparams.get("training") else 5), True
    if kind in ("activation", "elementwise", "dropout", "group_norm", "layer_norm", "instance_norm"):
        return _numel(_out(cost)), True
    if kind == "lrn":
        return _numel(_out(cost)) * (cost.work["window"] + 3), True
    if kind == "reduce":
        return cost.work["elements"], True
    return 0, kind != "unsupported"


COUNTERS: dict[str, Callable[[Cost, list], tuple[Size, bool]]] = {
    "lecture": lecture, "fvcore": fvcore, "flopcounter": flopcounter, "hardware": hardware,
}


def counter(convention: str) -> Callable[[Cost, list], tuple[Size, bool]]:
    if convention not in COUNTERS:
        raise ArchstatError(f"unknown convention {convention!r}: choose one of {', '.join(CONVENTIONS)}")
    return COUNTERS[convention]


DESCRIPTIONS = {
    "lecture": "flops = MACs of conv/linear/matmul + K*K per pooled output element (EECS 498 slides)",
    "fvcore": "flops = fvcore FlopCountAnalysis (1 per multiply-add; norms priced; relu/pool/add free)",
    "flopcounter": "flops = torch.utils.flop_counter (2 per multiply-add, conv and matmul only)",
    "hardware": "flops = 2 per multiply-add + elementwise work (for achieved FLOP/s)",
}
