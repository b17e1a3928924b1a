"""A :class:`~archstat.profiling.profile.Profile` -> text, JSON or CSV (units only here, at the edge)."""
from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from archstat.engine.analyze import grouped_unsupported

LAYER_FIELDS = ["name", "op", "call", "kind", "supported", "in_shapes", "out_shape", "params", "macs", "flops", "flops_hardware",
                "bytes_moved", "time_s", "time_min_s", "time_iqr_s", "time_share", "achieved_flops_per_s",
                "intensity", "ceiling", "ceiling_flops_per_s", "t_compute_s", "t_memory_s", "t_weights_s", "t_fresh_s",
                "t_after_s", "predicted_s", "bound",
                "roof", "achieved_fraction", "error", "naive_predicted_s", "naive_error", "family", "floor_s",
                "rate_flops_per_s", "bandwidth_bytes_per_s"]


def json_safe(value: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python, containers recursively."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


UNKNOWN_COUNTS = ("macs", "flops", "flops_hardware", "achieved_flops_per_s", "intensity")  # an op without a formula


def layer_records(layers: pd.DataFrame) -> list[dict]:
    """One JSON-safe dict per layer; an op without a formula has its FLOP fields null (unknown), not 0."""
    cols = [c for c in LAYER_FIELDS if c in layers.columns]
    out = [json_safe(r) for r in layers[cols].to_dict("records")]
    for r in out:
        if r.get("supported") is False:
            r.update({k: None for k in UNKNOWN_COUNTS if k in r})
    return out


def to_json(p: Any) -> str:
    return json.dumps({"context": json_safe(p.context), "runs": [json_safe(r) for r in p.runs.to_dict("records")],
                       "summary": json_safe(p.summary), "layers": layer_records(p.layers)}, indent=1)


def to_csv(p: Any) -> str:
    return pd.DataFrame(layer_records(p.layers)).to_csv(index=False)


def _num(v: Any, scale: float = 1.0, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v * scale:,.{digits}f}"


def _pct(v: Any) -> str:
    return _num(v, 100, 1)


def ceilings_line(ceil: dict) -> str:
    mm = ", ".join(f"{k} {_num(v, 1e-12, 1 if v > 1e12 else 3)}" for k, v in ceil.get("matmul_flops_per_s", {}).items())
    return (f"ceilings (measured on {ceil.get('device_name')}): matmul {mm} TFLOP/s; "
            f"copy {_num(ceil.get('copy_bytes_per_s'), 1e-9, 1)} GB/s (read + write)")


def calibration_lines(tm: dict) -> list[str]:
    """The time model's calibration in one line: when it was measured, on what CPU caches (where its state
    recorded them: the grid's flushes and the private-cache rule depend on them, ``cpu_caches``) and, where
    ``profile`` re-read it at the machine's pace (``TimeModel.reread``), by what factor (none without a
    time model)."""
    if not tm:
        return []
    measured = tm.get("measured") or {}
    l2, l3 = measured.get("private_cache_bytes"), measured.get("last_level_cache_bytes")
    caches = f" (CPU caches: L2 {l2 / 2 ** 20:g} MiB private, L3 {l3 / 2 ** 20:g} MiB)" if l2 and l3 else ""
    applied = tm.get("applied_pace") or {}
    pace = (f"; re-read at the machine's pace while the layers ran: every calibration time x"
            f"{applied['median_scale']:.2f} (median over the benchmarks)" if applied else "")
    return [f"time model: calibrated {measured.get('date', 'at an unrecorded date')} on synthetic "
            f"micro-benchmarks{caches}{pace}"]


def to_text(p: Any, top: int = 0) -> str:
    c, lines = p.context, []
    lines.append(f"{c.get('model')} on {c.get('device_name')} | torch {c.get('torch')}"
                 + (f" | CUDA {c['cuda']} cuDNN {c['cudnn']}" if c.get("cuda") else "") + f" | {c.get('date')}")
    lines.append(f"precision {c['precision']} ({c['dtype']}; cudnn.allow_tf32={c['cudnn_allow_tf32']}, "
                 f"matmul.allow_tf32={c['matmul_allow_tf32']}, cudnn.benchmark={c['cudnn_benchmark']}), "
                 f"{'channels-last' if c['channels_last'] else 'contiguous'}, batch {c['batch']}, "
                 + (f"inputs {c['inputs']}" if c.get("inputs") else f"input {'x'.join(map(str, c['input']))}"))
    lines.append(f"timing: {c['timing']}; warmup {c['warmup']}, repeat {c['repeat']}")
    lines.append("")
    head = ["phase", "median ms", "min ms", "max ms", "IQR ms", "CV %", "images/s", "peak MiB", "est. MiB", "TFLOP/s",
            "% peak"]
    rows = [[r["phase"], _num(r["median_s"], 1e3, 3), _num(r["min_s"], 1e3, 3), _num(r["max_s"], 1e3, 3),
             _num(r["iqr_s"], 1e3, 3), _pct(r["cv"]), _num(r["images_per_s"], 1, 1),
             _num(r["peak_mem_bytes"], 1 / 2 ** 20, 1), _num(r.get("memory_estimate_bytes"), 1 / 2 ** 20, 1),
             _num(r["achieved_flops_per_s"], 1e-12, 3), _pct(r["peak_share"])]
            for r in p.runs.to_dict("records")]
    lines += _grid(head, rows)
    lines.append("est. MiB: weights + live activations (forward: inference peak, archstat.analyses.live_memory; train: "
                 "archstat.analyses.memory); peak MiB: the CUDA allocator's; on CPU (forward), weights + input + live "
                 "activations tracked at the dispatch level")
    if c.get("unsupported"):
        lines.append("UNSUPPORTED ops (no formula; their FLOPs are unknown, so FLOPs, TFLOP/s and % peak count only "
                     "the other ops and are lower bounds): " + grouped_unsupported(c["unsupported"]))
    if (p.runs["peak_share"] > 1).any():
        lines.append("% peak over 100: the FLOPs are counted as 2 per MAC, but convolution algorithms such as "
                     "Winograd and FFT do fewer multiplications than that, so they can outrun the matmul peak")
    if "time_s" in p.layers.columns:
        lines += ["", "per op call (median of the per-layer passes; FLOPs are hardware FLOPs: 2 per MAC + elementwise)"]
        lines += _layer_table(p.layers, top)
        s = p.summary
        lines.append(f"sum of per-layer times {_num(s['layer_sum_s'], 1e3, 3)} ms vs whole model "
                     f"{_num(s['whole_model_s'], 1e3, 3)} ms, timed between the instrumented passes "
                     f"({_num((s['layer_sum_ratio'] - 1) * 100, 1, 1)}%: what per-node dispatch adds)")
    if "roofline" in p.summary:
        r = p.summary["roofline"]
        lines.append(f"predicted times: {r['layers']} layers >= {r['min_time_s'] * 1e6:g} us, median |error| "
                     f"{_pct(r['median_abs_error'])}% (naive roofline, matmul peak and copy bandwidth: "
                     f"{_pct(r.get('naive_median_abs_error'))}%), Spearman {_num(r['spearman'], 1, 3)} "
                     f"({r['compute_bound']} compute-, {r['memory_bound']} memory-, {r.get('overhead_bound', 0)} "
                     f"overhead-, {r.get('previous_op_bound', 0)} cold-cache-, {r.get('allocation_bound', 0)} "
                     f"allocation-, {r.get('weights_bound', 0)} cold-weights-bound); predicted layer sum "
                     f"{_num(r.get('predicted_sum_s'), 1e3, 3)} ms"
                     + (f" ({r['without_formula']} op(s) without a formula have no prediction and are left out)"
                        if r.get("without_formula") else ""))
    check = c.get("ceiling_check") or {}
    if check.get("message"):
        lines.append(f"ceiling check: {check['message']}"
                     + ("; measured again" if check.get("remeasured") else "") + ("" if check.get("exceeded") else " (now below)"))
    if "ceilings" in c:
        lines.append(ceilings_line(c["ceilings"]))
        lines += calibration_lines((c["ceilings"] or {}).get("time_model") or {})
    tm = p.summary.get("train_memory")
    if tm:
        est = tm.get("estimate_bytes")
        lines.append(f"training memory: measured peak {_num(tm.get('measured_peak_bytes'), 1 / 2 ** 20, 1)} MiB; "
                     + (f"estimate {_num(est, 1 / 2 ** 20, 1)} MiB" if est else f"no estimate ({tm.get('note')})"))
    return "\n".join(lines)


def _layer_table(layers: pd.DataFrame, top: int) -> list[str]:
    df = layers.sort_values("time_s", ascending=False).head(top) if top else layers
    roof = "predicted_s" in df.columns
    head = ["name", "op", "call", "time us", "share %", "GFLOP", "MB moved", "FLOP/B"]
    head += ["pred us", "bound", "at roof %", "roof"] if roof else []
    rows = []
    for r in df.to_dict("records"):
        known = r.get("supported", True) is not False  # an op without a formula: its FLOPs are unknown ("?")
        row = [r["name"] or "<root>", r["op"], str(r["call"]), _num(r["time_s"], 1e6, 1), _pct(r["time_share"]),
               _num(r["flops_hardware"], 1e-9, 3) if known else "?", _num(r["bytes_moved"], 1e-6, 2),
               _num(r["flops_hardware"] / r["bytes_moved"] if r["bytes_moved"] else math.nan, 1, 1) if known else "?"]
        if roof:
            row += [_num(r["predicted_s"], 1e6, 1), r["bound"], _pct(r["achieved_fraction"]), r["roof"]]
        rows.append(row)
    return _grid(head, rows, left=3)


def _grid(head: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """Aligned columns: the first ``left`` (and the last, a label) left-justified, numbers right."""
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    last = len(head) - 1
    fmt = lambda cells: "  ".join(str(x).ljust(w) if i < left or i == last and left > 1 else str(x).rjust(w)  # noqa: E731
                                  for i, (x, w) in enumerate(zip(cells, widths))).rstrip()
    return [fmt(head)] + [fmt(r) for r in rows]
