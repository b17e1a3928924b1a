"""Prove the symbolic table against the real model: one real forward pass, two FLOP oracles.

``validate(model, input_shape)`` returns analyze()'s rows, keyed by ``(name, op, call)``, each next
to what really happened, with one boolean per check:

* ``shape_ok``: the real output's whole shape equals the formula's (``out_shape``, after the batch
  when the row is ``batched``);
* ``params_ok``: parameter elements the real call reads for the first time (shared storage once);
* ``bytes_ok``: the real outputs' ``nbytes`` (0 when the output is the very same memory view as
  an input: in-place ops, identities), and whether the output got its own storage (``alloc``);
* ``macs_ok``: per module, the MACs equal fvcore's matrix-op counts (conv, linear, matmul ...);
* ``fvcore_ok`` / ``flopcounter_ok``: per module, the ``fvcore`` / ``flopcounter`` convention
  equals ``FlopCountAnalysis.by_module_and_operator()`` / ``FlopCounterMode``'s per-module count.
  A row shows its module's own count (``self``: the module minus its submodules), so a functional
  ``+`` in ``layer1.0`` is checked together with anything else ``layer1.0`` does itself;
* ``unsupported_ok``: the module has ops fvcore does not handle exactly when archstat marks a row
  "oracle unsupported" (BatchNorm's ``num_batches_tracked += 1`` in training, which costs nothing
  in every convention, is not such an op);
* ``live_ok`` (eval mode, fx engine): the activation bytes alive while the row runs
  (``archstat.analyses.live_memory``) equal what a dispatch-level tracker measures on the real graph run
  (``validation.live_memory_check``); their maximum is the inference peak;
* ``saved_ok`` / ``bwd_ok`` (train mode): the bytes autograd saves for backward and the backward
  pass's FlopCounterMode FLOPs, per row, against the real thing (``validation.training_check``).

Rows whose op archstat has no formula for cannot be checked for FLOPs (``None``): the result is
then partial, and says so.  The real run is the same fx graph executed by ``torch.fx.Interpreter``
(or, for models fx cannot trace, the meta engine's hooks on the real model), so every row meets
exactly one real call; the model's own ``forward`` output must equal the graph's (``fidelity``).
The code is the same on every device: only where ``x`` and the weights live differs.
"""
from __future__ import annotations

import copy
import time
from collections import Counter
from typing import Any, Callable, Optional, Sequence

import pandas as pd
import torch
from torch import nn

from archstat.analyses.live_memory import live_bytes
from archstat.device import resolve_device
from archstat.engine.analyze import analyze_rows
from archstat.engine.conventions import counter
from archstat.engine.rows import Rows
from archstat.errors import ArchstatError
from archstat.validation.module_checks import oracle_columns, oracle_flags
from archstat.validation.oracles import flopcounter_counts, fvcore_counts, row_checks
from archstat.engine.trace import training_mode
from archstat.validation.fits import check_fits
from archstat.validation.live_memory_check import measured_live
from archstat.engine.inputs import call_args
from archstat.validation.real_run import RealRun, tensors
from archstat.validation.training_check import TRAINING_COLUMNS, training_checks

# totals compared with the real run, not an oracle
REAL_TOTALS = ("params", "act_bytes", "inference_peak", "training_saved")
CHECKS = ("shape_ok", "params_ok", "bytes_ok", "macs_ok", "fvcore_ok", "flopcounter_ok", "unsupported_ok", "live_ok",
          "saved_ok", "bwd_ok")


def real_copy(model: nn.Module, device: torch.device, dtype: torch.dtype, mode: str) -> nn.Module:
    """The model with real weights on ``device``; a copy when anything would change the caller's."""
    tensors_ = list(model.parameters()) + list(model.buffers())
    if any(t.is_meta for t in tensors_):
        raise ArchstatError("the model is on the meta device: validate needs real weights (build it on cpu or cuda)")
    same = all(t.device.type == device.type for t in tensors_) and all(
        t.dtype == dtype for t in tensors_ if t.is_floating_point())
    if same and mode == "eval":
        return model
    return copy.deepcopy(model).to(device=device, dtype=dtype)  # training updates BN statistics: never the caller's


