"""Matplotlib figures for `compare` and `report`: last in the pipeline, data in, PNG out.

Every figure has a title, axis units and, where needed, a legend.  Files are deterministic on one
machine and matplotlib version: Agg backend, fixed size and dpi, and no Software / date metadata in
the PNG, so regenerating gives byte-identical files.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # no display; also what makes the output independent of the environment
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from archstat.files import write_figure  # noqa: E402

DPI = 110
MB = 1024 ** 2
COLORS = {"memory": "#4C72B0", "params": "#DD8452", "flops": "#55A868", "depth": "#8172B3"}
FAMILY_COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C",
                 "#CCB974", "#64B5CD"]


def save(fig, path: Path) -> Path:
    """Write a PNG without timestamps or version strings (byte-identical on rerun)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_figure(fig, path, dpi=DPI, metadata={"Software": None})  # atomic: never half a figure


def _hbars(ax, labels: Sequence[str], values: Sequence[float], color: str, fmt: str) -> None:
    # bar i at y = -i: the first model on top, as in the table (no invert_yaxis, which shared
    # axes would apply once per panel)
    y = [-i for i in range(len(labels))]
    ax.barh(y, values, color=color)
    ax.set_yticks(y, labels)
    top = max(values, default=0) or 1
    for yi, v in zip(y, values):
        ax.text(v + top * 0.01, yi, format(v, fmt), va="center", fontsize=8)
    ax.set_xlim(0, top * 1.22)
    ax.grid(axis="x", alpha=0.3)


def compare_bars(table: pd.DataFrame, path: Path) -> Path:
    """Four panels, one bar per model: params (M), GFLOPs, activation memory (MB), depth."""
    labels = list(table["model"])
    conv = table.attrs.get("convention", "lecture")
    panels = [("params", "parameters", "millions", table["params"] / 1e6, ".1f"),
              ("flops", f"FLOPs ({conv} convention)", "GFLOPs per image", table["flops"] / 1e9, ".2f"),
              ("memory", "activation memory", "MB per image", table["act_bytes"] / MB, ".1f"),
              ("depth", "depth", "weight layers on the longest path", table["depth"], "d")]
    fig, axes = plt.subplots(1, 4, figsize=(15, 1.2 + 0.38 * len(labels)), sharey=True, layout="constrained")
    for ax, (key, title, unit, values, fmt) in zip(axes, panels):
        _hbars(ax, labels, [float(v) if fmt != "d" else int(v) for v in values], COLORS[key], fmt)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(unit, fontsize=9)
    fig.suptitle("Model comparison (per image, batch 1)")
    return save(fig, path)


def layer_bars(units: pd.DataFrame, title: str, path: Path, unit_label: str = "layer") -> Path:
    """The lecture's AlexNet figure for any model: memory (KB), params (k) and MFLOP per layer.

    ``units`` has columns ``label, act_bytes, params, flops``.  Shows where the memory sits (early
    convs), where the params sit (FC layers) and where the FLOPs sit (convs).
    """
    n = len(units)
    width = max(8.0, min(22.0, 0.32 * n + 3))
    fig, axes = plt.subplots(3, 1, figsize=(width, 8.5), sharex=True, layout="constrained")
    x = list(range(n))
    panels = [("memory", "memory (KB)", units["act_bytes"] / 1024, "memory: {:,.0f} KB of outputs in total"),
              ("params", "params (thousands)", units["params"] / 1e3, "params: {:,.0f} thousand in total"),
              ("flops", "MFLOP", units["flops"] / 1e6,
               "FLOPs: {:,.0f} M in total (lecture convention: multiply-adds + pooling windows)")]
    for ax, (key, label, values, head) in zip(axes, panels):
        values = [float(v) for v in values]
        ax.bar(x, values, color=COLORS[key])
        ax.set_ylabel(label, fontsize=9)
        ax.set_title(head.format(sum(values)), fontsize=10, loc="left")
        ax.grid(axis="y", alpha=0.3)
        if n <= 16:  # few bars: print each value on its bar, as the slide does
            for xi, v in zip(x, values):
                ax.text(xi, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=7)
            ax.set_ylim(0, max(values, default=1) * 1.15 or 1)
    # rotation_mode="anchor": a rotated label ends at its own tick instead of drifting left by a bar
    axes[-1].set_xticks(x, list(units["label"]), rotation=60 if n > 8 else 0, ha="right" if n > 8 else "center",
                        rotation_mode="anchor", fontsize=8 if n <= 30 else 6)
    axes[-1].set_xlabel(unit_label)
    fig.suptitle(title)
    return save(fig, path)


