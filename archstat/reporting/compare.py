"""Side by side: one row per model, raw numbers (units are added by ``compare_format``).

Columns: ``model, input, params, macs, flops`` (chosen convention, batch 1), ``act_bytes``
(inference outputs, batch 1, the lecture's memory), ``peak_bytes`` (inference peak of live activations,
batch 1, ``archstat.analyses.live_memory``), ``train_bytes_1`` / ``train_bytes_n``
(training memory at batch 1 and ``batch``, from ``archstat.analyses.memory``, SGD), ``depth``
(weight layers on the longest input-to-output path: the lecture's "22 layers" for GoogLeNet),
``weight_layers`` (all conv/linear calls), ``rf`` (receptive field of the last conv), the published
``top1_err`` / ``top5_err`` / ``ilsvrc_top5_err`` with their sources, and the measured GPU
``latency_ms`` where ``reports/gpu/`` holds results.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import pandas as pd
from torch import nn

from archstat.engine.analyze import analyze_rows, reinterpret
from archstat.engine.rows import Rows
from archstat.analyses.depth import weight_depth, weight_layers
from archstat.errors import ArchstatError
from archstat.analyses.live_memory import inference_peak
from archstat.analyses.memory import training_memory
from archstat.analyses.receptive_field import receptive_field
from archstat.reporting.gpu_results import gpu_latencies

ERROR_KEYS = ("top1_err", "top5_err", "ilsvrc_top5_err")
COLUMNS = ["model", "input", "params", "macs", "flops", "convention", "act_bytes", "peak_bytes", "train_bytes_1",
           "train_bytes_n", "batch", "depth", "weight_layers", "rf", "top1_err", "top5_err", "ilsvrc_top5_err",
           "top1_err_source", "top5_err_source", "ilsvrc_top5_err_source", "latency_ms", "latency_setting", "notes"]
SORTABLE = ("model", "params", "macs", "flops", "act_bytes", "peak_bytes", "train_bytes_1", "train_bytes_n", "depth",
            "weight_layers", "top1_err", "top5_err", "ilsvrc_top5_err", "latency_ms")


def _published(name: str) -> dict:
    from archstat.models import model_info

    try:
        pub = model_info(name).published
    except ArchstatError:
        return {}
    out: dict = {}
    for key in ERROR_KEYS:
        p = pub.get(key)
        out[key] = p.value if p is not None else None
        out[f"{key}_source"] = p.source if p is not None and p.value is not None else ""
    return out


def _training_bytes(model: nn.Module, given: dict, batches: Sequence[int]) -> list[tuple[Optional[int], str]]:
    """Per batch: device bytes a training step holds (``archstat.analyses.memory``, SGD with
    momentum), and a note.  One trace of the training graph, costed again for each batch.

    A model the estimator cannot analyse gives ``(None, reason)``: the table says why the cell is
    empty instead of showing a zero.
    """
    try:
        rows = analyze_rows(model, batch=batches[0], mode="train", **given)
        return [_step_bytes(rows if b == batches[0] else reinterpret(rows, batch=b)) for b in batches]
    except ArchstatError as exc:
        return [(None, f"n/a ({exc})")] * len(batches)


def _step_bytes(rows: Rows) -> tuple[Optional[int], str]:
    df = training_memory(rows)
    note = "partial (ops with unknown saved tensors)" if df.attrs["memory_partial"] else ""
    return int(df.attrs["total"]["total"]), note


def _last_conv_receptive_field(rows: Rows) -> tuple[Optional[tuple[int, int]], str]:
    """(height, width) of the receptive field of the last conv call, and a note when there is none."""
    try:
        table = receptive_field(rows)
    except ArchstatError as exc:
        return None, f"n/a ({exc})"
    convs = table[table["kind"] == "conv"]
    if convs.empty:
        return None, "n/a (no conv)"
    last = convs.iloc[-1]
    return (int(last["rf_h"]), int(last["rf_w"])), ""


def model_row(name: str, model: nn.Module, input_shape: Optional[Sequence[int]] = None, *, batch: int = 1,
              convention: str = "lecture", latency: Optional[dict] = None,
              rows: Optional[Rows] = None, inputs: Optional[Sequence[Any]] = None,
              kwargs: Optional[dict] = None) -> dict:
    """One comparison row for ``model`` on ``input_shape`` (or several ``inputs`` / ``kwargs``, as
    :func:`archstat.engine.analyze.analyze_rows` takes them; ``rows``: its batch-1 eval product to reuse)."""
    rows = rows if rows is not None else analyze_rows(model, input_shape, convention=convention, inputs=inputs,
                                                      kwargs=kwargs)
    df = rows.df
    total = df.attrs["total"]
    notes = []
    steps = _training_bytes(model, rows.given, [1] if batch == 1 else [1, batch])
    (train_1, why_1), (train_n, why_n) = steps[0], steps[-1]
    rf, why_rf = _last_conv_receptive_field(rows)
    for what, why in (("training memory", why_1 or why_n), ("receptive field", why_rf)):
        if why:
            notes.append(f"{what}: {why}")
    if df.attrs.get("partial"):
        notes.append("partial: unsupported " + ", ".join(df.attrs["unsupported"]))
    row = {
        "model": name, "input": rows.inputs.text(), "params": int(total["params"]),
        "macs": int(total["macs"]), "flops": int(total["flops"]), "convention": convention,
        "act_bytes": int(total["act_bytes"]), "peak_bytes": (inference_peak(df) or {}).get("peak_bytes"),
        "train_bytes_1": train_1, "train_bytes_n": train_n, "batch": batch,
        "depth": weight_depth(df), "weight_layers": weight_layers(df),
        "rf": f"{rf[0]}x{rf[1]}" if rf else None,
        **{k: None for k in COLUMNS if k.endswith("_err") or k.endswith("_source")},
        **_published(name),
        "latency_ms": latency["latency_ms"] if latency else None,
        "latency_setting": (f"{latency['card']} {latency['precision']} batch {latency['batch']}".strip()
                            if latency else ""),
        "notes": "; ".join(notes),
    }
    return row


def compare(names: Sequence[str], input_shape: Optional[Sequence[int]] = None, *, batch: int = 1,
            convention: str = "lecture", sort: Optional[str] = None, descending: bool = False,
            gpu_dir: Path = Path("reports/gpu"), on_model: Optional[Callable[[], object]] = None,
            inputs: Optional[Sequence[Any]] = None, kwargs: Optional[dict] = None) -> pd.DataFrame:
    """One row per model (zoo names or ``package.module:callable``), in the given order or sorted;
    ``on_model()`` is called after each (the CLI's progress bar).  Every model gets ``input_shape``
    (or its default input), or the several ``inputs`` / ``kwargs`` when given."""
    from archstat.models import resolve_model

    if sort is not None and sort not in SORTABLE:
        raise ArchstatError(f"cannot sort by {sort!r}: choose one of {', '.join(SORTABLE)}")
    latencies = gpu_latencies(Path(gpu_dir))
    rows = []
    for name in names:
        model, default_input = resolve_model(name)
        several = {"inputs": inputs, "kwargs": kwargs} if inputs or kwargs else \
            {"input_shape": tuple(input_shape or default_input)}
        rows.append(model_row(name, model, batch=batch, convention=convention, latency=latencies.get(name),
                              **several))
        if on_model is not None:
            on_model()
    table = pd.DataFrame(rows, columns=COLUMNS)
    if sort is not None:
        # stable sort, missing values last whatever the direction
        table = table.sort_values(sort, ascending=not descending, na_position="last", kind="stable")
        table = table.reset_index(drop=True)
    table.attrs = {"convention": convention, "batch": batch}
    return table