def _same_outputs(a: Any, b: Any) -> bool:
    ta, tb = tensors(a), tensors(b)
    return len(ta) == len(tb) and all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(ta, tb))


def returned_mismatches(returned: Optional[list], real: list[torch.Tensor]) -> list[str]:
    """The tensors the model returns, in its order (a dict's keys in insertion order), against the
    shapes archstat says the returned rows have (``attrs["returned"]``; None: the meta engine, which
    does not know the outputs)."""
    if returned is None:
        return []
    if len(returned) != len(real):
        return [f"outputs: archstat says the model returns {len(returned)} tensors, it returns {len(real)}"]
    return [f"output {j}: archstat {'x'.join(map(str, shape))} (row {row}) vs returned "
            f"{'x'.join(map(str, t.shape))}" for j, ((row, shape), t) in enumerate(zip(returned, real))
            if tuple(shape) != tuple(t.shape)]


# the checks validate() runs, in order (the progress bar's steps)
STAGES = ("trace", "real run", "FLOP oracles", "live bytes", "training checks")


def validate(
    model: nn.Module,
    input_shape: Optional[Sequence[int]] = None,
    batch: int = 1,
    device: str | torch.device = "cpu",
    mode: str = "eval",
    convention: str = "lecture",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    on_stage: Callable[[str], object] | None = None,
    *,
    inputs: Optional[Sequence[Any]] = None,
    kwargs: Optional[dict] = None,
) -> pd.DataFrame:
    """Per-row agreement of ``analyze()`` with one real run of ``model`` and with fvcore / FlopCounterMode.

    ``df.attrs`` holds ``agree`` (every check passed), ``partial`` (some op has no formula),
    ``mismatches`` (one line each, naming the layer and both values), ``totals`` and ``timing``.
    A model with several inputs takes ``inputs`` / ``kwargs`` as :func:`archstat.engine.analyze.analyze_rows`
    does; every real run feeds all of them (floats: seeded normals; integers: ``randint(0, high)``, or
    zeros without a bound; example tensors as given).
    The model is traced once (:func:`archstat.engine.analyze.analyze_rows`); see :func:`validate_rows`.
    """
    stage = on_stage or (lambda name: None)
    stage(STAGES[0])
    t0 = time.perf_counter()
    dev = resolve_device(device)
    work = real_copy(model, dev, dtype, mode)
    counter(convention)  # reject an unknown convention before any work
    # costed in the fvcore convention, so that ``oracle_supported`` is fvcore's verdict whatever is shown
    rows = analyze_rows(work, input_shape, batch=batch, dtype=dtype, mode=mode, convention="fvcore", inputs=inputs,
                        kwargs=kwargs)
    return validate_rows(rows, convention=convention, seed=seed, device=dev, started=t0, on_stage=stage)