def bubble_chart(points: pd.DataFrame, path: Path) -> Path:
    """Canziani-style: top-1 accuracy (%) against GFLOPs, bubble area proportional to params.

    ``points``: ``label, gflops, top1_acc, params, family``.  Labels sit beside each bubble with
    a small alternating offset so that neighbours (VGG-16 / VGG-19) do not overlap.
    """
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(11, 7), layout="constrained")
    families = list(dict.fromkeys(points["family"]))
    scale = 1200 / 150e6  # points^2 per parameter: a 150M-param model gets a 1200 pt^2 bubble
    handles = []
    for i, fam in enumerate(families):
        sub = points[points["family"] == fam]
        color = FAMILY_COLORS[i % len(FAMILY_COLORS)]
        ax.scatter(sub["gflops"], sub["top1_acc"], s=sub["params"] * scale, alpha=0.55, color=color,
                   edgecolors="black", linewidths=0.5)
        handles.append(Line2D([], [], marker="o", ls="", color=color, alpha=0.7, markersize=8, label=fam))
    ax.set_xlabel("GMACs per image (multiply-adds: the lecture's GFLOP)")
    ax.set_ylabel("ImageNet top-1 accuracy (%)")
    ax.set_title("Accuracy vs. operations (bubble area ~ parameters), after Canziani et al. 2016")
    ax.grid(alpha=0.3)
    ax.set_xlim(0, max(points["gflops"]) * 1.2)
    lo, hi = min(points["top1_acc"]), max(points["top1_acc"])
    ax.set_ylim(math.floor(lo - 3), math.ceil(hi + 2))
    _place_labels(fig, ax, points, scale)
    sizes = [ax.scatter([], [], s=p * scale, color="white", edgecolors="black", label=f"{p / 1e6:.0f} M params")
             for p in (5e6, 50e6, 150e6)]
    first = ax.legend(handles=handles, title="family", loc="lower right", fontsize=8, framealpha=0.9)
    ax.add_artist(first)
    ax.legend(handles=sizes, loc="lower center", fontsize=8, labelspacing=2.2, borderpad=1.3, handletextpad=2.0,
              framealpha=0.9, title="bubble area")
    return save(fig, path)


def _place_labels(fig, ax, points: pd.DataFrame, scale: float) -> None:
    """Put each label at the first of 16 offsets that overlaps no placed label and no bubble (else the least bad)."""
    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()
    to_px = ax.transData.transform
    bubbles = [(*to_px((r["gflops"], r["top1_acc"])), math.sqrt(r["params"] * scale) / 2 * fig.dpi / 72)
               for r in points.to_dict("records")]
    placed = []
    base = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1)]
    offsets = base + [(2.5 * dx, 2.5 * dy) for dx, dy in base]  # further out where it is crowded
    for r, (bx, by, rad) in zip(points.to_dict("records"), bubbles):
        pad = rad / fig.dpi * 72 + 3  # points
        best = None
        for dx, dy in offsets:
            kw = {"xytext": (dx * pad, dy * pad), "ha": "left" if dx > 0 else "right" if dx < 0 else "center"}
            text = ax.annotate(r["label"], (r["gflops"], r["top1_acc"]), textcoords="offset points", fontsize=8,
                               va="center", **kw)
            box = text.get_window_extent(renderer).expanded(1.05, 1.15)
            text.remove()
            inside = ax.bbox.x0 <= box.x0 and box.x1 <= ax.bbox.x1 and ax.bbox.y0 <= box.y0 and box.y1 <= ax.bbox.y1
            # a label on a label is unreadable; a label touching a bubble is only untidy
            cost = (0 if inside else 100) + 10 * sum(box.overlaps(b) for b in placed) + sum(
                _circle_hits(box, cx, cy, cr) for cx, cy, cr in bubbles if (cx, cy, cr) != (bx, by, rad))
            if best is None or cost < best[0]:
                best = (cost, kw, box)
            if cost == 0:
                break
        ax.annotate(r["label"], (r["gflops"], r["top1_acc"]), textcoords="offset points", fontsize=8, va="center",
                    **best[1])
        placed.append(best[2])


def _circle_hits(box, cx: float, cy: float, r: float) -> bool:
    nx, ny = min(max(cx, box.x0), box.x1), min(max(cy, box.y0), box.y1)
    return (nx - cx) ** 2 + (ny - cy) ** 2 < (r + 3) ** 2


