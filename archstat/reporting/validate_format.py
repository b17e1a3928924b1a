"""The agreement table of ``validate()``: both numbers and a mark per check, text or JSON.

Marks: ``ok`` agrees, ``XX`` disagrees, ``-`` cannot be checked (the op has no formula).  FLOP
columns show the row's module's own count (``ours/oracle``) once per module, on its first row.
"""
from __future__ import annotations

import json
from typing import Any

import pandas as pd

from archstat.engine.analyze import grouped_unsupported
from archstat.reporting.table_format import UNSUPPORTED_HINT, jsonable
from archstat.engine.inputs import several_text
from archstat.spec import is_symbolic
from archstat.validation.module_checks import oracle_skips
from archstat.validation.validate import REAL_TOTALS

MARK = {True: "ok", False: "XX", None: "-"}
JSON_ROW = ["name", "op", "call", "kind", "supported", "oracle_supported", "out_shape", "real_out_shape", "params",
            "real_params", "act_bytes", "real_act_bytes", "alloc", "real_alloc", "macs", "flops",
            "module_macs", "fvcore_macs", "module_fvcore", "fvcore_flops", "module_flopcounter", "flopcounter_flops",
            "live_bytes", "real_live_bytes", "saved_bytes", "real_saved_bytes", "bwd_flops", "real_bwd_flops",
            "shape_ok", "params_ok", "bytes_ok", "macs_ok", "fvcore_ok", "flopcounter_ok", "unsupported_ok", "live_ok",
            "saved_ok", "bwd_ok"]


