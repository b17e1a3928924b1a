"""Model + input shape -> one tidy DataFrame, one row per op call (DESIGN.md's JSON contract).

Columns: ``name, op, call`` (the row key), ``in_shapes``, ``out_shape`` (per sample), ``batched``
(False: a value made from parameters and buffers alone, whose shapes are shown whole), ``kernel``,
``stride``, ``padding``, ``params``, ``macs``, ``flops`` (in the chosen convention), ``act_bytes``,
``alloc``, ``supported``, ``oracle_supported``, plus ``kind``, ``sources`` (row indices feeding
this row, -1 = model input), ``hparams`` and ``work`` for the derived analyses.  Raw integers (or
sympy expressions in symbolic mode), no units.  ``df.attrs`` carries the totals and the context.
"""
from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
from typing import Any, Mapping, Optional, Sequence

import pandas as pd
import torch
import torch.fx as fx
from torch import nn

from archstat.engine.conventions import CONVENTIONS, counter
from archstat.errors import ArchstatError
from archstat.engine.inputs import ModelInputs, batch_specs, float_dtype, resolve_batch, signature_params
from archstat.engine.interpret import Interpreter, OpRecord
from archstat.engine.liveness import liveness
from archstat.engine.meta_run import meta_records
from archstat.engine.rows import Rows, named_module, row_weights
from archstat.spec import TensorSpec, leaves, simplify
from archstat.engine.trace import TraceError, fixed_defaults, trace_graph, training_mode


@functools.cache
def symbols() -> dict[str, "sympy.Symbol"]:
    """The symbolic batch and sizes ``N, H, W, L, D`` (positive integers), made on first use."""
    import copy

    import sympy  # 0.3 s at start-up that a numeric table never needs

    # pandas deep-copies ``df.attrs`` on every row or column taken from a frame; a symbolic frame's
    # attrs hold sympy expressions, and deep-copying a Max/Min rebuilds it through Max.__new__, which
    # re-simplifies its arguments (~0.25 s each: most of a symbolic table's time).  sympy expressions
    # are immutable, so a deep copy may be the object itself, as for ints and strings.
    for cls in (sympy.Max, sympy.Min, sympy.Add, sympy.Mul, sympy.Pow, sympy.floor, sympy.ceiling,
                sympy.Symbol, sympy.Integer, sympy.Rational):
        copy._deepcopy_dispatch.setdefault(cls, copy._deepcopy_atomic)
    return {name: sympy.Symbol(name, positive=True, integer=True) for name in ("N", "H", "W", "L", "D")}


def __getattr__(name: str):
    """``SYMBOLS`` (``from archstat.engine.analyze import SYMBOLS``) is built on first access."""
    if name == "SYMBOLS":
        return symbols()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


COLUMNS = ["name", "op", "call", "in_shapes", "out_shape", "batched", "kernel", "stride", "padding", "params", "macs",
           "flops", "act_bytes", "alloc", "supported", "oracle_supported", "kind", "sources", "hparams", "work",
           *(f"flops_{c}" for c in CONVENTIONS), "source_parts", "out_part_bytes", "used", "traced"]


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


