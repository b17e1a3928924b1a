"""Formatting at the edge: the analysis DataFrame -> text, Markdown, CSV or JSON.

The data never folds rows; the text and Markdown tables fold zero-cost activations, dropout and
identities into the row before them (``Conv2d+ReLU``), for the lecture's look.  Units appear only
here: memory in KB (bytes / 1024, as the lecture prints it), params in thousands, flop in millions,
each with as many decimals as it takes to stay exact.
"""
from __future__ import annotations

import json
from decimal import Decimal, localcontext
from typing import Any

import pandas as pd

from archstat.engine.analyze import grouped_unsupported
from archstat.engine.conventions import DESCRIPTIONS
from archstat.engine.inputs import several_text
from archstat.analyses.live_memory import inference_peak
from archstat.spec import is_symbolic

FOLDABLE_KINDS = ("activation", "dropout", "identity")
JSON_FIELDS = ["name", "op", "call", "in_shapes", "out_shape", "kernel", "stride", "padding", "params", "macs",
               "flops", "act_bytes", "alloc", "supported"]
# columns `archstat table --training` / `--receptive-field` add (archstat.analyses.table_columns)
TRAINING_FIELDS = ["saved_bytes", "bwd_macs", "bwd_flops"]
RF_FIELDS = ["rf", "jump", "rf_regular", "rf_global"]
SUMMED = ("params", "act_bytes", *TRAINING_FIELDS)  # what a folded row adds up


def extra_fields(df: pd.DataFrame) -> list[str]:
    """The optional per-row fields this table carries, in output order.  ``batched`` appears when a
    row holds a value without the batch (made from parameters alone), whose shapes are whole."""
    unbatched = "batched" in df.columns and not df["batched"].all()
    dead = "used" in df.columns and not df["used"].all()  # values computed but never used
    return ["batched"] * unbatched + ["used"] * dead + [c for c in ["lecture", *TRAINING_FIELDS, *RF_FIELDS] if c in df.columns]


def scaled(value: Any, divisor: int) -> str:
    """Exact decimal of value/divisor (23296/1000 -> '23.296'); expressions print as they are."""
    if is_symbolic(value):
        return str(value) if divisor == 1 else f"({value})/{divisor}"
    with localcontext() as ctx:  # exact at any size (a batch of 1e26 has 30+ digits; the default keeps 28)
        ctx.prec = len(str(abs(int(value)))) + 40
        text = format(Decimal(int(value)) / Decimal(divisor), "f")
    text = text.rstrip("0").rstrip(".") if "." in text else text
    whole, _, frac = text.partition(".")
    whole = f"{int(whole):,}"
    return f"{whole}.{frac}" if frac else whole


def _hw(shape: list) -> str:
    spatial = shape[1:]
    if not spatial:
        return ""
    if all(s == spatial[0] for s in spatial):
        return str(spatial[0])
    return "x".join(str(s) for s in spatial)


def _triple(values: Any) -> str:
    if values is None:
        return ""
    if isinstance(values, str):
        return values
    return str(values[0]) if all(v == values[0] for v in values) else "x".join(map(str, values))


def fold(df: pd.DataFrame) -> list[dict]:
    """Display rows: zero-FLOP activations/dropout/identities merge into the preceding row."""
    shown: list[dict] = []
    for row in df.to_dict("records"):
        if shown and row["kind"] in FOLDABLE_KINDS and row["supported"] and row["flops"] == 0:
            prev = shown[-1]
            prev["op"] += f"+{row['op']}"
            for col in SUMMED:
                if col in prev:
                    prev[col] = prev[col] + row[col]
            continue
        shown.append(dict(row))
    return shown


def display_rows(df: pd.DataFrame, folded: bool = True) -> list[dict[str, str]]:
    rows = fold(df) if folded else df.to_dict("records")
    out = []
    for r in rows:
        ins = r["in_shapes"][0] if r["in_shapes"] else []
        mark = ("" if r["supported"] else " (unsupported)") + ("" if r.get("used", True) else " (unused)")
        out.append({
            "layer": r["name"] or "<root>", **({"lecture": r["lecture"]} if "lecture" in r else {}),
            "op": r["op"] + mark, "C_in": str(ins[0]) if ins else "", "H/W in": _hw(ins),
            "filters": str(r["hparams"].get("c_out", r["hparams"].get("out_features", ""))),
            "kernel": _triple(r["kernel"]), "stride": _triple(r["stride"]), "pad": _triple(r["padding"]),
            "C_out": str(r["out_shape"][0]) if r["out_shape"] else "", "H/W out": _hw(r["out_shape"]),
            "memory (KB)": scaled(r["act_bytes"], 1024) if r["supported"] else "?",
            "params (k)": scaled(r["params"], 1000),
            "flop (M)": scaled(r["flops"], 10**6) if r["supported"] else "?",
            **_extra_cells(r),
        })
    return out


