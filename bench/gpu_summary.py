"""results.json (as a dict) -> summary.md with the issue's targets, and the short table printed last."""
from __future__ import annotations

import math
from typing import Any, Iterator, Optional

TARGETS = {"cv": 0.02, "layer_sum": 0.10, "roofline": 0.30, "torchvision": 0.03}


def _f(v: Any, scale: float = 1.0, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v * scale:,.{digits}f}"


def _pct(v: Any, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v * 100:+.1f}%" if signed else f"{v * 100:.1f}%"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return out + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]


def profiles(res: dict) -> Iterator[tuple[str, str, dict]]:
    """(model, step label, entry) of every successful profile step."""
    for model, m in res.get("models", {}).items():
        for label, e in m.get("steps", {}).items():
            if label.startswith("profile") and e.get("status") == "ok":
                yield model, label, e


def _fwd(e: dict) -> Optional[dict]:
    return next((r for r in e.get("runs", []) if r.get("phase") == "forward"), None)


def targets(res: dict) -> list[list[str]]:
    large = res.get("plan", {}).get("batches", [1, 64])[1]
    cv, lsum, roof = [], [], []
    for model, label, e in profiles(res):
        r = _fwd(e)
        if not r or r.get("batch") != large:
            continue
        cv.append((r.get("cv"), f"{model} {label}"))
        s = e.get("summary", {})
        if s.get("layer_sum_ratio") is not None:
            lsum.append((abs(s["layer_sum_ratio"] - 1), f"{model} {label}"))
        if (s.get("roofline") or {}).get("median_abs_error") is not None:
            roof.append((s["roofline"]["median_abs_error"], f"{model} {label}"))
    tv = [(abs(t["ratio"] - 1), f"{model} {t['precision']} b{t['batch']}")
          for model, m in res.get("models", {}).items() for t in (m["steps"].get("torchvision") or {}).get("timing", [])
          if t.get("ratio")]
    rows = []
    for key, what, vals in (("cv", f"whole-model CV at batch {large}", cv),
                            ("layer_sum", f"per-layer sum vs whole model at batch {large}", lsum),
                            ("roofline", "roofline median abs error, layers >= 20 us (per model)", roof),
                            ("torchvision", "latency vs torchvision, same settings", tv)):
        vals = [(v, k) for v, k in vals if v is not None and math.isfinite(v)]
        ok = sum(v < TARGETS[key] if key == "cv" else v <= TARGETS[key] for v, _ in vals)
        worst = max(vals) if vals else None
        rows.append([what, f"{'<' if key == 'cv' else '<='} {_pct(TARGETS[key])}",
                     f"{ok}/{len(vals)} meet it" if vals else "no data",
                     f"{_pct(worst[0])} ({worst[1]})" if worst else "-",
                     "PASS" if vals and ok == len(vals) else ("FAIL" if vals else "-")])
    for cfg, p in sorted((res.get("pooled_roofline") or {}).items()):
        v = p.get("median_abs_error")
        rows.append([f"roofline median abs error, all layers >= 20 us pooled, {cfg}", "<= 30.0%",
                     f"{p.get('layers')} layers; naive (matmul peak for convs) {_pct(p.get('naive_median_abs_error'))}",
                     _pct(v), "-" if v is None else ("PASS" if v <= 0.30 else "FAIL")])
    for step, what in (("validate", "live bytes"), ("validate train", "saved bytes, backward FLOPs")):
        val = [m["steps"][step] for m in res.get("models", {}).values() if step in m.get("steps", {})]
        counts = {s: sum(v.get("status") == s for v in val) for s in ("pass", "fail", "skipped", "error")}
        rows.append([f"{step} on the device (shapes, params, FLOPs, {what})", "all pass",
                     ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no data", "-",
                     "FAIL" if counts["fail"] or counts["error"] else "PASS" if counts["pass"] else "-"])
    return rows