def validate_rows(rows: Rows, convention: str = "lecture", seed: int = 0, device: Optional[torch.device] = None,
                  started: Optional[float] = None, on_stage: Optional[Callable[[str], object]] = None) -> pd.DataFrame:
    """:func:`validate` for a product already computed on a model with real weights (``rows.model``,
    on the device and in the dtype to check; the rows in the fvcore convention)."""
    stage = on_stage or (lambda name: None)
    t0 = time.perf_counter() if started is None else started
    work = rows.model
    dev = device or next((t.device for t in [*work.parameters(), *work.buffers()]), torch.device("cpu"))
    df = rows.df.copy()
    df["flops"] = df[f"flops_{convention}"]
    timing = {"analyze_s": time.perf_counter() - t0}
    check_fits(rows, dev)  # before the input is allocated
    args, kwargs = rows.example(dev, seed)  # every input the model takes
    real, graph_out, model_out, fc, fv, measured = _real_runs(rows, args, kwargs, seed, timing, stage)
    _real_columns(df, real.calls, rows, measured)
    t = time.perf_counter()
    training_totals: dict[str, tuple[int, int]] = {}
    stage(STAGES[4])
    if rows.mode == "train":
        cols, training_totals = training_checks(rows, dev, seed)
        df[list(TRAINING_COLUMNS)] = cols
    else:
        for c in TRAINING_COLUMNS:
            df[c] = None
    timing["training_s"] = time.perf_counter() - t
    oracle_columns(df, work, fv, fc, rows.mode == "train")
    mismatches = _mismatches(df)
    fidelity = _same_outputs(graph_out, model_out)
    if not fidelity:
        mismatches.append("the fx graph's output differs from the model's own forward()")
    mismatches += returned_mismatches(rows.df.attrs.get("returned"), tensors(model_out))
    totals = _totals(df, fv, fc, measured is not None, training_totals)
    for key, (ours, theirs) in totals.items():
        if ours != theirs and not rows.df.attrs["partial"]:
            mismatches.append(f"total {key}: archstat {ours:,} vs {'real' if key in REAL_TOTALS else 'oracle'} "
                              f"{theirs:,}")
    df.attrs = dict(rows.df.attrs)
    df.attrs.update({
        "convention": convention, "oracle_unsupported": sorted(set(df.loc[oracle_flags(df), "op"])),
        "device": str(dev), "fidelity": fidelity, "totals": totals, "mismatches": mismatches,
        "agree": not mismatches,
        "checks": {c: {"ok": int((df[c] == True).sum()), "failed": int((df[c] == False).sum()),  # noqa: E712
                       "skipped": int(df[c].isna().sum())} for c in CHECKS},
        "fvcore_unsupported": dict(fv.get("", {}).get("unsupported", Counter())),
        "timing": {**timing, "total_s": time.perf_counter() - t0},
    })
    return df


def _real_runs(rows: Rows, args: list, kwargs: dict, seed: int, timing: dict, stage: Callable[[str], object]
               ) -> tuple:
    """The graph run along the rows, the model's own forward under FlopCounterMode, fvcore's trace, and
    (eval) the live bytes per row; each one's seconds go into ``timing``."""
    work = rows.model
    with training_mode(work, rows.mode == "train"), torch.no_grad():
        t = time.perf_counter()
        torch.manual_seed(seed)
        stage(STAGES[1])
        real = RealRun(work, rows)
        graph_out = real.run(args, kwargs)
        timing["real_run_s"] = time.perf_counter() - t

        def forward() -> Any:
            torch.manual_seed(seed)
            return work(*args, **kwargs)

        stage(STAGES[2])
        t = time.perf_counter()
        fc, model_out = flopcounter_counts(work, forward)
        timing["flopcounter_s"] = time.perf_counter() - t
        t = time.perf_counter()
        fv = fvcore_counts(work, call_args(work, args, kwargs))  # fvcore's jit trace takes no keywords
        timing["fvcore_s"] = time.perf_counter() - t
        # inference memory is an eval-mode question (a training step's memory is archstat.analyses.memory's)
        stage(STAGES[3])
        measured = measured_live(work, rows, args, kwargs) if rows.mode == "eval" else None
    return real, graph_out, model_out, fc, fv, measured


def _real_columns(df: pd.DataFrame, calls: list, rows: Rows, measured: Optional[list[int]]) -> None:
    """Shapes, params, bytes and (eval, fx) live bytes per row, next to the real run's."""
    # whole shapes are compared, so that a value without the batch (``a * b`` of two parameters)
    # shown as if its first dimension were the batch fails; the real shape is shown like the row's
    real = [c.out_shapes[0] if c.out_shapes else None for c in calls]
    lead = [[rows.batch] if b else [] for b in df["batched"]]
    df["real_out_shape"] = [None if r is None else r[1:] if b else r for r, b in zip(real, df["batched"])]
    df["shape_ok"] = [r is not None and [*p, *map(int, a)] == r for a, p, r in zip(df["out_shape"], lead, real)]
    df["real_params"] = [c.params for c in calls]
    df["params_ok"] = df["params"] == df["real_params"]
    df["real_act_bytes"] = [c.out_nbytes if c.new_bytes else 0 for c in calls]
    df["real_alloc"] = [c.alloc for c in calls]
    df["bytes_ok"] = (df["act_bytes"] == df["real_act_bytes"]) & (df["alloc"] == df["real_alloc"])
    if measured is not None:
        df["live_bytes"] = live_bytes(rows.df)
        df["real_live_bytes"] = [m + int(rows.df.attrs["input_bytes"]) for m in measured]
        # an op without a formula may hold temporaries nobody can name: its own row is not checked
        df["live_ok"] = row_checks(df["live_bytes"], df["real_live_bytes"], df["supported"], df.index)
    else:
        df["live_bytes"] = df["real_live_bytes"] = df["live_ok"] = None