def _per_dim(values: list) -> str:
    """``163`` when every spatial dim agrees, ``7x1`` when not, empty for a row with none."""
    if not values:
        return ""
    return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))


def _rf_cell(r: dict) -> str:
    return ("~" if not r["rf_regular"] else "") + _per_dim(r["rf"]) + (" global" if r["rf_global"] else "")


def _extra_cells(r: dict) -> dict[str, str]:
    cells = {}
    if "saved_bytes" in r:
        cells["saved (KB)"] = scaled(r["saved_bytes"], 1024) if r["saved_known"] else "?"
        cells["bwd flop (M)"] = scaled(r["bwd_flops"], 10**6) if r["supported"] else "?"
    if "rf" in r:
        cells["RF"] = _rf_cell(r)
        cells["jump"] = _per_dim(r["jump"])
    return cells


def totals_row(df: pd.DataFrame) -> dict[str, str]:
    t = df.attrs["total"]
    partial = " (partial)" if df.attrs.get("partial") else ""
    row = {"layer": "total" + partial, "memory (KB)": scaled(t["act_bytes"], 1024),
           "params (k)": scaled(t["params"], 1000), "flop (M)": scaled(t["flops"], 10**6)}
    if "training" in df.attrs:
        tr = df.attrs["training"]
        row["saved (KB)"] = scaled(tr["saved"], 1024) + (" (partial)" if tr["partial"] else "")
        row["bwd flop (M)"] = scaled(tr["bwd_flops"], 10**6)
    return row


def title(a: dict) -> str:
    """The model as asked for and its class (``resnet50 (ResNet)``), or the class alone."""
    name = a.get("model_name")
    return f"{name} ({a['model']})" if name and name != a["model"] else a["model"]


ROOT_NOTE = ('<root>: ops in the model\'s own forward, such as torch.flatten (name "" in CSV/JSON: the root '
             "module's qualified name, the join key of validate and profile)")


def _header(df: pd.DataFrame) -> str:
    a = df.attrs
    several = several_text(a.get("inputs"))
    shape = f"s {several}" if several else " " + "x".join(map(str, a["input"]))
    return (f"{title(a)}  input{shape}  batch {a['batch']}  {a['dtype']}  {a['mode']} mode  "
            f"convention: {DESCRIPTIONS[a['convention']]}")


UNSUPPORTED_HINT = ("give an op a formula with @archstat.register_function('OP') (a function, by the name "
                    "shown) or @archstat.register_module(Class) (a layer), in the module that builds the model")


OPTIMIZER_NAMES = {"sgd": "SGD with momentum", "sgd_plain": "plain SGD", "adam": "Adam", "adamw": "AdamW"}


def _training_line(a: dict) -> str:
    """The memory a training step holds after backward, by part, and the backward FLOPs."""
    tr, mib = a["training"], lambda b: f"{b / 2**20:,.2f} MiB"
    optimizer = OPTIMIZER_NAMES[tr["optimizer_name"]]
    parts = (f"saved activations {mib(tr['saved'])} + params {mib(tr['params'])} + grads {mib(tr['grads'])} "
             f"+ buffers {mib(tr['buffers'])} + {optimizer} state {mib(tr['optimizer'])}")
    step = (f" = {mib(tr['total'])}" if tr["total"] is not None
            else " (params etc. of the whole model; --upto cuts the rest)")
    ratio = tr["bwd_flops"] / a["total"]["flops"] if a["total"]["flops"] else float("nan")
    return (f"training step on {tr['device']} ({a['mode']} graph): {parts}{step}; backward "
            f"{scaled(tr['bwd_flops'], 10**6)} M flop ({ratio:.2f}x forward)" + (" (partial)" if tr["partial"] else ""))


