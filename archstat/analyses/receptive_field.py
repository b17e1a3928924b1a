"""Receptive field of every row, per spatial dimension, following ``sources`` through the graph.

For one spatial dimension, the units of a layer's output see input intervals
``[i*J - P, i*J - P + R - 1]`` (unit ``i``): ``R`` is the receptive-field size, ``J`` the effective
stride (jump) and ``P`` the effective padding.  The input has ``R = 1, J = 1, P = 0``.  An op with
kernel ``k``, dilation ``d``, stride ``s`` and padding ``p`` (``k_eff = d*(k-1) + 1``) gives

    R' = R + (k_eff - 1) * J        J' = J * s        P' = P + p * J

Three stacked 3x3 stride-1 convs: R = 1 + 2 + 2 + 2 = 7, the lecture's 7x7.  Elementwise ops,
norms and activations keep (R, J, P).  Where paths meet (``+``, ``cat``) the field is the union
of the paths' intervals, i.e. the largest path: with equal J, ``P = max P`` and
``R = max(R - P) + max P``.  Height and width are separate (a 1x7 kernel grows only the width).

A row is ``regular`` when its units' fields follow that formula exactly; transposed convs,
upsampling and adaptive pools whose bins are uneven are not (``regular = False``: their numbers
are the largest window, an upper bound).  For an adaptive pool that window is its largest bin,
``max_i ceil((i+1)*L/O) - floor(i*L/O)`` (``formulas.pool.adaptive_window``), so the size column is
the exact field of its widest unit, not a bound that overshoots.  Rows after a flatten or a linear layer see all the
positions of the layer they collapse (``global``: ``R + (L - 1) * J``, which need not be the
whole input: AlexNet's strides never reach the last two columns of a 227x227 image).

A value computed from parameters and buffers alone (a bias map through a layer) depends on no
input pixel: it is printed with the input's own field (R = 1), and where it meets the image's
paths (``conv(x) + linear(bias_map)``) the field is theirs; it neither widens nor collapses it.

The spatial dims of a row are the trailing ``k`` dims of its per-sample shape, ``k`` being the
input's (2 for images).  So a tensor with extra leading dims, such as the ``(groups, C/groups, H, W)``
view inside a channel shuffle, keeps its field: views and copies that leave the trailing dims in
place (same sizes; a permute or transpose that does not move them; slicing that keeps the rank)
pass the field through, and the shuffle's convolutions see what they really see.  An op that moves
spatial dims (a transpose of H and W) is marked irregular: past it, a field's dims no longer line
up with the input's axes, so its numbers are not checked against the gradient.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pandas as pd

from archstat.analyses.grad_flow import input_sources
from archstat.engine.records import MODEL_INPUT, STATE
from archstat.engine.rows import Rows
from archstat.errors import ArchstatError
from archstat.formulas.pool import adaptive_window

TRANSPARENT = ("activation", "batch_norm", "group_norm", "layer_norm", "instance_norm", "lrn", "dropout",
               "identity", "elementwise", "concat")
WINDOWED = ("conv", "pool", "adaptive_pool")


@dataclass(frozen=True)
class Field:
    """Per spatial dim: size R, jump J, padding P; ``regular``; ``whole``: the entire input."""

    r: tuple
    j: tuple
    p: tuple
    regular: bool = True
    whole: bool = False


def _spatial(shape: Sequence, k: int) -> list:
    """The spatial dims of a per-sample shape ``(C, ..., *spatial)``: its trailing ``k`` dims; a
    shape with no more than ``k`` dims (flattened, token-major) has ``shape[1:]``."""
    return list(shape[len(shape) - k:]) if len(shape) > k else list(shape[1:])


# view functions that may move or drop dims while the trailing sizes happen to match
_RANK_CHANGING = ("getitem", "squeeze", "unsqueeze")


def _keeps_spatial(r: dict, k: int) -> bool:
    """A view or copy whose output's trailing ``k`` dims are its input's, in the same order."""
    ins, out = r["in_shapes"][0], r["out_shape"]
    if _spatial(ins, k) != _spatial(out, k) or len(ins) <= k or len(out) <= k:
        return False
    hp, full = r["hparams"], len(ins) + 1  # hparams' dims count the batch dim
    fn = hp.get("fn")
    if fn in ("permute", "transpose", "t"):
        dims = [d % full for d in hp.get("dims", ())]
        moved = [d for i, d in enumerate(dims) if d != i] if fn == "permute" else dims
        return bool(dims) and all(d < full - k for d in moved)
    return fn not in _RANK_CHANGING or len(ins) == len(out)


def _window(r: dict, field: Field) -> Optional[Field]:
    """Field after a conv/pool row, or None when its windows are not one kernel/stride."""
    kind, hp = r["kind"], r["hparams"]
    ins = _spatial(r["in_shapes"][0], len(field.r))
    if kind == "adaptive_pool":
        k, s, regular = [], [], True
        for L, o in zip(ins, hp["output_size"]):
            if o == 1 or L % o == 0:
                k.append(L if o == 1 else L // o)
                s.append(1 if o == 1 else L // o)
            else:  # uneven bins: the largest one (ceil(L/o) or ceil(L/o) + 1, depending on L and o)
                k.append(adaptive_window(L, o))
                s.append(max(L // o, 1))
                regular = False
        pad, dil = [0] * len(k), [1] * len(k)
    else:
        k, s, dil = r["kernel"], r["stride"], hp.get("dilation", [1] * len(r["kernel"]))
        pad = r["padding"]
        if isinstance(pad, str):  # "same": PyTorch puts the smaller half of the total pad on the left
            pad = [d * (kk - 1) // 2 if pad == "same" else 0 for kk, d in zip(k, dil)]
        regular = True
    rr, jj, pp = [], [], []
    for R, J, P, kk, ss, p0, d in zip(field.r, field.j, field.p, k, s, pad, dil):
        rr.append(R + (d * (kk - 1)) * J)
        jj.append(J * ss)
        pp.append(P + p0 * J)
    return Field(tuple(rr), tuple(jj), tuple(pp), field.regular and regular, field.whole)


def _union(fields: list[Field]) -> Field:
    """Largest path: the union of the inputs' intervals (equal jumps), else the largest field."""
    dims = len(fields[0].r)
    if any(len(f.r) != dims for f in fields):
        return max(fields, key=lambda f: f.r)
    if all(f.j == fields[0].j for f in fields):
        p = tuple(max(f.p[d] for f in fields) for d in range(dims))
        r = tuple(max(f.r[d] - f.p[d] for f in fields) + p[d] for d in range(dims))
        return Field(r, fields[0].j, p, all(f.regular for f in fields), any(f.whole for f in fields))
    big = max(fields, key=lambda f: f.r)
    return Field(big.r, big.j, big.p, False, any(f.whole for f in fields))