def _mark(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return MARK[None]
    return MARK[bool(value)]


def _n(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value != value:  # not known (a fused kernel's saved workspace)
        return "?"
    return str(value) if is_symbolic(value) else f"{int(value):,}"


def _pair(a: Any, b: Any, ok: Any) -> str:
    """``ours ok`` when the check passes (or ``ours -`` when skipped), ``ours/theirs XX`` when not."""
    mark = _mark(ok)
    return f"{_n(a)}/{_n(b)} XX" if mark == "XX" else f"{_n(a)} {mark}"


def agreement_rows(df: pd.DataFrame) -> list[dict[str, str]]:
    """One display row per op call; eval mode shows live bytes, train mode saved bytes and backward FLOPs."""
    rows, seen = [], set()
    train = df.attrs.get("mode") == "train"
    for r in df.to_dict("records"):
        first = r["name"] not in seen
        seen.add(r["name"])
        shape = "x".join(map(str, r["out_shape"]))
        memory = ({"saved bytes": _pair(r["saved_bytes"], r["real_saved_bytes"], r["saved_ok"]),
                   "bwd flopcounter": _pair(r["bwd_flops"], r["real_bwd_flops"], r["bwd_ok"])} if train
                  else {"live bytes": _pair(r["live_bytes"], r["real_live_bytes"], r["live_ok"])})
        rows.append({
            "layer": r["name"] or "<root>", "op": r["op"] + ("" if r["supported"] else " (unsupported)")
            + (" *" if oracle_skips(r) else ""),
            "out": f"{shape} ok" if r["shape_ok"] else f"{shape}/{'x'.join(map(str, r['real_out_shape'] or []))} XX",
            "params": _pair(r["params"], r["real_params"], r["params_ok"]),
            "bytes": _pair(r["act_bytes"], r["real_act_bytes"], r["bytes_ok"]),
            **memory,
            "MACs (module)": _pair(r["module_macs"], r["fvcore_macs"], r["macs_ok"]) if first else "",
            "fvcore (module)": _pair(r["module_fvcore"], r["fvcore_flops"], r["fvcore_ok"]) if first else "",
            "flopcounter (module)": _pair(r["module_flopcounter"], r["flopcounter_flops"], r["flopcounter_ok"])
            if first else "",
        })
    return rows


def to_text(df: pd.DataFrame) -> str:
    a = df.attrs
    shown = several_text(a.get("inputs"))
    inputs = f"inputs {shown}" if shown else "input " + "x".join(map(str, a["input"]))
    head = (f"{a['model']}  {inputs}  batch {a['batch']}  {a['dtype']}  {a['mode']} mode  "
            f"device {a['device']}  engine {a['engine']}  convention {a['convention']} (flops total "
            f"{_n(sum(int(v) for v in df['flops']))}; every convention with an oracle is checked below)")
    rows = agreement_rows(df)
    cols = list(rows[0].keys()) if rows else ["layer"]
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    line = lambda r: "  ".join(r[c].ljust(widths[c]) if c in ("layer", "op") else r[c].rjust(widths[c])  # noqa: E731
                               for c in cols).rstrip()
    out = [head, line({c: c for c in cols}), "  ".join("-" * widths[c] for c in cols), *(line(r) for r in rows)]
    out.append("  ".join("-" * widths[c] for c in cols))
    for key, (ours, theirs) in a["totals"].items():
        who = ("autograd" if key == "training_saved" else "real" if key in REAL_TOTALS
               else "fvcore" if key in ("macs", "flops_fvcore") else "FlopCounterMode")
        out.append(f"total {key:<20s} archstat {_n(ours):>18s}   {who:<15s} {_n(theirs):>18s}   {_mark(ours == theirs)}")
    checks = ", ".join(f"{c[:-3]} {v['ok']}/{v['ok'] + v['failed']}" for c, v in a["checks"].items()
                       if v["ok"] + v["failed"] or c not in ("live_ok", "saved_ok", "bwd_ok"))  # mode-specific checks
    out.append(f"checks passed: {checks}; fx graph output == model output: {_mark(a['fidelity'])}")
    out.append("MACs, fvcore and flopcounter compare each module's own count (its rows, without submodules); "
               "a row marked * has an op fvcore does not count (oracle unsupported)")
    if a["mode"] == "train":
        out.append("saved bytes: storages each row is the first to save for backward (real: saved_tensors_hooks); "
                   "bwd flopcounter: backward FLOPs (real: FlopCounterMode while the row's autograd nodes run)")
    if "inference_peak" in a["totals"]:
        out.append("live bytes: activations alive while the row runs, input included, each value freed after its "
                   "last use (the fx schedule); real: a dispatch-level tracker on the graph run")
    if a["fvcore_unsupported"]:
        out.append("fvcore's unsupported ops: " + ", ".join(f"{k} x{v}" for k, v in sorted(a["fvcore_unsupported"].items())))
    if a["partial"]:
        out.append("PARTIAL: ops without a formula (their FLOPs are not counted, FLOP checks skipped): "
                   + grouped_unsupported(a["unsupported"]))
        out.append(UNSUPPORTED_HINT)
    t = a["timing"]
    out.append(f"time: {t['total_s']:.2f} s (analyze {t['analyze_s']:.2f}, real run {t['real_run_s']:.2f}, "
               f"FlopCounterMode {t['flopcounter_s']:.2f}, fvcore {t['fvcore_s']:.2f}"
               + (f", saved tensors and backward {t['training_s']:.2f})" if a["mode"] == "train" else ")"))
    if a["mismatches"]:
        out.append(f"DISAGREE ({len(a['mismatches'])}):")
        out += [f"  {m}" for m in a["mismatches"]]
    else:
        out.append("AGREE: every check passed" + (" (partial: see above)" if a["partial"] else ""))
    return "\n".join(out)


def to_dict(df: pd.DataFrame) -> dict:
    a = df.attrs
    return jsonable({
        "model": a["model"], "input": a["input"],
        **({"inputs": a["inputs"]} if several_text(a.get("inputs")) else {}),  # one plain input: as before
        "batch": a["batch"], "dtype": a["dtype"], "mode": a["mode"], "device": a["device"],
        "convention": a["convention"], "engine": a["engine"], "agree": a["agree"],
        "partial": a["partial"], "unsupported": a["unsupported"], "oracle_unsupported": a["oracle_unsupported"],
        "fvcore_unsupported": a["fvcore_unsupported"], "fidelity": a["fidelity"], "checks": a["checks"],
        "totals": {k: {"archstat": v[0], "oracle": v[1]} for k, v in a["totals"].items()},
        "mismatches": a["mismatches"], "timing": a["timing"],
        "layers": [{k: r[k] for k in JSON_ROW} for r in df.to_dict("records")],
    })


def to_json(df: pd.DataFrame) -> str:
    return json.dumps(to_dict(df), indent=1)