def ilsvrc_chart(rows: pd.DataFrame, path: Path) -> Path:
    """ILSVRC winners by year: top-5 error as bars, depth (layers) as a line, as on the slide.

    ``rows``: ``label, year, top5_err, depth`` (depth may be missing for the shallow entries).
    """
    fig, ax = plt.subplots(figsize=(10, 5.5), layout="constrained")
    x = list(range(len(rows)))
    bars = ax.bar(x, rows["top5_err"], color="#4C72B0", label="top-5 error (%)")
    for b, v in zip(bars, rows["top5_err"]):
        ax.text(b.get_x() + b.get_width() / 2, v + 0.4, f"{v:g}", ha="center", fontsize=9)
    ax.set_xticks(x, [f"{y}\n{lab}" for y, lab in zip(rows["year"], rows["label"])], fontsize=8)
    ax.set_ylabel("ImageNet top-5 error (%)")
    ax.set_ylim(0, max(rows["top5_err"]) * 1.2)
    ax2 = ax.twinx()
    depth = [(xi, d) for xi, d in zip(x, rows["depth"]) if d == d and d is not None]
    ax2.plot([d[0] for d in depth], [d[1] for d in depth], "o-", color="#C44E52", label="depth (layers)")
    for xi, d in depth:
        ax2.annotate(f"{int(d)} layers", (xi, d), xytext=(0, 9), textcoords="offset points", ha="center",
                     fontsize=8, color="#C44E52", bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none"})
    ax2.set_ylabel("depth (weight layers on the longest path)")
    ax2.set_ylim(0, max(d[1] for d in depth) * 1.3 if depth else 1)
    handles = [bars, *ax2.get_lines()]
    ax.legend(handles, [h.get_label() for h in handles], loc="upper center", fontsize=9)
    ax.set_title("ImageNet (ILSVRC) winners: error falls as depth grows")
    return save(fig, path)


def resolution_chart(curves: dict[str, pd.DataFrame], path: Path) -> Path:
    """GMACs and activation memory (MB) against input side length, one line per model.

    ``curves[model]``: ``side, macs, act_bytes`` evaluated from the model's closed forms.
    """
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 5.5), layout="constrained")
    for i, (name, c) in enumerate(curves.items()):
        color = FAMILY_COLORS[i % len(FAMILY_COLORS)]
        style = "-" if i < len(FAMILY_COLORS) else "--"
        a1.plot(c["side"], c["macs"] / 1e9, style, color=color, label=name)
        a2.plot(c["side"], c["act_bytes"] / MB, style, color=color, label=name)
    a1.set_title("Multiply-adds grow with H x W")
    a1.set_ylabel("GMACs per image")
    a2.set_title("Activation memory grows with H x W")
    a2.set_ylabel("activation memory per image (MB)")
    for ax in (a1, a2):
        ax.set_xlabel("input side H = W (pixels)")
        ax.grid(alpha=0.3)
    a2.legend(fontsize=8, loc="upper left", ncol=2)
    fig.suptitle("Cost against input resolution, from the closed forms in H and W")
    return save(fig, path)


def latency_chart(points: pd.DataFrame, path: Path) -> Path:
    """Measured GPU forward latency (ms) against GMACs, one labelled point per model."""
    fig, ax = plt.subplots(figsize=(9, 6), layout="constrained")
    ax.scatter(points["gmacs"], points["latency_ms"], color="#4C72B0")
    for r in points.to_dict("records"):
        ax.annotate(r["model"], (r["gmacs"], r["latency_ms"]), xytext=(5, 4), textcoords="offset points", fontsize=8)
    ax.set_xlabel("GMACs per image")
    ax.set_ylabel("forward latency (ms)")
    settings = sorted(set(points["setting"]))
    ax.set_title("Measured GPU latency vs. multiply-adds" + (f" ({settings[0]})" if len(settings) == 1 else ""))
    ax.grid(alpha=0.3)
    return save(fig, path)


def roofline_chart(layers: pd.DataFrame, ceilings: dict, path: Path) -> Path:
    """Each measured layer at (arithmetic intensity, achieved FLOP/s) under the card's measured roofs.

    ``layers``: ``model, intensity`` (hardware FLOPs per byte moved), ``achieved_flops_per_s``;
    ``ceilings``: ``matmul`` {dtype: FLOP/s} and ``copy_bw`` (bytes/s), measured on the card.
    """
    import numpy as np

    fig, ax = plt.subplots(figsize=(10, 6.5), layout="constrained")
    for i, (name, sub) in enumerate(layers.groupby("model", sort=True)):
        ax.scatter(sub["intensity"], sub["achieved_flops_per_s"] / 1e12, s=14, alpha=0.7,
                   color=FAMILY_COLORS[i % len(FAMILY_COLORS)], label=name)
    lo, hi = max(layers["intensity"].min() / 2, 1e-2), layers["intensity"].max() * 2
    xs = np.logspace(np.log10(lo), np.log10(hi), 200)
    bw = float(ceilings.get("copy_bw") or 0)
    for j, (dtype, peak) in enumerate(sorted((ceilings.get("matmul") or {}).items())):
        ys = np.minimum(float(peak), bw * xs) if bw else np.full_like(xs, float(peak))
        ax.plot(xs, ys / 1e12, "--", color="black", alpha=0.4 + 0.2 * (j % 3), lw=1)
        ax.annotate(f"matmul {dtype}: {float(peak) / 1e12:.0f} TFLOP/s", (xs[-1], float(peak) / 1e12),
                    ha="right", va="bottom", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (hardware FLOPs per byte moved)")
    ax.set_ylabel("achieved TFLOP/s")
    ax.set_title(f"Roofline with each layer placed (measured ceilings; copy bandwidth {bw / 1e12:.2f} TB/s)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right", title="model")
    return save(fig, path)