def _footer(df: pd.DataFrame) -> list[str]:
    a = df.attrs
    lines = [f"memory = bytes of each op's output / 1024 (views listed, in-place ops and identities add 0); "
             f"params counted once per tensor; MACs {scaled(a['total']['macs'], 1)}"]
    if (df["name"] == "").any():
        lines.append(ROOT_NOTE)
    peak = inference_peak(df)
    if peak is not None:
        lines.append(f"inference peak: {peak['peak_bytes'] / 1024:,.1f} KB of activations alive at once, at "
                     f"{peak['peak_name']} (input included, every value freed after its last use)")
    if "training" in a:
        lines.append(_training_line(a))
    if "rf" in df.columns:
        lines.append("RF: receptive field of one output unit in input pixels (HxW when they differ), jump: its "
                     "effective stride; ~ an upper bound (uneven windows), global: sees every position")
    lrn = df.loc[df["op"] == "LocalResponseNorm", "act_bytes"]
    if len(lrn) and not a.get("symbolic"):
        total = a["total"]["act_bytes"]
        lines.append(f"LocalResponseNorm outputs: {scaled(int(lrn.sum()), 1024)} KB of the memory total; the lecture's "
                     f"tables leave LRN out (without it: {scaled(int(total - lrn.sum()), 1024)} KB)")
    if a.get("params_all") != a["total"]["params"]:
        lines.append(f"params of the whole model (every module, run or not): {a['params_all']:,}")
    if a.get("unsupported"):
        lines.append("UNSUPPORTED ops (no formula; their cost is unknown, totals are partial): "
                     + grouped_unsupported(a["unsupported"]))
        lines.append(UNSUPPORTED_HINT)
    if a.get("oracle_unsupported") and a["convention"] != "lecture":
        lines.append(f"ops the {a['convention']} tool itself does not count (oracle unsupported): "
                     + ", ".join(a["oracle_unsupported"]))
    return lines


def to_text(df: pd.DataFrame, folded: bool = True) -> str:
    rows = display_rows(df, folded) + [totals_row(df)]
    cols = list(rows[0].keys())
    widths = {c: max(len(c), *(len(r.get(c, "")) for r in rows)) for c in cols}
    right = {c for c in cols if c not in ("layer", "lecture", "op")}

    def line(r: dict) -> str:
        return "  ".join(r.get(c, "").rjust(widths[c]) if c in right else r.get(c, "").ljust(widths[c])
                         for c in cols).rstrip()

    body = [line({c: c for c in cols}), "  ".join("-" * widths[c] for c in cols)]
    body += [line(r) for r in rows[:-1]] + ["  ".join("-" * widths[c] for c in cols), line(rows[-1])]
    return "\n".join([_header(df), *body, *_footer(df)])


def to_markdown(df: pd.DataFrame, folded: bool = True) -> str:
    rows = display_rows(df, folded) + [totals_row(df)]
    cols = list(rows[0].keys())
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(r.get(c, "") for c in cols) + " |" for r in rows]
    return "\n".join([f"_{_header(df)}_", "", *lines, "", *(f"- {x}" for x in _footer(df))])


def jsonable(value: Any) -> Any:
    """JSON-ready: tuples -> lists, sympy expressions -> their string, numpy/torch scalars -> Python."""
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if is_symbolic(value):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "is_Integer"):
        return int(value)
    return value


def _without_attrs(df: pd.DataFrame) -> pd.DataFrame:
    """The same frame, no copy, minus ``attrs``: pandas deep-copies attrs on every row or column taken,
    and a symbolic table's attrs hold sympy Max/Min expressions whose deep copy re-simplifies them
    (about 80 s of a ~90 s ``table alexnet --symbolic --format json``)."""
    return pd.DataFrame(df, copy=False)


def _several(attrs: dict) -> dict:
    """``{"inputs": [...]}`` (name, shape, dtype, high of each) for a model given more than one plain
    input; nothing otherwise, so that a one-input table's JSON stays as it was (``input`` is the first)."""
    return {"inputs": attrs["inputs"]} if several_text(attrs.get("inputs")) else {}


def to_dict(df: pd.DataFrame) -> dict:
    a, full, df = df.attrs, df, _without_attrs(df)
    return jsonable({
        "model": a["model"], "input": a["input"], **_several(a), "batch": a["batch"], "dtype": a["dtype"],
        "mode": a["mode"], "convention": a["convention"], "symbolic": a["symbolic"],
        "layers": [{k: r[k] for k in JSON_FIELDS + extra_fields(df)} for r in df.to_dict("records")],
        "total": a["total"], "params_all": a["params_all"], "partial": a["partial"],
        "unsupported": a["unsupported"], "oracle_unsupported": a["oracle_unsupported"],
        "inference_peak": inference_peak(full),
        **({"training": a["training"]} if "training" in a else {}),
    })


def to_json(df: pd.DataFrame) -> str:
    return json.dumps(to_dict(df), indent=1)


def to_csv(df: pd.DataFrame) -> str:
    flat = df[JSON_FIELDS + extra_fields(df)].copy()
    for col in ("in_shapes", "out_shape", "kernel", "stride", "padding", *(c for c in ("rf", "jump") if c in flat)):
        flat[col] = flat[col].map(lambda v: "" if v is None else json.dumps(jsonable(v)))
    for col in ("params", "macs", "flops", "act_bytes"):
        flat[col] = flat[col].map(lambda v: str(v))
    return flat.to_csv(index=False, lineterminator="\n")


FORMATTERS = {"text": to_text, "markdown": to_markdown, "json": to_json, "csv": to_csv}
