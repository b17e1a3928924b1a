"""Prove the symbolic table against the real model: one real forward pass, two FLOP oracles.

``validate(model, input_shape)`` returns analyze()'s rows, keyed by ``(name, op, call)``, each next
to what really happened, with one boolean per check:

* ``shape_ok``: the real output's shape (per sample) equals the formula's ``out_shape``;
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
from typing import Any, Callable, Sequence

import pandas as pd
import torch
from torch import nn

from archstat.device import resolve_device
from archstat.engine.conventions import counter, fvcore_unsupported_inside
from archstat.errors import ArchstatError
from archstat.engine.rows import RealRun, graph_rows, tensors
from archstat.analyses.live_memory import live_bytes
from archstat.validation.oracles import (FVCORE_BOOKKEEPING, canonical_names, cumulative, flopcounter_counts,
                                         fvcore_counts, row_checks, self_counts)
from archstat.engine.trace import training_mode
from archstat.validation.live_memory_check import measured_live
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


def _module_checks(df: pd.DataFrame, ours_col: str, oracle_cum: dict[str, int], names: list[str],
                   checkable: dict[str, bool]) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Per row: our own count for the row's module, the oracle's, and whether they agree."""
    ours = self_counts(cumulative(list(zip(df["name"], (int(v) for v in df[ours_col]))), names), names)
    theirs = self_counts(oracle_cum, names)
    mine = df["name"].map(ours)
    other = df["name"].map(lambda n: theirs.get(n, 0))
    ok = [None if not checkable.get(n, True) else bool(a == b) for n, a, b in zip(df["name"], mine, other)]
    return mine, other, pd.Series(ok, index=df.index, dtype=object)


def oracle_skips(r: dict) -> bool:
    """Does fvcore report an op of this row as unsupported: one it skips, or one inside a row whose
    main op it counts (a conv's reflect padding)?  Rows without a formula are not ours to say."""
    return bool(r["supported"]) and (not r["oracle_supported"] or fvcore_unsupported_inside(r["kind"], r["hparams"]))


def _oracle_flags(df: pd.DataFrame) -> pd.Series:
    return pd.Series([oracle_skips(r) for r in df.to_dict("records")], index=df.index, dtype=bool)


def _unsupported_presence(df: pd.DataFrame, fv: dict, names: list[str], modules: dict[str, nn.Module],
                          train: bool, checkable: dict[str, bool]) -> pd.Series:
    """Does each row's module have fvcore-unsupported ops exactly when archstat says so?"""
    cum = {n: fv.get(n, {}).get("unsupported", Counter()) for n in names}
    ours = df.assign(u=_oracle_flags(df)).groupby("name")["u"].any().to_dict()
    for n in df.attrs.get("shape_ops", {}):  # `n_h * n_w` on sizes: aten::mul in fvcore's trace
        ours[n] = True
    own: dict[str, Counter] = {}
    for n in names:
        mine = Counter(cum[n])
        for c in names:
            if c != n and c.startswith(n + "." if n else "") and "." not in c[len(n) + 1 if n else 0:]:
                mine.subtract(cum[c])
        # BatchNorm's num_batches_tracked += 1: not a row when BN is a leaf (fx), a row when not (meta)
        if train and isinstance(modules.get(n), nn.modules.batchnorm._BatchNorm) and not ours.get(n, False):
            for op in FVCORE_BOOKKEEPING:
                mine.pop(op, None)
        own[n] = mine
    theirs = {n: any(v > 0 for v in c.values()) for n, c in own.items()}
    return pd.Series([None if not checkable.get(n, True) else bool(ours.get(n, False)) == theirs.get(n, False)
                      for n in df["name"]], index=df.index, dtype=object)


# the checks validate() runs, in order (the progress bar's steps)
STAGES = ("trace", "real run", "FLOP oracles", "live bytes", "training checks")