def fields(df: pd.DataFrame) -> list[Field]:
    """The receptive field of every row of an analyze() table (numeric mode)."""
    k = len(df.attrs["input"]) - 1
    inp = _spatial(df.attrs["input"], k)
    start = Field((1,) * len(inp), (1,) * len(inp), (0,) * len(inp))
    out: list[Field] = []
    constant: list[bool] = []  # computed from parameters and buffers alone: no input pixel reaches it
    for r in df.to_dict("records"):
        src = input_sources(list(r["sources"]), len(r["in_shapes"]))  # one per input
        live = [i for i, s in enumerate(src) if s == MODEL_INPUT or (s >= 0 and not constant[s])]
        constant.append(not live)
        if not live:  # printed as the input's own field; where it meets the image's paths it adds nothing
            out.append(start)
            continue
        ins = [out[src[i]] if src[i] >= 0 else start for i in live]
        spatial_out = _spatial(r["out_shape"], k)
        spatial_in = _spatial(r["in_shapes"][live[0]], k)
        kind = r["kind"]
        wholes = [f for f in ins if f.whole]
        if wholes:  # already mixed over all positions: stays so
            out.append(max(wholes, key=lambda f: f.r))
        elif len(spatial_out) == 0 or (kind == "reduce" and not _same_spatial(r, k)):
            out.append(_collapse(ins[0], spatial_in))  # flatten, linear, global mean
        elif kind in WINDOWED and r["supported"]:
            f = _window(r, ins[0])  # reflect/circular padding_mode reads mirrored or wrapped units at borders
            out.append(f if _zero_padded(r) else Field(f.r, f.j, f.p, False, f.whole))
        elif kind == "copy" and r["hparams"].get("fn") == "pad":
            out.append(_padded(ins[0], r, k))
        elif kind in ("view", "copy") and _keeps_spatial(r, k):
            out.append(ins[0])
        elif kind in TRANSPARENT or (kind in ("reduce", "upsample") and _same_spatial(r, k)):
            f = _union(ins) if len(ins) > 1 else ins[0]
            out.append(f if len(f.r) == len(spatial_out) else _collapse(f, spatial_in))
        elif kind == "linear" and len(spatial_out) == len(ins[0].r):  # a linear on the last dim mixes it
            f = ins[0]
            out.append(Field(f.r, f.j, f.p, False, False))
        else:  # transposed conv, upsampling, reshapes that move spatial dims, unsupported ops
            f = _union(ins) if len(ins) > 1 else ins[0]
            out.append(Field(f.r, f.j, f.p, False, f.whole) if len(f.r) == len(spatial_out)
                       else _collapse(f, spatial_in))
    return out


