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
so a model row and a calibration point are described identically; so do the fields read off either
(``signature_field``, ``window_of``, ``global_pool``, ``batch_of``), which pick the curve a row is
priced from (``nearest_window``).
"""
from __future__ import annotations

import json
import math
from typing import Any, Optional

COMPUTE_FAMILIES = ("conv", "conv_dw", "linear")
MEMORY_FAMILIES = ("activation", "elementwise", "batch_norm", "pool_max", "pool_avg", "adaptive_pool", "concat",
                   "copy", "lrn")
NORMALIZED = "normalized"  # a max pool benchmark's input went through a BatchNorm (microbench.pool_input)
AFTER_BN = "after_bn_s"  # a conv benchmark's successor penalty with a BatchNorm probe (microbench.batch_norm_probe)
AFTER_BN_RELU = "after_bn_relu_s"  # and the in-place ReLU's after that BatchNorm (microbench.chain_penalties)
AFTER_BN_WARM = "after_bn_warm_s"  # that probe with the BatchNorm's code warm (microbench.chain_penalties, warm)
EVICTED = "evicted_s"  # a conv or concat benchmark timed as a pass calls it: the private caches refilled (microbench.as_in_a_pass)
COLD_LEVELS = "cold_levels"  # after larger flushes: [[bytes, s], ...] (microbench.cold_level_times)
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


def batch_of(point: dict) -> int:
    """A calibration point's batch (the last field of its ``signature``; 1 for older points)."""
    sig = point.get("signature") or []
    return int(sig[-1]) if sig and isinstance(sig[-1], (int, float)) else 1


def signature_field(point_or_row: dict, index: int, key: str) -> Any:
    """A calibration point's ``signature[index]`` (None when it is shorter), or a row's ``key``: the same
    field (``microbench.signature``)."""
    sig = point_or_row.get("signature")
    if sig:
        return sig[index] if len(sig) > index else None
    return point_or_row.get(key)


def window_of(point_or_row: dict) -> str:
    """A pool's window as ``KxK``, or ``KxK/S`` for a max or average pool of stride ``S`` other than 1
    (from a calibration point's signature or a row's ``kernel`` and ``stride``; a stride not given is
    the kernel's, as in PyTorch; of a stride that differs per axis, the larger).

    Why the stride: a stride-1 pool reads each input element in up to ``K*K`` windows, one that
    downsamples in about ``(K/S)^2``, so per window read it fetches more distinct bytes: over the grid's
    large 3x3 max pools 0.31-0.39 ns per byte of window traffic at stride 2 against 0.25-0.29 at stride 1.
    One curve over both priced GoogLeNet's stride-1 branch pools at batch 8 a median 21-29% slow and its
    stem's stride-2 pool 26-30% fast in each of fifteen stored runs of ``bench/roofline_accuracy.py``
    (a curve per stride: +3 to +8% and -12 to -18%).  Adaptive pools have no stride of their own:
    ``KxK`` alone."""
    kernel = per_axis(signature_field(point_or_row, 1, "kernel") or 1)
    window = "x".join(map(str, kernel))
    fam = point_or_row.get("family") if point_or_row.get("signature") else family(point_or_row)
    if fam not in ("pool_max", "pool_avg"):
        return window
    stride = max(per_axis(signature_field(point_or_row, 2, "stride") or kernel))
    return window if stride == 1 else f"{window}/{stride}"


def per_axis(value: Any) -> list[int]:
    """A kernel's or stride's sizes per axis: a list or tuple as it is, one int for both axes of a 2-D op."""
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)] * 2


def global_pool(point_or_row: dict) -> bool:
    """Does an adaptive pool reduce each plane to one value (output plane 1x1)?  From a calibration
    point's signature (``str(out_shape)``) or a row's ``out_shape``."""
    out = signature_field(point_or_row, 4, "out_shape")
    try:
        dims = json.loads(out) if isinstance(out, str) else list(out or [])
    except ValueError:  # not a list of sizes: price it as global pooling, the family curve
        return True
    return numel(dims[1:]) == 1


def nearest_window(curves: dict, fam: str, window: str, suffix: str = "") -> Optional[str]:
    """The key of ``fam``'s curve for the calibrated window (``window_of``) nearest ``window`` in area, of
    the nearest stride among those; among the curves of input kind ``suffix`` if there are any (None
    without one)."""
    def area_stride(w: str) -> tuple[int, int]:
        size, _, stride = w.partition("/")
        return numel([int(d) for d in size.split("x")]), int(stride or 1)
    keys = [k for k in curves if k.startswith(fam + " ") and k.endswith(suffix) and (suffix or "(" not in k)]
    keys = keys or [k for k in curves if k.startswith(fam + " ") and "(" not in k]
    if not keys:
        return None
    area, stride = area_stride(window)
    calibrated_as = {k: area_stride(k.split(" ")[1]) for k in keys}
    return min(keys, key=lambda k: (abs(math.log(calibrated_as[k][0] / area)),
                                    abs(math.log(calibrated_as[k][1] / stride)), k))