def render_summary(res: dict) -> str:
    m = res.get("machine", {})
    lines = [f"# archstat GPU run: {m.get('device_name')}", "",
             f"Card {m.get('device_name')} (nvidia-smi: {m.get('nvidia_smi', '-')}), driver {m.get('driver', '-')}, "
             f"torch {m.get('torch')}, CUDA {m.get('cuda', '-')}, cuDNN {m.get('cudnn', '-')}, "
             f"torchvision {m.get('torchvision')}, Python {m.get('python')}, date {m.get('date')}.",
             f"Budget {res.get('budget_s')} s; elapsed {_f(res.get('elapsed_s'), 1, 1)} s; "
             f"{'finished' if res.get('finished') else 'NOT finished (partial results)'}.", "",
             "Precision: tf32 = TF32 on for cuDNN and matmul; bf16 = model and input cast to bfloat16 (TF32 flags "
             "off); every row below records the flags in results.json and runs.csv. Timing: CUDA events after "
             "warm-up, cudnn.benchmark on. FLOPs: hardware FLOPs (2 per MAC + elementwise work).", "",
             "## Targets", ""]
    lines += _table(["target", "threshold", "result", "worst", "verdict"], targets(res))
    lines += ["", "## Measured ceilings", ""] + _ceilings(res.get("ceilings"))
    lines += ["", "## Forward latency", ""]
    rows = []
    for model, label, e in profiles(res):
        s, roof = e.get("summary", {}), e.get("summary", {}).get("roofline") or {}
        lsum = _pct(s["layer_sum_ratio"] - 1, True) if s.get("layer_sum_ratio") else "-"
        for r in e.get("runs", []):
            rows.append([model, label.replace("profile ", ""), r.get("phase"), _f(r.get("median_s"), 1e3, 3),
                         _pct(r.get("cv")), _f(r.get("iqr_s"), 1e3, 3), _f(r.get("images_per_s"), 1, 0),
                         _f(r.get("peak_mem_bytes"), 2 ** -20, 0), _f(r.get("memory_estimate_bytes"), 2 ** -20, 0),
                         _f(r.get("achieved_flops_per_s"), 1e-12, 1),
                         _pct(r.get("peak_share")),
                         lsum if r.get("phase") == "forward" else "-",
                         _pct(roof.get("median_abs_error")) if r.get("phase") == "forward" else "-",
                         _pct(roof.get("naive_median_abs_error")) if r.get("phase") == "forward" else "-",
                         _f(roof.get("spearman"), 1, 3) if r.get("phase") == "forward" else "-"])
    lines += _table(["model", "config", "phase", "median ms", "CV", "IQR ms", "img/s", "peak MiB", "est. MiB", "TFLOP/s",
                     "% peak", "layer sum", "roofline err", "naive err", "Spearman"], rows)
    lines += ["", "## torchvision (random-init state_dict loaded strictly; fp32-strict outputs; latency "
              "alternated ours/torchvision, same run)", ""]
    rows = []
    for model, m_ in res.get("models", {}).items():
        t = m_.get("steps", {}).get("torchvision")
        if not t or t.get("status") != "ok":
            continue
        for r in t.get("timing", []):
            rows.append([model, t.get("torchvision_name"), str(t.get("state_dict_strict")),
                         f"{t.get('max_abs_diff', math.nan):.2e}", str(t.get("bitwise_equal")),
                         f"{r['precision']}{' cl' if r['channels_last'] else ''} b{r['batch']}",
                         _f(r.get("ours_median_s"), 1e3, 3), _f(r.get("torchvision_median_s"), 1e3, 3),
                         _pct(r["ratio"] - 1, True) if r.get("ratio") else r.get("error", "-")])
    lines += _table(["model", "torchvision", "strict load", "max abs diff", "bitwise", "config", "ours ms",
                     "torchvision ms", "ours vs tv"], rows)
    lines += ["", "## Training step (forward, cross-entropy, backward, SGD momentum; peak allocator memory)", ""]
    rows = []
    for model, m_ in res.get("models", {}).items():
        for label, e in m_.get("steps", {}).items():
            tr = next((r for r in e.get("runs", []) if r.get("phase") == "train"), None)
            if label.startswith("train") and tr:
                rows.append([model, label, _f(tr.get("median_s"), 1e3, 3), _pct(tr.get("cv")),
                             _f(tr.get("images_per_s"), 1, 0), _f(tr.get("peak_mem_bytes"), 2 ** -20, 0),
                             _f(tr.get("memory_estimate_bytes"), 2 ** -20, 0),
                             _pct(tr.get("memory_error"), True), str(tr.get("memory_estimate_note", "-"))[:80]])
    lines += _table(["model", "step", "median ms", "CV", "img/s", "peak MiB", "estimate MiB", "peak vs estimate",
                     "estimate source"], rows)
    lines += ["", "## Other steps (validate, skipped, errors)", ""]
    rows = []
    for model, m_ in res.get("models", {}).items():
        for label, e in m_.get("steps", {}).items():
            if e.get("status") == "ok" and label.split(" ")[0] in ("profile", "torchvision", "train"):
                continue
            rows.append([model, label, e.get("status", "-"), _other(e)])
    lines += _table(["model", "step", "status", "detail"], rows)
    return "\n".join(lines) + "\n"


def _other(e: dict) -> str:
    if e.get("reason") or e.get("error"):
        return str(e.get("reason") or e.get("error")).replace("|", "/")[:200]
    if "exit_code" in e:
        report = e.get("report") if isinstance(e.get("report"), dict) else {}
        first = (report.get("mismatches") or [""])[0]  # a failing validate: its first disagreement
        detail = first or e.get("stderr", "").strip()
        return f"exit {e['exit_code']}" + (f"; {detail.replace('|', '/')[:150]}" if detail else "")
    return ""


def _ceilings(c: Optional[dict]) -> list[str]:
    if not c:
        return ["not measured"]
    mm = c.get("matmul", {})
    lines = ["Matmul (8192^3 on CUDA): " + ", ".join(f"{k} {_f(v, 1e-12, 1)} TFLOP/s" for k, v in mm.items())
             + f"; device-to-device copy {_f(c.get('copy_bw'), 1e-12, 2)} TB/s (read + write).", ""]
    st = c.get("state") or {}
    return lines + [f"Measured {st.get('date')} (torch {st.get('torch')}, best of {len(c.get('trials', {}).get('copy', []))}"
                    " trials); the per-family time model and its accuracy: roofline_accuracy.md.", ""]


def short_table(res: dict) -> str:
    out = [f"{'model':16s} {'config':18s} {'ms':>9s} {'cv':>6s} {'lsum':>7s} {'roof':>6s} {'tv':>7s}"]
    for model, label, e in profiles(res):
        r, s = _fwd(e), e.get("summary", {})
        cfg = label.replace("profile ", "")
        tv = next((t for t in (res["models"][model]["steps"].get("torchvision") or {}).get("timing", [])
                   if t.get("ratio") and f"b{t['batch']}" in cfg and t["precision"] in cfg), None)
        out.append(f"{model:16s} {cfg:18s} {_f(r and r.get('median_s'), 1e3, 3):>9s} {_pct(r and r.get('cv')):>6s} "
                   f"{_pct(s['layer_sum_ratio'] - 1, True) if s.get('layer_sum_ratio') else '-':>7s} "
                   f"{_pct((s.get('roofline') or {}).get('median_abs_error')):>6s} "
                   f"{_pct(tv['ratio'] - 1, True) if tv else '-':>7s}")
    return "\n".join(out + [""] + [" | ".join(r) for r in targets(res)])