def validate(
    model: nn.Module,
    input_shape: Sequence[int],
    batch: int = 1,
    device: str | torch.device = "cpu",
    mode: str = "eval",
    convention: str = "lecture",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    on_stage: Callable[[str], object] | None = None,
) -> pd.DataFrame:
    """Per-row agreement of ``analyze()`` with one real run of ``model`` and with fvcore / FlopCounterMode.

    ``df.attrs`` holds ``agree`` (every check passed), ``partial`` (some op has no formula),
    ``mismatches`` (one line each, naming the layer and both values), ``totals`` and ``timing``.
    ``on_stage(name)`` is called as each of ``STAGES`` starts (the CLI's progress bar).
    """
    stage = on_stage or (lambda name: None)
    stage(STAGES[0])
    t0 = time.perf_counter()
    dev = resolve_device(device)
    work = real_copy(model, dev, dtype, mode)
    counter(convention)  # reject an unknown convention before any work
    # traced in the fvcore convention, so that ``oracle_supported`` is fvcore's verdict whatever is shown
    rows = graph_rows(work, input_shape, batch=batch, dtype=dtype, mode=mode, convention="fvcore")
    df = rows.df.copy()
    df["flops"] = df[f"flops_{convention}"]
    t_analyze = time.perf_counter() - t0
    gen = torch.Generator(device=dev).manual_seed(seed)
    x = torch.randn(batch, *input_shape, device=dev, dtype=dtype, generator=gen)
    train = mode == "train"
    with training_mode(work, train), torch.no_grad():
        t = time.perf_counter()
        torch.manual_seed(seed)
        stage(STAGES[1])
        real = RealRun(work, rows)
        graph_out = real.run(x)
        t_run = time.perf_counter() - t

        def forward() -> Any:
            torch.manual_seed(seed)
            return work(x)

        stage(STAGES[2])
        t = time.perf_counter()
        fc, model_out = flopcounter_counts(work, forward)
        t_fc = time.perf_counter() - t
        t = time.perf_counter()
        fv = fvcore_counts(work, x)
        t_fv = time.perf_counter() - t
        # inference memory is an eval-mode question (a training step's memory is archstat.analyses.memory's)
        stage(STAGES[3])
        estimate = live_bytes(rows.df) if not train else None
        measured = measured_live(work, rows, x) if estimate is not None else None

    calls = real.calls
    df["real_out_shape"] = [c.out_shapes[0] if c.out_shapes else None for c in calls]
    df["shape_ok"] = [list(map(int, a)) == b for a, b in zip(df["out_shape"], df["real_out_shape"])]
    df["real_params"] = [c.params for c in calls]
    df["params_ok"] = df["params"] == df["real_params"]
    df["real_act_bytes"] = [c.out_nbytes if c.new_bytes else 0 for c in calls]
    df["real_alloc"] = [c.alloc for c in calls]
    df["bytes_ok"] = (df["act_bytes"] == df["real_act_bytes"]) & (df["alloc"] == df["real_alloc"])
    if measured is not None:
        df["live_bytes"] = estimate
        df["real_live_bytes"] = [m + int(rows.df.attrs["input_bytes"]) for m in measured]
        # an op without a formula may hold temporaries nobody can name: its own row is not checked
        df["live_ok"] = row_checks(df["live_bytes"], df["real_live_bytes"], df["supported"], df.index)
    else:
        df["live_bytes"] = df["real_live_bytes"] = df["live_ok"] = None
    t = time.perf_counter()
    training_totals: dict[str, tuple[int, int]] = {}
    stage(STAGES[4])
    if train:
        cols, training_totals = training_checks(work, rows, input_shape, batch, dtype, mode, dev, seed)
        df[list(TRAINING_COLUMNS)] = cols
    else:
        for c in TRAINING_COLUMNS:
            df[c] = None
    t_train = time.perf_counter() - t

    canon = canonical_names(work)
    modules = {n: m for n, m in work.named_modules()}
    names = sorted(set(canon.values()) | set(df["name"]))
    checkable = (df.groupby("name")["supported"].all()).to_dict()
    # MACs against fvcore's matrix ops, over the ops fvcore handles (a conv with padding="same" runs
    # aten::_convolution_mode, which fvcore skips; FlopCounterMode still checks its MACs, times 2)
    df["fvcore_handled_macs"] = df["macs"].where(df["oracle_supported"], 0)
    df["module_macs"], df["fvcore_macs"], df["macs_ok"] = _module_checks(
        df, "fvcore_handled_macs", {n: c["macs"] for n, c in fv.items()}, names, checkable)
    df["module_fvcore"], df["fvcore_flops"], df["fvcore_ok"] = _module_checks(
        df, "flops_fvcore", {n: c["flops"] for n, c in fv.items()}, names, checkable)
    df["module_flopcounter"], df["flopcounter_flops"], df["flopcounter_ok"] = _module_checks(
        df, "flops_flopcounter", fc, names, checkable)
    df["unsupported_ok"] = _unsupported_presence(df, fv, names, modules, train, checkable)

    mismatches = _mismatches(df)
    fidelity = _same_outputs(graph_out, model_out)
    if not fidelity:
        mismatches.append("the fx graph's output differs from the model's own forward()")
    totals = {
        "params": (int(df["params"].sum()), int(df["real_params"].sum())),
        "act_bytes": (int(df["act_bytes"].sum()), int(df["real_act_bytes"].sum())),
        "macs": (int(df["fvcore_handled_macs"].sum()), fv.get("", {}).get("macs", 0)),
        "flops_fvcore": (int(df["flops_fvcore"].sum()), fv.get("", {}).get("flops", 0)),
        "flops_flopcounter": (int(df["flops_flopcounter"].sum()), fc.get("", 0)),
    }
    if measured is not None:
        totals["inference_peak"] = (int(df["live_bytes"].max()), int(df["real_live_bytes"].max()))
    totals.update(training_totals)
    for key, (ours, theirs) in totals.items():
        if ours != theirs and not rows.df.attrs["partial"]:
            mismatches.append(f"total {key}: archstat {ours:,} vs {'real' if key in REAL_TOTALS else 'oracle'} "
                              f"{theirs:,}")
    df.attrs = dict(rows.df.attrs)
    df.attrs.update({
        "convention": convention, "oracle_unsupported": sorted(set(df.loc[_oracle_flags(df), "op"])),
        "device": str(dev), "fidelity": fidelity, "totals": totals, "mismatches": mismatches,
        "agree": not mismatches,
        "checks": {c: {"ok": int((df[c] == True).sum()), "failed": int((df[c] == False).sum()),  # noqa: E712
                       "skipped": int(df[c].isna().sum())} for c in CHECKS},
        "fvcore_unsupported": dict(fv.get("", {}).get("unsupported", Counter())),
        "timing": {"analyze_s": t_analyze, "real_run_s": t_run, "flopcounter_s": t_fc, "fvcore_s": t_fv,
                   "training_s": t_train, "total_s": time.perf_counter() - t0},
    })
    return df


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
    for r in df.to_dict("records"):
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