def _zero_padded(r: dict) -> bool:
    return r["hparams"].get("padding_mode", "zeros") == "zeros"


def _left_pads(pad: Optional[list], k: int) -> list[int]:
    """Left pad of each of the ``k`` trailing dims, from F.pad's list (last dim first, in pairs)."""
    pad = list(pad or [])
    return [pad[2 * (k - 1 - d)] if 2 * (k - 1 - d) < len(pad) else 0 for d in range(k)]


def _padded(f: Field, r: dict, k: int) -> Field:
    """``F.pad`` shifts the field by the left pad of each spatial dim (``P' = P + left * J``), a
    window of size 1; reflect/replicate/circular pads read mirrored or wrapped units at the
    borders, where the interval formula no longer holds (irregular)."""
    left = _left_pads(r["padding"], k)
    if len(f.r) != k:
        return f
    regular = f.regular and r["hparams"].get("mode") == "constant"
    return Field(f.r, f.j, tuple(p + lf * j for p, lf, j in zip(f.p, left, f.j)), regular, f.whole)


def _collapse(f: Field, sizes: list) -> Field:
    """An op that mixes all ``sizes`` positions (flatten + linear, global mean) sees the union of
    their fields: the first unit's start to the last unit's end, ``R + (L - 1) * J``."""
    if len(sizes) != len(f.r):
        return Field(f.r, f.j, f.p, f.regular, True)
    return Field(tuple(r + (n - 1) * j for r, n, j in zip(f.r, sizes, f.j)), f.j, f.p, f.regular, True)


def _same_spatial(r: dict, k: int) -> bool:
    return all(_spatial(s, k) == _spatial(r["out_shape"], k) for s in r["in_shapes"])


def receptive_field(rows: Rows) -> pd.DataFrame:
    """One row per op call of ``rows``: ``rf_h``, ``rf_w`` (size), ``jump_h``, ``jump_w`` (effective
    stride), ``pad_h``, ``pad_w`` (effective padding), ``regular`` and ``global``, keyed like analyze().

    Only per-sample geometry is read (kernels, strides, shapes): any batch, dtype or convention of
    the rows gives the same fields."""
    df = rows.df
    if df.attrs.get("symbolic"):
        raise ArchstatError("the receptive field needs numbers: drop --symbolic")
    if len(df.attrs.get("inputs") or [None]) > 1:  # every model input would be taken for the image
        raise ArchstatError(f"the receptive field is defined for a model with one input; this one takes "
                            f"{len(df.attrs['inputs'])}")
    fs = fields(df)
    out = df[["name", "op", "call", "kind", "out_shape"]].copy()

    def hw(values: tuple, default: int = 1) -> tuple:
        return (values[-2], values[-1]) if len(values) >= 2 else (default, values[-1] if values else default)

    out["rf_h"], out["rf_w"] = zip(*(hw(f.r) for f in fs)) if fs else ((), ())
    out["jump_h"], out["jump_w"] = zip(*(hw(f.j) for f in fs)) if fs else ((), ())
    out["pad_h"], out["pad_w"] = zip(*(hw(f.p, 0) for f in fs)) if fs else ((), ())
    out["rf"] = [list(f.r) for f in fs]
    out["jump"] = [list(f.j) for f in fs]
    out["pad"] = [list(f.p) for f in fs]
    out["regular"] = [f.regular for f in fs]
    out["global"] = [f.whole for f in fs]
    out.attrs = {k: df.attrs[k] for k in ("model", "input", "mode")}
    return out


def expected_interval(f: Field, unit: Sequence[int], in_sizes: Sequence[int]) -> list[tuple[int, int]]:
    """The formula's input interval (first, last) per dim for output ``unit``, clipped to the input.

    Textbook receptive fields ignore that intermediate layers drop units at their far edge (floor
    in the output size); :func:`exact_interval` does not, and is what a gradient measures."""
    if f.whole:  # one "unit": the union over every position of the collapsed layer
        unit = [0] * len(in_sizes)
    return [(max(0, i * j - p), min(n - 1, i * j - p + r - 1)) for i, r, j, p, n in zip(unit, f.r, f.j, f.p, in_sizes)]


