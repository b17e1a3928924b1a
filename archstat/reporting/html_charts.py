"""Small inline-SVG bar charts for the HTML comparison section (titled, axis labelled, with units)."""
from __future__ import annotations

import math
from typing import Optional, Sequence

from archstat.reporting.html_graph import esc

BAR_H, GAP, LEFT, PLOT_W, TOP = 14, 4, 150, 300, 34



def _nice_max(value: float) -> float:
    """A round axis end at or above ``value`` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= value * (1 - 1e-12))


def bar_chart(title: str, axis_label: str, labels: Sequence[str], values: Sequence[Optional[float]]) -> str:
    """Horizontal bars, one per label; ``None`` draws 'n/a'.  Returns the ``<svg>`` markup."""
    top = _nice_max(max((v for v in values if v is not None), default=0.0))
    height = TOP + len(labels) * (BAR_H + GAP) + 34
    width = LEFT + PLOT_W + 70
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img"><title>{esc(title)}</title>',
             f'<text class="ct" x="{LEFT}" y="16">{esc(title)}</text>']
    axis_y = TOP + len(labels) * (BAR_H + GAP)
    for k in range(5):  # grid and ticks at 0, 1/4, ..., top
        x = LEFT + PLOT_W * k / 4
        parts.append(f'<line class="g" x1="{x:.1f}" y1="{TOP - 4}" x2="{x:.1f}" y2="{axis_y}"/>'
                     f'<text class="tk" x="{x:.1f}" y="{axis_y + 12}">{top * k / 4:g}</text>')
    for j, (label, value) in enumerate(zip(labels, values)):
        y = TOP + j * (BAR_H + GAP)
        parts.append(f'<text class="lb" x="{LEFT - 6}" y="{y + BAR_H - 3}">{esc(label[:24])}</text>')
        if value is None:
            parts.append(f'<text class="v" x="{LEFT + 4}" y="{y + BAR_H - 3}">n/a</text>')
            continue
        w = PLOT_W * value / top
        parts.append(f'<rect class="bar" x="{LEFT}" y="{y}" width="{w:.1f}" height="{BAR_H}"/>'
                     f'<text class="v" x="{LEFT + w + 4:.1f}" y="{y + BAR_H - 3}">{value:,.3g}</text>')
    parts.append(f'<text class="al" x="{LEFT + PLOT_W / 2}" y="{axis_y + 28}">{esc(axis_label)}</text></svg>')
    return "".join(parts)


def comparison_charts(rows: Sequence[dict]) -> list[str]:
    """MACs, params and inference peak per model (from ``html_data.comparison_rows``)."""
    labels = [r["model"] for r in rows]
    mib = 1024 ** 2

    def col(key: str, scale: float) -> list[Optional[float]]:
        return [None if r[key] is None else r[key] / scale for r in rows]

    return [bar_chart("Multiply-accumulates per forward pass", "MACs (G)", labels, col("macs", 1e9)),
            bar_chart("Parameters", "parameters (M)", labels, col("params", 1e6)),
            bar_chart("Inference peak activation memory", "memory (MiB)", labels, col("peak_bytes", mib)),
            bar_chart("Training step memory (SGD + momentum)", "memory (MiB)", labels, col("train_bytes", mib))]