def _per_sample(spec: TensorSpec, batched: bool = True) -> list:
    """The shape a table prints: without the batch when the value carries it, else whole."""
    return [simplify(s) for s in (spec.shape[1:] if batched else spec.shape)]


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
        batched = rec.batched and len(outs[0].shape) > 0  # a scalar (a loss, a counter) has no batch
        rows.append({
            "name": rec.name, "op": rec.op, "call": calls[key],
            "in_shapes": [_per_sample(t, rec.input_batched(k)) for k, t in enumerate(rec.inputs)],
            "out_shape": _per_sample(outs[0], batched), "batched": batched,
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


def _price_dead_rows(rows: list[dict], outputs: Optional[list[int]], convention: str) -> None:
    """Mark ``used`` (the outputs depend on it) and ``traced`` (fvcore's jit trace keeps it); a row
    the trace drops costs 0 under fvcore, which never sees it (no unsupported warning either)."""
    used, traced = liveness(rows, outputs)
    for r, u, t in zip(rows, used, traced):
        r["used"], r["traced"] = u, t
        if not t and r["supported"]:
            r["flops_fvcore"] = 0
            if convention == "fvcore":
                r["flops"], r["oracle_supported"] = 0, True


def _cut(rows: list[dict], upto: str) -> list[dict]:
    """Rows up to and including the last call owned by ``upto`` or one of its submodules."""
    if not upto:
        raise ArchstatError("--upto needs a layer name (such as features.5 or layer1), got an empty one")
    owned = [i for i, r in enumerate(rows) if r["name"] == upto or r["name"].startswith(upto + ".")]
    if not owned:
        names = sorted({r["name"] for r in rows if r["name"]})
        close = difflib.get_close_matches(upto, names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ArchstatError(f"--upto {upto!r} names no layer of this model{hint}")
    return rows[: owned[-1] + 1]


def _defaults_left(model: nn.Module, given: int, keywords: Mapping[str, Any]) -> dict[str, Any]:
    """``forward``'s arguments the call leaves at a plain default (``trace.fixed_defaults``); none when
    ``forward`` has no signature Python can read."""
    try:
        params = signature_params(model)
    except (TypeError, ValueError):
        return {}
    return fixed_defaults(params, given, keywords)


def _interpret(model: nn.Module, specs: tuple[list[TensorSpec], dict[str, TensorSpec]], graph: Optional[fx.Graph]
               ) -> tuple[list[OpRecord], Optional[fx.Graph], dict]:
    """One trace (unless ``graph`` is given) and one interpreter pass, or the meta-device run where fx
    cannot trace, in the model's current mode: the records and what the attrs say about the outputs."""
    args, kwargs = specs
    try:
        graph = graph if graph is not None else trace_graph(model, _defaults_left(model, len(args), kwargs))
    except TraceError as exc:  # data-dependent Python: run a meta-device copy instead
        records = meta_records(model, args, kwargs, why=str(exc).split(": ", 1)[-1])
        # outputs unknown: every value nobody reads is kept to the end
        return records, None, {"engine": "meta", "outputs": None, "output_parts": None, "shape_ops": {},
                         "output_rows": None, "held": [], "returned": None}
    interpreter = Interpreter(model, graph)
    records = interpreter.run(args, kwargs)
    return records, graph, {"engine": "fx", "outputs": interpreter.outputs,
                            "output_parts": interpreter.output_parts, "shape_ops": interpreter.shape_ops,
                            "output_rows": interpreter.output_rows, "held": sorted(interpreter.held.items()),
                            "returned": interpreter.returned}


def grouped_unsupported(entries: list[str]) -> str:
    """``op (layer)`` entries grouped by op: ``MultiheadAttention x12 (encoder.layers.encoder_layer_0...,
    ...)``, so that a ViT's twelve attention layers make one item, not twelve."""
    groups: dict[str, list[str]] = {}
    for entry in entries:
        op, _, layer = entry.partition(" (")
        groups.setdefault(op, []).append(layer.rstrip(")"))
    return ", ".join(f"{op} ({layers[0]})" if len(layers) == 1 else f"{op} x{len(layers)} ({layers[0]}, ...)"
                     for op, layers in groups.items())


def _frame(records: list[OpRecord], context: dict, upto: Optional[str]) -> pd.DataFrame:
    """The table of ``records`` (cut after ``upto``), with its totals and ``context`` in ``attrs``."""
    rows = _rows(records, context["convention"])
    _price_dead_rows(rows, context.get("output_rows"), context["convention"])
    if upto is not None:
        rows = _cut(rows, upto)
    df = pd.DataFrame(rows, columns=COLUMNS)
    unsupported = sorted({f"{r['op']} ({r['name'] or '<root>'})" for r in rows if not r["supported"]})
    c = context
    df.attrs.update({
        "model": c["model"], "input": c["input"], "inputs": c["inputs"], "batch": c["batch"], "dtype": c["dtype"],
        "mode": c["mode"],
        "convention": c["convention"], "symbolic": c["symbolic"], "upto": upto, "engine": c["engine"],
        "outputs": c["outputs"] if upto is None else None, "input_bytes": c["input_bytes"],
        "output_parts": c["output_parts"] if upto is None else None, "output_rows": c.get("output_rows"),
        "held": c.get("held") or [],
        "returned": c.get("returned") if upto is None else None,
        "shape_ops": {k: sorted(v) for k, v in c["shape_ops"].items()},
        "total": {k: simplify(sum(r[k] for r in rows)) for k in ("params", "macs", "flops", "act_bytes")},
        "params_all": c["params_all"],
        "partial": bool(unsupported), "unsupported": unsupported,
        "oracle_unsupported": sorted({r["op"] for r in rows if r["supported"] and not r["oracle_supported"]}),
    })
    return df


def analyze_rows(
    model: nn.Module,
    input_shape: Optional[Sequence[int]] = None,
    batch: int = 1,
    dtype: torch.dtype = torch.float32,
    mode: str = "eval",
    convention: str = "lecture",
    symbolic: bool = False,
    upto: Optional[str] = None,
    *,
    inputs: Optional[Sequence[Any]] = None,
    kwargs: Optional[Mapping[str, Any]] = None,
) -> Rows:
    """:func:`analyze`'s table together with each row's fx node, module, weights and record.

    This is the engine's one pass: one trace, one interpreter run.  Every analysis and check
    downstream takes the returned :class:`Rows`; none traces the model again.
    """
    counter(convention)  # reject an unknown convention before any work
    given = ModelInputs.of(input_shape, inputs, kwargs)
    specs = _specs(given, batch, dtype, symbolic)
    if mode not in ("eval", "train"):
        raise ArchstatError(f"unknown mode {mode!r}: use eval or train")
    if upto is not None and not upto:
        _cut([], upto)  # an empty name is an error before any work
    rows = _product(model, given, specs, dtype, mode, convention, None)
    return cut_rows(rows, upto) if upto is not None else rows


def _specs(given: ModelInputs, batch: int, dtype: torch.dtype, symbolic: bool
           ) -> tuple[list[TensorSpec], dict[str, TensorSpec]]:
    """Batch-first specs of every input: the first as :func:`input_spec` makes it (symbolic N, H, W),
    the others with the same batch and their own sizes."""
    n = resolve_batch(given, batch)

    def make(k: int, shape: tuple) -> TensorSpec:
        spec = input_spec(shape, n, dtype, symbolic and k == 0)  # checks the sizes
        return TensorSpec((symbols()["N"], *spec.shape[1:]), dtype) if symbolic and k else spec

    return batch_specs(given, dtype, make)


def reinterpret(rows: Rows, batch: Optional[int] = None, dtype: Optional[torch.dtype] = None,
                symbolic: bool = False, convention: Optional[str] = None) -> Rows:
    """The same graph costed for another input: another batch, dtype, or symbolic ``N, H, W``.

    No new trace: the interpreter walks ``rows.graph`` again with the new input specs (shapes and
    costs are functions of the specs; the graph is not).  Rows of the meta engine have no graph to
    reuse: fx is tried again (it fails fast, with the same reason) and the meta-device copy runs
    again.  Always the whole graph (``--upto`` cuts come after).
    """
    convention = convention or str(rows.df.attrs["convention"])
    counter(convention)
    given = rows.inputs
    if batch is not None:  # a new batch replaces the one batch-first inputs carried
        given = ModelInputs(tuple(dataclasses.replace(a, batch=None, example=None) for a in given.args),
                            {k: dataclasses.replace(v, batch=None, example=None) for k, v in given.kwargs.items()})
    dtype = rows.dtype if dtype is None else dtype
    specs = _specs(given, rows.batch if batch is None else batch, dtype, symbolic)
    return _product(rows.model, given, specs, dtype, rows.mode, convention, rows.graph)


def _product(model: nn.Module, given: ModelInputs, specs: tuple[list[TensorSpec], dict[str, TensorSpec]],
             dtype: torch.dtype, mode: str, convention: str, graph: Optional[fx.Graph]) -> Rows:
    """Interpret (tracing unless ``graph`` is given) and build the product for ``specs``."""
    first = [*specs[0], *specs[1].values()][0]
    symbolic = any(not isinstance(s, int) for s in first.shape)
    batch = first.shape[0]
    with training_mode(model, mode == "train"), batch_hint(given.first_shape):  # formulas read BatchNorm's `training`
        records, graph, found = _interpret(model, specs, graph)
    context = {"model": type(model).__name__, "input": list(given.first_shape), "inputs": given.describe(),
               "batch": "N" if symbolic else batch,
               "dtype": str(float_dtype(given, dtype)).replace("torch.", ""), "mode": mode, "convention": convention,
               "symbolic": symbolic, "input_bytes": simplify(sum(s.nbytes for s in [*specs[0], *specs[1].values()])),
               "params_all": sum(p.numel() for p in model.parameters()), **found}
    df = _frame(records, context, None)
    if found["engine"] == "fx":
        modules = [r.module for r in records]
        params = [row_weights(r) for r in records]
        nodes = [r.node for r in records]
    else:  # the meta engine ran a copy: name the caller's own modules (its functional weights are mapped back)
        modules = [named_module(model, r.name, r.op) for r in records]
        params = [list(m.parameters()) if m is not None else row_weights(r) if r.module is None else []
                  for m, r in zip(modules, records)]
        nodes = [None] * len(records)
    return Rows(df, found["engine"], graph, nodes, params, modules, records, model, first, given, specs)


def cut_rows(rows: Rows, upto: str) -> Rows:
    """The rows up to and including the last call owned by layer ``upto`` (``--upto``), totals redone.

    The full graph stays with the product: a check that runs the model runs all of it."""
    df = _frame(rows.records, dict(rows.df.attrs), upto)
    n = len(df)
    return Rows(df, rows.engine, rows.graph, rows.nodes[:n], rows.params[:n], rows.modules[:n], rows.records[:n],
                rows.model, rows.spec, rows.inputs, rows.specs)


def analyze(
    model: nn.Module,
    input_shape: Optional[Sequence[int]] = None,
    batch: int = 1,
    dtype: torch.dtype = torch.float32,
    mode: str = "eval",
    convention: str = "lecture",
    symbolic: bool = False,
    upto: Optional[str] = None,
    *,
    inputs: Optional[Sequence[Any]] = None,
    kwargs: Optional[Mapping[str, Any]] = None,
) -> pd.DataFrame:
    """Per-op-call table of ``model`` on inputs of ``input_shape`` (per sample, e.g. ``(3, 224, 224)``).

    A model with several inputs takes ``inputs=[...]`` (positional, in ``forward``'s order) and
    ``kwargs={name: ...}`` (keyword inputs) instead: each a shape per sample, an
    :class:`archstat.engine.inputs.InputSpec` (own dtype), a batch-first TensorSpec or a tensor
    (meta tensors are enough; a batch-first input sets the batch).
    Nothing is run and nothing is allocated: the model is traced with torch.fx and every op is
    costed by its formula.  With ``symbolic=True`` the batch and spatial sizes are sympy symbols
    ``N, H, W`` (of the first input; the others keep their sizes) and every number is a closed form.
    ``upto`` keeps the rows up to a named layer.
    :func:`analyze_rows` returns the same table with each row's node, module and weights.
    """
    return analyze_rows(model, input_shape, batch=batch, dtype=dtype, mode=mode, convention=convention,
                        symbolic=symbolic, upto=upto, inputs=inputs, kwargs=kwargs).df