def _totals(df: pd.DataFrame, fv: dict, fc: dict, live: bool, training: dict) -> dict[str, tuple[int, int]]:
    """Whole-model totals, ``(archstat, real or oracle)``."""
    totals = {
        "params": (int(df["params"].sum()), int(df["real_params"].sum())),
        "act_bytes": (int(df["act_bytes"].sum()), int(df["real_act_bytes"].sum())),
        "macs": (int(df["fvcore_handled_macs"].sum()), fv.get("", {}).get("macs", 0)),
        "flops_fvcore": (int(df["flops_fvcore"].sum()), fv.get("", {}).get("flops", 0)),
        "flops_flopcounter": (int(df["flops_flopcounter"].sum()), fc.get("", 0)),
    }
    if live:
        totals["inference_peak"] = (int(df["live_bytes"].max()), int(df["real_live_bytes"].max()))
    totals.update(training)
    return totals


def _fmt(value: Any) -> str:
    return f"{int(value):,}" if isinstance(value, (int,)) or hasattr(value, "__int__") else str(value)


def _mismatches(df: pd.DataFrame) -> list[str]:
    """One line per failed check: the layer (name, op, call) and both values."""
    out: list[str] = []
    pairs = {"shape_ok": ("out_shape", "real_out_shape", "output shape", "real"),
             "params_ok": ("params", "real_params", "params", "real"),
             "bytes_ok": ("act_bytes", "real_act_bytes", "activation bytes", "real"),
             "macs_ok": ("module_macs", "fvcore_macs", "MACs of module", "fvcore"),
             "fvcore_ok": ("module_fvcore", "fvcore_flops", "fvcore FLOPs of module", "fvcore"),
             "flopcounter_ok": ("module_flopcounter", "flopcounter_flops", "FlopCounterMode FLOPs of module",
                                "FlopCounterMode"),
             "live_ok": ("live_bytes", "real_live_bytes", "live activation bytes", "real"),
             "saved_ok": ("saved_bytes", "real_saved_bytes", "bytes saved for backward", "autograd"),
             "bwd_ok": ("bwd_flops", "real_bwd_flops", "backward FlopCounterMode FLOPs", "FlopCounterMode")}
    seen: set = set()
    # only rows with a failed check have a line; to_dict of every row and column was most of the time
    checks = [*pairs, "unsupported_ok"]
    failed = pd.concat([df[c] == False for c in checks], axis=1).any(axis=1)  # noqa: E712 - numpy bools
    for r in df[failed].to_dict("records"):
        layer = f"{r['name'] or '<root>'} ({r['op']}, call {r['call']})"
        for check, (a, b, what, who) in pairs.items():
            if r[check] is False or r[check] == False:  # noqa: E712 - numpy bools
                key = (check, r["name"]) if check in ("macs_ok", "fvcore_ok", "flopcounter_ok") else (check, layer)
                if key in seen:
                    continue
                seen.add(key)
                extra = f", alloc {r['alloc']} vs real {r['real_alloc']}" if check == "bytes_ok" else ""
                ours, theirs = r[a], r[b]
                shown = (_fmt(ours), _fmt(theirs)) if check not in ("shape_ok",) else (ours, theirs)
                out.append(f"layer {layer}: {what}: archstat {shown[0]} vs {who} {shown[1]}{extra}")
        if r["unsupported_ok"] is False or r["unsupported_ok"] == False:  # noqa: E712
            key = ("unsupported", r["name"])
            if key not in seen:
                seen.add(key)
                out.append(f"layer {layer}: archstat's 'oracle unsupported' marks disagree with fvcore's unsupported ops")
    return out


def exit_code(df: pd.DataFrame) -> int:
    return 0 if df.attrs["agree"] else 1
