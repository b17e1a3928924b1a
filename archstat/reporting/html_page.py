"""One self-contained HTML page: graph (inline SVG), per-layer table, totals, comparison.

Nothing is fetched: the CSS and script are inlined from ``html_assets/``, the data rides in a
``<script type="application/json">`` (every ``<``, ``>`` and ``&`` escaped as ``\\u003c`` ...,
so no name can close the element) and the page script builds the table with ``textContent``.
A Content-Security-Policy allows only that one script (by hash), inline styles and nothing from
the network, so even a missed escape could not run or load anything.  The bytes depend only on
the models: no dates, no random ids.  ``MARKER`` identifies our pages, so that ``write_page``
overwrites an earlier archstat page but nothing else.
"""
from __future__ import annotations

import base64
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Optional, Sequence

from archstat.engine.conventions import DESCRIPTIONS
from archstat.errors import ArchstatError
from archstat.files import write_text
from archstat.reporting.html_charts import comparison_charts
from archstat.reporting.html_data import COLUMNS, ModelPage, comparison_rows, input_label, payload_rows, summary_items
from archstat.reporting.html_graph import esc, graph_views

MARKER = "<!-- archstat html page -->"
QUANTITIES = [("macs", "MACs"), ("act_bytes", "output memory"), ("params", "params")]



def _asset(name: str) -> str:
    return resources.files("archstat.reporting").joinpath("html_assets", name).read_text(encoding="utf-8")


def json_for_script(data: object) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&`` left."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _model_section(k: int, page: ModelPage) -> str:
    df = page.df
    main = df.attrs.get("outputs", [len(df) - 1])
    sink = main[0] if main and isinstance(main[0], int) and main[0] >= 0 else None
    views = graph_views(list(df["name"]), list(df["op"]), [list(s) for s in df["sources"]],
                        input_label(df.attrs), sink)
    items = "".join(f"<dt>{esc(q)}</dt><dd>{esc(v)}</dd>" for q, v in summary_items(page))
    view_buttons = "".join(f'<button data-v="{v.key}"{" class=on" if j == 0 else ""}>{esc(v.title)} ({v.nodes})'
                           f'</button>' for j, v in enumerate(views))
    qty_buttons = "".join(f'<button data-q="{q}"{" class=on" if j == 0 else ""}>{label}</button>'
                          for j, (q, label) in enumerate(QUANTITIES))
    svgs = "".join(f'<div class="view" data-v="{v.key}"{"" if j == 0 else " hidden"}>{v.svg}</div>'
                   for j, v in enumerate(views))
    conv = df.attrs["convention"]
    return (f'<section class="model" id="model-{k}" data-m="{k}"><h2>{esc(page.label)}</h2>'
            f'<dl class="sum">{items}</dl>'
            f'<p class="note">FLOPs in the {esc(conv)} convention: {esc(DESCRIPTIONS.get(conv, conv))}. '
            f'Memory: bytes of each op\'s output (KB = 1024 B); RF: receptive field in input pixels. '
            f'Shapes per sample (C×H×W).</p>'
            f'<div class="split"><div class="gpane"><div class="tools">view: {view_buttons}</div>'
            f'<div class="tools">size by: {qty_buttons} <span class="legend"></span></div>'
            f'<div class="gbox">{svgs}</div></div>'
            f'<div class="tpane"><div class="tools"><input class="filter" type="search" '
            f'placeholder="filter by layer, op or kind" aria-label="filter the table"> click a header to sort; '
            f'hover or click a row or a node to find it in the other</div>'
            f'<div class="tbox"><table class="t"><caption hidden>per-layer table</caption><thead></thead><tbody>'
            f'</tbody></table></div></div></div></section>')


def _comparison(pages: Sequence[ModelPage], links: Optional[Sequence[str]]) -> str:
    rows = comparison_rows(pages)
    mib = 1024 ** 2
    head = ("<tr><th>model</th><th>input</th><th>op calls</th><th>params (M)</th><th>MACs (G)</th><th>FLOPs (G)</th>"
            "<th>activations (MiB)</th><th>inference peak (MiB)</th><th>training step (MiB)</th>"
            "<th>receptive field</th></tr>")

    def num(v: Optional[float], scale: float, digits: int) -> str:
        return "n/a" if v is None else f"{v / scale:,.{digits}f}"

    body = []
    for j, r in enumerate(rows):
        name = esc(r["model"])
        if links:
            name = f'<a href="{esc(links[j])}">{name}</a>'
        body.append(f"<tr><td>{name}</td><td>{esc(r['input'])}</td><td class=num>{r['rows']}</td>"
                    f"<td class=num>{num(r['params'], 1e6, 2)}</td><td class=num>{num(r['macs'], 1e9, 3)}</td>"
                    f"<td class=num>{num(r['flops'], 1e9, 3)}</td><td class=num>{num(r['act_bytes'], mib, 2)}</td>"
                    f"<td class=num>{num(r['peak_bytes'], mib, 2)}</td><td class=num>{num(r['train_bytes'], mib, 1)}</td>"
                    f"<td>{esc(r['rf'] or 'n/a')}</td></tr>")
    charts = "".join(comparison_charts(rows))
    return (f'<section id="compare"><h2>Side by side</h2><table class="cmp"><thead>{head}</thead><tbody>'
            f'{"".join(body)}</tbody></table><div class="charts">{charts}</div></section>')


def render(pages: Sequence[ModelPage], *, title: Optional[str] = None, details: bool = True,
           links: Optional[Sequence[str]] = None) -> str:
    """The page for ``pages``: a comparison when there are several, each model's section when
    ``details`` (``links``: where each model's own page is, for the comparison table)."""
    if not pages:
        raise ArchstatError("no model to draw")
    title = title or "archstat: " + ", ".join(p.label for p in pages)
    data = {"columns": [{"key": key, "label": label, "unit": unit, "num": num} for key, label, unit, num in COLUMNS],
            "models": [{"label": p.label, "rows": payload_rows(p.df)} for p in pages] if details else []}
    script = _asset("page.js")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    csp = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'; img-src data:"
    parts = ["<!DOCTYPE html>", MARKER, '<html lang="en"><head><meta charset="utf-8">',
             f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
             '<meta name="generator" content="archstat html">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{esc(title)}</title><style>{_asset('page.css')}</style></head><body>",
             f"<h1>{esc(title)}</h1>",
             '<p class="note">Generated by <code>archstat html</code>: every number computed from formulas over the '
             'traced graph (no weights, no run). Self-contained: works offline.</p>']
    if len(pages) > 1 or not details:
        parts.append(_comparison(pages, links))
    if details:
        parts += [_model_section(k, p) for k, p in enumerate(pages)]
    parts += ['<div id="tip"></div>', f'<script type="application/json" id="archstat-data">{json_for_script(data)}'
              f'</script>', f"<script>{script}</script></body></html>", ""]
    return "\n".join(parts)


def is_archstat_page(path: Path) -> bool:
    """Whether ``path`` starts like a page this module wrote."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(256)
    except OSError:
        return False
    return MARKER.encode() in head


def write_page(path: Path, text: str) -> Path:
    """Write atomically (temp file + ``os.replace``); refuse a missing folder or a foreign file."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ArchstatError(f"cannot write {path}: {folder} " + ("is a file, not a folder" if folder.exists()
                                                                 else "does not exist"))
    if path.is_dir():
        raise ArchstatError(f"cannot write {path}: it is a folder")
    if path.exists() and not is_archstat_page(path):
        raise ArchstatError(f"refusing to overwrite {path}: it is not an archstat page")
    return write_text(path, text)
