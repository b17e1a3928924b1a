"""One report page per architecture: summary, lecture-style table, stage roll-up, closed forms.

``build(name)`` does the analysis (numeric at the default input, symbolic for the closed forms);
``page_markdown`` renders it.  The data files written next to the page hold the same tables raw.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

import pandas as pd
import sympy
from torch import nn

from archstat.analyses import closed_forms as cf
from archstat.engine.analyze import analyze_rows, reinterpret
from archstat.engine.rows import Rows
from archstat.analyses.depth import weight_depth, weight_layers
from archstat.reporting.table_format import scaled, to_markdown
from archstat.errors import ArchstatError, first_line
from archstat.analyses.live_memory import inference_peak
from archstat.models import get_model, model_info
from archstat.analyses.stages import bar_units, stage_labels, stages
from archstat.analyses.table_columns import with_receptive_field, with_training

MB = 1024 ** 2


@dataclass
class ModelReport:
    name: str
    model: nn.Module
    df: pd.DataFrame
    stages: pd.DataFrame
    units: pd.DataFrame
    unit_kind: str
    forms: dict = field(default_factory=dict)  # quantity -> exact sympy expr (per image)
    stage_forms: list = field(default_factory=list)  # [{label, macs, act_bytes}] smooth per stage
    symbolic_error: Optional[str] = None
    training: Optional[dict] = None  # a batch-1 training step (table_columns.with_training attrs)
    training_error: Optional[str] = None


def build(name: str, symbolic: bool = True, *, rows: Optional[Rows] = None,
          model: Optional[nn.Module] = None) -> ModelReport:
    """Analyse ``name`` at its default input (``rows``: its eval product to reuse; ``model``: the
    module to analyse).  One eval trace (numeric rows, receptive field, symbolic closed forms by
    reinterpreting the same graph) and one training trace."""
    info = model_info(name)
    if rows is None:
        model = model if model is not None else get_model(name, device="meta")
        rows = analyze_rows(model, info.default_input)
    model, df = rows.model, rows.df
    units, kind = bar_units(df, model)
    # the page's layer table carries each layer's receptive field (same eval graph, same rows)
    rep = ModelReport(name, model, with_receptive_field(rows), stages(df), units, kind)
    try:  # the training graph (dropout masks, BN batch statistics), batch 1, SGD with momentum
        rep.training = with_training(analyze_rows(model, info.default_input, mode="train")).attrs["training"]
    except ArchstatError as exc:
        rep.training_error = str(exc)
    if symbolic:
        try:
            columns, totals = cf.symbolic_table(reinterpret(rows, symbolic=True))
        except Exception as exc:  # the closed forms are an extra: say why they are missing
            rep.symbolic_error = first_line(exc)
        else:
            rep.forms = {k: totals[k] for k in ("macs", "flops", "act_bytes")}
            rep.forms["params"] = sympy.Integer(int(df.attrs["total"]["params"]))
            if len(columns["macs"]) == len(df):  # same trace: the numeric stages label the symbolic rows
                labels = stage_labels(df)
                for label in dict.fromkeys(labels):
                    idx = [i for i, lab in enumerate(labels) if lab == label]
                    rep.stage_forms.append({"label": label, **{q: cf.smooth(sympy.Add(*(columns[q][i] for i in idx)))
                                                               for q in ("macs", "act_bytes")}})
    return rep


def _row_md(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _summary(rep: ModelReport) -> list[str]:
    from archstat.engine.conventions import CONVENTIONS

    t, df = rep.df.attrs["total"], rep.df
    lines = ["| quantity | value |", "|---|---:|",
             _row_md(["input", "x".join(map(str, rep.df.attrs["input"]))]),
             _row_md(["params (that run in eval)", f"{int(t['params']):,}"]),
             _row_md(["params (every module)", f"{int(df.attrs['params_all']):,}"]),
             _row_md(["MACs", f"{int(t['macs']):,}"])]
    for c in CONVENTIONS:
        lines.append(_row_md([f"FLOPs, {c} convention", f"{int(df[f'flops_{c}'].sum()):,}"]))
    lines += [_row_md(["activation memory (sum of outputs, fp32)", f"{int(t['act_bytes']):,} B = "
                       f"{int(t['act_bytes']) / MB:,.2f} MB"]),
              *_memory_rows(rep),
              _row_md(["depth (weight layers on the longest path)", str(weight_depth(df))]),
              _row_md(["weight layers (conv + linear)", str(weight_layers(df))])]
    if df.attrs.get("partial"):
        lines.append(_row_md(["unsupported ops (totals partial)", ", ".join(df.attrs["unsupported"])]))
    return lines


def _memory_rows(rep: ModelReport) -> list[str]:
    """Inference peak, and what a training step holds and computes (batch 1, fp32)."""
    peak = inference_peak(rep.df)
    rows = [_row_md(["inference peak (activations alive at once, fp32)",
                     f"{peak['peak_bytes']:,} B = {peak['peak_bytes'] / MB:,.2f} MB at {peak['peak_name']}"])] if peak else []
    t = rep.training
    if t is None:
        return rows + [_row_md(["training step", f"n/a ({rep.training_error})"])]
    partial = " (partial)" if t["partial"] else ""
    return rows + [
        _row_md(["training step memory (batch 1, SGD with momentum)",
                 f"{t['total'] / MB:,.2f} MB = saved activations {t['saved'] / MB:,.2f} + params, grads, momentum "
                 f"3 x {t['params'] / MB:,.2f} + buffers {t['buffers'] / MB:,.2f}{partial}"]),
        _row_md(["backward MACs (grad-input + grad-weight, training graph)", f"{t['bwd_macs']:,}"]),
    ]


def _published(name: str) -> list[str]:
    pub = model_info(name).published
    if not pub:
        return ["_No published numbers recorded for this model._"]
    lines = ["| key | published | source | note |", "|---|---:|---|---|"]
    for key, p in pub.items():
        value = "n/a" if p.value is None else (f"{p.value:,.0f}" if p.value >= 1000 else f"{p.value:g}")
        lines.append(_row_md([key, value, p.source, p.note]))
    return lines


def _stages_md(rep: ModelReport) -> list[str]:
    lines = ["| stage | modules | weight layers | output | params | MACs (M) | FLOPs (M, lecture) | memory (KB) |",
             "|---|---|---:|---|---:|---:|---:|---:|"]
    for r in rep.stages.to_dict("records"):
        lines.append(_row_md([r["label"], r["modules"], str(r["weight_layers"]), r["output"], f"{int(r['params']):,}",
                              scaled(r["macs"], 10**6), scaled(r["flops"], 10**6), scaled(r["act_bytes"], 1024)]))
    return lines


def _forms_md(rep: ModelReport) -> list[str]:
    if rep.symbolic_error:
        return [f"_Closed forms not available: `analyze(symbolic=True)` failed ({rep.symbolic_error}); "
                "the resolution figure evaluates this model numerically instead._"]
    info = model_info(rep.name)
    h, w = info.default_input[1], info.default_input[2]
    lines = ["Per image, H x W input. *Smooth* drops PyTorch's floors: it is exact when H and W are multiples of "
             "the network's total stride and otherwise off by boundary terms; the exact forms are in the JSON. "
             "The last two columns check the exact closed form against the numeric analysis.", "",
             f"| quantity | smooth closed form | smooth at {h}x{w} | closed form at {h}x{w} | analyze() at {h}x{w} |",
             "|---|---|---:|---:|---:|"]
    names = {"params": "params", "macs": "MACs", "flops": "FLOPs (lecture)", "act_bytes": "activation bytes"}
    numeric = {**rep.df.attrs["total"], "flops": rep.df["flops_lecture"].sum()}
    for q in ("params", "macs", "flops", "act_bytes"):
        expr = rep.forms[q]
        smooth = cf.smooth(expr)
        exact, num = cf.evaluator(expr)(h, w), int(numeric[q])
        lines.append(_row_md([names[q], f"`{cf.pretty(smooth)}`", f"{float(smooth.subs({cf.H: h, cf.W: w})):,.0f}",
                              f"{exact:,}", f"{num:,}" + ("" if exact == num else " (differs)")]))
    if rep.stage_forms:
        lines += ["", "Per stage (smooth):", "", "| stage | MACs | activation bytes |", "|---|---|---|"]
        lines += [_row_md([s["label"], f"`{cf.pretty(s['macs'])}`", f"`{cf.pretty(s['act_bytes'])}`"])
                  for s in rep.stage_forms]
    return lines


def page_markdown(rep: ModelReport) -> str:
    info = model_info(rep.name)
    head = [f"# {rep.name}", "", f"_{info.paper}_ ({info.year}), <{info.url}>. Family: {info.family}."
            + (f" Same architecture and state_dict layout as torchvision's `{info.torchvision_name}`."
               if info.torchvision_name else ""), ""]
    if info.notes:
        head += [info.notes, ""]
    head += ["Generated by `archstat report`; do not edit. Data: "
             f"[layers CSV](../data/{rep.name}.layers.csv), [layers JSON](../data/{rep.name}.layers.json), "
             f"[stages CSV](../data/{rep.name}.stages.csv), [closed forms JSON](../data/{rep.name}.forms.json).", ""]
    body = ["## Summary", "", *_summary(rep), "", "## Published numbers", "", *_published(rep.name), "",
            f"## Per-{rep.unit_kind} memory, params and FLOPs", "",
            f"![per-{rep.unit_kind} bars](../figures/{rep.name}_layers.png)", "",
            "## Per-stage roll-up", "", "A stage = the layers at one resolution (a pool closes the stage of its input).",
            "", *_stages_md(rep), "", "## Closed forms in H and W", "", *_forms_md(rep), "",
            "## Per-layer table (lecture style)", "",
            "Activations, dropout and identities fold into the row before them; the CSV/JSON keep every op call.", "",
            to_markdown(rep.df), ""]
    return "\n".join(head + body)


def forms_json(rep: ModelReport) -> str:
    if rep.symbolic_error:
        return json.dumps({"model": rep.name, "error": rep.symbolic_error}, indent=1)
    return json.dumps({
        "model": rep.name, "per": "image (N = 1)", "symbols": ["H", "W"],
        "exact": {q: str(e) for q, e in rep.forms.items()},
        "smooth": {q: str(cf.smooth(e)) for q, e in rep.forms.items()},
        "stages_smooth": [{"label": s["label"], "macs": str(s["macs"]), "act_bytes": str(s["act_bytes"])}
                          for s in rep.stage_forms],
    }, indent=1)


def stages_frame(rep: ModelReport) -> pd.DataFrame:
    return rep.stages.assign(**{c: rep.stages[c].map(int) for c in ("params", "macs", "flops", "act_bytes")})
