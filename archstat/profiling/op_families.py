"""Which op family a table row belongs to, and the quantities the time model reads from it.

A row (one op call of ``analyze()``'s table, per-sample shapes, whole-batch counts) maps to:

    family   conv, conv_dw (groups = c_in > 1), linear, activation, elementwise, batch_norm, pool_max,
             pool_avg, adaptive_pool, concat, copy, lrn, dispatch (views) and identity (a Dropout in
             eval, nn.Identity): no kernel, only the call
    F        hardware FLOPs of the compute families: 2 * MACs (conv, linear, matmul)
    B        bytes actually moved: every input read once, the weights once, the output written once,
             ``(sum(in elements) + out elements) * N * itemsize + params * itemsize``.  An in-place
             ReLU still reads and writes its tensor.  Views and identities move nothing.
             Pooling reads each input element once per window that covers it, so its axis is the
             window traffic ``out elements * (window + 1) * N * itemsize`` (window reads + the write).
    features log2 of what sets a compute kernel's rate: conv (kernel area, c_in per group, c_out,
             output pixels N*H*W, stride area, output plane H*W); conv_dw (kernel area, channels,
             output pixels, stride, plane).  The plane apart from N*H*W: at equal pixels, 64
             channels over 224x224 ran at 120 GFLOP/s and over 8 x 56x56 at 200 (2 CPU threads);
             linear (rows M, in features K, out features N).

The same function prices the calibration micro-benchmarks (their rows come from ``analyze()`` too),
so a model row and a calibration point are described identically.
"""
from __future__ import annotations

import math
from typing import Any

COMPUTE_FAMILIES = ("conv", "conv_dw", "linear")
MEMORY_FAMILIES = ("activation", "elementwise", "batch_norm", "pool_max", "pool_avg", "adaptive_pool", "concat",
                   "copy", "lrn")
NORMALIZED = "normalized"  # a max pool benchmark's input went through a BatchNorm (microbench.pool_input)
AFTER_BN = "after_bn_s"  # a conv benchmark's successor penalty with a BatchNorm probe (microbench.batch_norm_probe)
AFTER_BN_RELU = "after_bn_relu_s"  # and the in-place ReLU's after that BatchNorm (microbench.chain_penalties)
EVICTED = "evicted_s"  # a conv benchmark timed with its input just written and the private caches refilled (microbench.as_in_a_pass)
KIND_FAMILY = {"activation": "activation", "elementwise": "elementwise", "batch_norm": "batch_norm",
               "adaptive_pool": "adaptive_pool", "concat": "concat", "copy": "copy", "lrn": "lrn",
               "linear": "linear", "matmul": "linear", "view": "dispatch", "identity": "identity",
               "dropout": "identity"}
NO_KERNEL = ("dispatch", "identity")  # no kernel: a view (a function call), a module that returns its input


def numel(shape: Any) -> int:
    return math.prod(int(d) for d in shape) if shape else 1


def _all_shapes(value: Any) -> list:
    """The tensor shapes in an ``in_shapes``/``out_shape`` field (a shape or a list of shapes)."""
    if not value:
        return []
    if all(isinstance(d, (int, float)) for d in value):
        return [value]
    return [s for v in value for s in _all_shapes(v)]


def family(row: dict) -> str:
    """The op family of a row; unknown kinds price as ``elementwise`` (see :func:`calibrated`)."""
    kind = row.get("kind")
    if kind == "conv":
        hp = row.get("hparams") or {}
        c_in, groups = int(hp.get("c_in", 1)), int(hp.get("groups", 1))
        return "conv_dw" if groups > 1 and groups == c_in else "conv"
    if kind == "pool":
        return "pool_avg" if (row.get("hparams") or {}).get("mode") == "avg" else "pool_max"
    return KIND_FAMILY.get(kind, "elementwise")


def calibrated(row: dict) -> bool:
    """False for a row whose kind has no calibration of its own (priced as elementwise)."""
    return row.get("kind") in ("conv", "pool") or row.get("kind") in KIND_FAMILY


def work(row: dict, batch: int, itemsize: int) -> tuple[float, float]:
    """``(F, B)`` of a row: hardware FLOPs of its compute term and the bytes on its memory axis."""
    fam = family(row)
    if fam in NO_KERNEL:
        return 0.0, 0.0
    ins = sum(numel(s) for s in _all_shapes(row.get("in_shapes")))
    out = sum(numel(s) for s in _all_shapes(row.get("out_shape")))
    flops = 2.0 * float(row.get("macs") or 0) if fam in COMPUTE_FAMILIES else 0.0
    if fam.startswith("pool"):
        window = numel(row.get("kernel") or [1])
        return flops, float(out * (window + 1) * batch * itemsize)
    return flops, float((ins + out) * batch * itemsize + int(row.get("params") or 0) * itemsize)


def output_bytes(row: dict, batch: int, itemsize: int) -> int:
    """Bytes of the row's output(s) for the whole batch."""
    return sum(numel(s) for s in _all_shapes(row.get("out_shape"))) * batch * itemsize


def features(row: dict, batch: int) -> list[float]:
    """log2 features of a compute row (see the module docstring); [] for memory families."""
    fam, hp = family(row), row.get("hparams") or {}
    lg = lambda v: math.log2(max(float(v), 1.0))  # noqa: E731
    out = list(row.get("out_shape") or [1])
    if fam in ("conv", "conv_dw"):
        k = numel(row.get("kernel") or [1])
        s = numel(row.get("stride") or [1])
        pixels = batch * numel(out[1:])
        c_in, groups = int(hp.get("c_in", 1)), int(hp.get("groups", 1))
        plane = numel(out[1:])
        if fam == "conv_dw":
            return [lg(k), lg(c_in), lg(pixels), lg(s), lg(plane)]
        return [lg(k), lg(c_in // groups), lg(hp.get("c_out", out[0])), lg(pixels), lg(s), lg(plane)]
    if fam == "linear":
        shapes = _all_shapes(row.get("in_shapes"))
        first = shapes[0] if shapes else [1]
        k = int(first[-1])
        m = batch * numel(first[:-1])
        n = int(out[-1]) if out else 1
        return [lg(m), lg(k), lg(n)]
    return []