def _merge(spans: list) -> list:
    out: list = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _window_image(spans: list, k: int, s: int, p: int, d: int, n: int) -> list:
    """Input positions (within [0, n)) read by the output positions in ``spans``."""
    out = []
    for a, b in spans:
        if d == 1 and k >= s:  # overlapping or touching windows: one contiguous run
            lo, hi = max(0, a * s - p), min(n - 1, b * s - p + k - 1)
            if lo <= hi:
                out.append((lo, hi))
        else:  # gaps between windows or between dilated taps
            out += [(q, q) for u in range(a, b + 1) for t in range(k) if 0 <= (q := u * s - p + d * t) < n]
    return _merge(out)


def _back(r: dict, need: list, in_shape: list, k: int) -> Optional[list]:
    """Positions of the row's input (per dim) that the output positions ``need`` read; None when
    the row is not a regular op.  ``k``: spatial dims of the model input."""
    kind, hp = r["kind"], r["hparams"]
    sizes = _spatial(in_shape, k)
    if kind == "copy" and hp.get("fn") == "pad":  # constant: a 1-tap window at offset -left; others irregular
        if hp.get("mode") != "constant" or len(need) != k:
            return None
        left = _left_pads(r["padding"], k)
        return [_window_image(spans, 1, 1, lf, 1, n) for spans, lf, n in zip(need, left, sizes)]
    if kind in ("view", "copy") and _keeps_spatial(r, k):
        return need
    if len(_spatial(r["out_shape"], k)) == 0 or (kind == "reduce" and not _same_spatial(r, k)):
        return [[(0, n - 1)] for n in sizes]  # every position feeds every output
    if kind == "adaptive_pool" and r["supported"]:  # bin i covers [floor(i*L/O), ceil((i+1)*L/O))
        return [_merge([(a * n // o, -(-(b + 1) * n // o) - 1) for a, b in spans])
                for spans, n, o in zip(need, sizes, hp["output_size"])]
    if kind in ("conv", "pool") and r["supported"] and _zero_padded(r):
        k, s, dil = r["kernel"], r["stride"], hp.get("dilation", [1] * len(r["kernel"]))
        pad = r["padding"]
        if isinstance(pad, str):
            pad = [d * (kk - 1) // 2 if pad == "same" else 0 for kk, d in zip(k, dil)]
        return [_window_image(spans, kk, ss, pp, d, n) for spans, kk, ss, pp, d, n in zip(need, k, s, pad, dil, sizes)]
    if kind in TRANSPARENT or (kind in ("reduce", "upsample") and _same_spatial(r, k)):
        if len(sizes) != len(need):
            return None
        return [spans if n > 1 else [(0, 0)] for spans, n in zip(need, sizes)]  # a size-1 dim broadcasts
    return None


def exact_interval(df: pd.DataFrame | list, row: int, unit: Sequence[int], input_dims: int = 0) -> Optional[list]:
    """First and last input index, per spatial dim, that output ``unit`` of ``row`` depends on.

    Walks the graph backwards once (rows in reverse order), carrying per row and per dim the set
    of positions needed (as intervals): a window maps position u to ``u*s - p + d*t`` for each tap
    t, clipped to its input; an adaptive pool to its bin; joins take the union.  A dilated kernel
    can step over a small input entirely: then nothing is read, and every dim reads ``None``.
    Returns None if a path goes through an irregular op (transposed conv, upsampling).
    """
    records = df if isinstance(df, list) else df.to_dict("records")  # records: pass them when calling often
    dims = input_dims if isinstance(df, list) else len(df.attrs["input"]) - 1
    need: dict[int, list] = {row: [[(u, u)] for u in unit]}
    result: Optional[list] = None
    for i in range(row, -1, -1):
        if i not in need:
            continue
        r = records[i]
        src = input_sources(list(r["sources"]), len(r["in_shapes"])) or [-1]
        for k, s in enumerate(src):
            if s == STATE:  # fed parameters or buffers alone: no input pixel behind this input
                continue
            in_shape = r["in_shapes"][k] if k < len(r["in_shapes"]) else r["in_shapes"][0]
            back = _back(r, need[i], in_shape, dims)
            if back is None:
                return None
            if any(not spans for spans in back):
                continue  # this input is not read at all (taps fell into the padding)
            old = need.get(s) if s >= 0 else result
            merged = back if old is None else [_merge(x + y) for x, y in zip(old, back)]
            if s >= 0:
                need[s] = merged
            else:
                result = merged
    if result is None:
        return [None] * dims
    return [(spans[0][0], spans[-1][1]) for spans in result]
