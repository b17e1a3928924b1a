"""Model + input shape -> one tidy DataFrame, one row per op call (DESIGN.md's JSON contract).

Columns: ``name, op, call`` (the row key), ``in_shapes``, ``out_shape`` (per sample), ``kernel``,
``stride``, ``padding``, ``params``, ``macs``, ``flops`` (in the chosen convention), ``act_bytes``,
``alloc``, ``supported``, ``oracle_supported``, plus ``kind``, ``sources`` (row indices feeding
this row, -1 = model input), ``hparams`` and ``work`` for the derived analyses.  Raw integers (or
sympy expressions in symbolic mode), no units.  ``df.attrs`` carries the totals and the context.
"""
from __future__ import annotations

import contextlib

import difflib
import functools
from typing import Optional, Sequence

import pandas as pd
import torch
from torch import nn

from archstat.engine.conventions import CONVENTIONS, counter
from archstat.errors import ArchstatError
from archstat.engine.interpret import Interpreter, OpRecord
from archstat.engine.meta_run import meta_records
from archstat.spec import TensorSpec, leaves, simplify
from archstat.engine.trace import TraceError, trace_graph, training_mode


@functools.cache
def symbols() -> dict[str, "sympy.Symbol"]:
    """The symbolic batch and sizes ``N, H, W, L, D`` (positive integers), made on first use."""
    import sympy  # 0.3 s at start-up that a numeric table never needs

    return {name: sympy.Symbol(name, positive=True, integer=True) for name in ("N", "H", "W", "L", "D")}


def __getattr__(name: str):
    """``SYMBOLS`` (``from archstat.engine.analyze import SYMBOLS``) is built on first access."""
    if name == "SYMBOLS":
        return symbols()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


COLUMNS = ["name", "op", "call", "in_shapes", "out_shape", "kernel", "stride", "padding", "params", "macs",
           "flops", "act_bytes", "alloc", "supported", "oracle_supported", "kind", "sources", "hparams", "work",
           *(f"flops_{c}" for c in CONVENTIONS), "source_parts", "out_part_bytes"]


def input_spec(input_shape: Sequence[int], batch: int, dtype: torch.dtype, symbolic: bool) -> TensorSpec:
    """(C, H, W) or (C, L) -> a batch-first TensorSpec; symbolic mode puts N, H, W (or L) there."""
    shape = tuple(input_shape)
    if len(shape) not in (1, 2, 3, 4) or any(not isinstance(s, int) or s < 1 for s in shape):
        raise ArchstatError(f"input shape {list(shape)} is not CxHxW (or CxL, or F) with sizes >= 1")
    if not isinstance(batch, int) or batch < 1:
        raise ArchstatError(f"batch must be >= 1, got {batch}")
    if not symbolic:
        return TensorSpec((batch, *shape), dtype)
    spatial = {0: (), 1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}[len(shape) - 1]
    sym = symbols()
    return TensorSpec((sym["N"], shape[0], *(sym[s] for s in spatial)), dtype)


@contextlib.contextmanager
def batch_hint(input_shape: Sequence[int]):
    """A 4-d shape that a 2-d model rejects is most likely torchinfo's (N, C, H, W): say so."""
    try:
        yield
    except ArchstatError as exc:
        shape = tuple(input_shape)
        if len(shape) == 4 and "per sample" in str(exc):
            raise ArchstatError(f"{exc}; input_shape is per sample: pass batch={shape[0]} and the per-sample "
                                f"shape {shape[1:]}") from None
        raise


def _per_sample(spec) -> list:
    return [simplify(s) for s in spec.shape[1:]]


def _rows(records: list[OpRecord], convention: str) -> list[dict]:
    counters = {c: counter(c) for c in dict.fromkeys((*CONVENTIONS, convention))}
    calls: dict[tuple[str, str], int] = {}
    rows = []
    for rec in records:
        cost = rec.cost
        key = (rec.name, rec.op)
        calls[key] = calls.get(key, -1) + 1
        outs = leaves(cost.out, TensorSpec)  # (values, indices), or LSTM's nested (out, (h, c))
        # every convention's count, so that reconciliations are a groupby, not a re-trace
        counts = {c: fn(cost, rec.inputs) for c, fn in counters.items()}
        flops, oracle_ok = counts[convention]
        rows.append({
            "name": rec.name, "op": rec.op, "call": calls[key],
            "in_shapes": [_per_sample(t) for t in rec.inputs], "out_shape": _per_sample(outs[0]),
            "kernel": cost.kernel, "stride": cost.stride, "padding": cost.padding,
            "params": rec.params, "macs": simplify(cost.macs) if rec.supported else 0,
            "flops": simplify(flops) if rec.supported else 0,
            "act_bytes": simplify(sum(o.nbytes for o in outs)) if cost.new_bytes else 0,
            "alloc": cost.alloc, "supported": rec.supported, "oracle_supported": oracle_ok and rec.supported,
            "kind": cost.kind, "sources": rec.sources, "hparams": cost.hparams, "work": cost.work,
            **{f"flops_{c}": simplify(n) if rec.supported else 0 for c, (n, _) in counts.items()},
            # for the inference peak: which outputs of a multi-output producer each source is,
            # and each output's own storage when this op allocates several
            "source_parts": rec.source_parts,
            "out_part_bytes": [simplify(o.nbytes) for o in outs] if cost.alloc and len(outs) > 1 else None,
        })
    return rows


def _cut(rows: list[dict], upto: str) -> list[dict]:
    """Rows up to and including the last call owned by ``upto`` or one of its submodules."""
    owned = [i for i, r in enumerate(rows) if r["name"] == upto or r["name"].startswith(upto + ".")]
    if not owned:
        names = sorted({r["name"] for r in rows if r["name"]})
        close = difflib.get_close_matches(upto, names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ArchstatError(f"--upto {upto!r} names no layer of this model{hint}")
    return rows[: owned[-1] + 1]


def analyze(
    model: nn.Module,
    input_shape: Sequence[int],
    batch: int = 1,
    dtype: torch.dtype = torch.float32,
    mode: str = "eval",
    convention: str = "lecture",
    symbolic: bool = False,
    upto: Optional[str] = None,
) -> pd.DataFrame:
    """Per-op-call table of ``model`` on inputs of ``input_shape`` (per sample, e.g. ``(3, 224, 224)``).

    Nothing is run and nothing is allocated: the model is traced with torch.fx and every op is
    costed by its formula.  With ``symbolic=True`` the batch and spatial sizes are sympy symbols
    ``N, H, W`` and every number is a closed form.  ``upto`` keeps the rows up to a named layer.
    """
    counter(convention)  # reject an unknown convention before any work
    spec = input_spec(input_shape, batch, dtype, symbolic)
    if mode not in ("eval", "train"):
        raise ArchstatError(f"unknown mode {mode!r}: use eval or train")
    engine = "fx"
    with training_mode(model, mode == "train"), batch_hint(input_shape):  # formulas read BatchNorm's `training`
        try:
            interpreter = Interpreter(model, trace_graph(model))
            records, outputs = interpreter.run([spec]), interpreter.outputs
            output_parts, shape_ops = interpreter.output_parts, interpreter.shape_ops
        except TraceError as exc:  # data-dependent Python: run a meta-device copy instead
            records, engine = meta_records(model, spec, why=str(exc).split(": ", 1)[-1]), "meta"
            outputs = output_parts = None  # unknown: every value nobody reads is kept to the end
            shape_ops = {}
    rows = _rows(records, convention)
    if upto is not None:
        rows = _cut(rows, upto)
    df = pd.DataFrame(rows, columns=COLUMNS)
    unsupported = sorted({f"{r['op']} ({r['name'] or '<root>'})" for r in rows if not r["supported"]})
    df.attrs.update({
        "model": type(model).__name__, "input": list(input_shape), "batch": "N" if symbolic else batch,
        "dtype": str(dtype).replace("torch.", ""), "mode": mode, "convention": convention,
        "symbolic": symbolic, "upto": upto, "engine": engine,
        "outputs": outputs if upto is None else None, "input_bytes": simplify(spec.nbytes),
        "output_parts": output_parts if upto is None else None,
        "shape_ops": {k: sorted(v) for k, v in shape_ops.items()},
        "total": {c: simplify(sum(r[c] for r in rows)) for c in ("params", "macs", "flops", "act_bytes")},
        "params_all": sum(p.numel() for p in model.parameters()),
        "partial": bool(unsupported), "unsupported": unsupported,
        "oracle_unsupported": sorted({r["op"] for r in rows if r["supported"] and not r["oracle_supported"]}),
    })
    return df
