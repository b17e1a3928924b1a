"""The model's graph as inline SVG for the HTML page: one view per level of detail.

View ``ops`` draws one node per op call (one per table row); the coarser views draw one node per
module (``layer1``, ``inception3a``: a name prefix, see ``html_layout.group_runs``).  Each view
frames the modules of the next coarser view; clicking a frame's label collapses the module (the
page switches to the coarser view), clicking a module node expands it.  Geometry comes from
``html_layout.layout``; colours and bars are the page script's job (they follow the quantity the
reader picks).  Every piece of text is escaped here: names come from user code.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Sequence

from archstat.reporting.html_layout import Layout, group_runs, layout, useful_levels

LANE_W, NODE_W, NODE_H, LAYER_H, MARGIN = 152, 140, 20, 34, 40


@dataclass(frozen=True)
class GraphView:
    """One level of detail: ``key`` ('ops', 'L1', 'L2'), a title for the switch, the SVG markup."""

    key: str
    title: str
    svg: str
    nodes: int


def esc(text: str) -> str:
    """Text made safe inside HTML or SVG markup (names come from user code)."""
    return html.escape(str(text), quote=True)


def _xy(lay: Layout, i: int) -> tuple[int, int]:
    """Top-left corner of node ``i`` (-1: the input node, layer 0, lane 0)."""
    if i < 0:
        return MARGIN, 8
    return MARGIN + lay.lane[i] * LANE_W, 8 + lay.layer[i] * LAYER_H


def short(name: str, keep: int = 2) -> str:
    """The last ``keep`` parts of a qualified name ('' is the model itself)."""
    parts = name.split(".") if name else []
    return ("…" if len(parts) > keep else "") + ".".join(parts[-keep:])


def _inside(name: str, frame: str) -> str:
    """``name`` without the prefix of the frame drawn around it."""
    return name[len(frame) + 1:] if frame and name.startswith(frame + ".") else name


def _clip(text: str, limit: int = 26) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _edge(lay: Layout, s: int, t: int, occupied: set[tuple[int, int]]) -> str:
    (x0, y0), (x1, y1) = _xy(lay, s), _xy(lay, t)
    x0, y0, x1 = x0 + NODE_W // 2, y0 + NODE_H, x1 + NODE_W // 2
    ls, lt = (0 if s < 0 else lay.lane[s]), lay.lane[t]
    l0, l1 = (0 if s < 0 else lay.layer[s]), lay.layer[t]
    half = (LAYER_H - NODE_H) // 2
    between = range(l0 + 1, l1)
    if l1 - l0 <= 1:
        return f"M{x0} {y0}C{x0} {y0 + half} {x1} {y1 - half} {x1} {y1}"
    if ls != lt and not any((ls, k) in occupied for k in between):  # down the source's lane, then across
        return f"M{x0} {y0}V{y1 - LAYER_H + NODE_H}C{x0} {y1 - half} {x1} {y1 - half} {x1} {y1}"
    if ls != lt and not any((lt, k) in occupied for k in between):  # across, then down the target's lane
        return f"M{x0} {y0}C{x0} {y0 + half} {x1} {y0 + half} {x1} {y0 + 2 * half}V{y1}"
    gutter = min(x0, x1) - NODE_W // 2 - 8  # around the nodes in between, down the gutter on the left
    return f"M{x0} {y0}v{half}H{gutter}V{y1 - half}H{x1}V{y1}"


def _node(lay: Layout, i: int, label: str, attrs: str) -> str:
    x, y = _xy(lay, i)
    return (f'<g class="n" {attrs} transform="translate({x} {y})"><rect width="{NODE_W}" height="{NODE_H}" rx="3"/>'
            f'<rect class="b" y="{NODE_H - 3}" height="3" width="0"/><text x="4" y="14">{esc(_clip(label))}</text></g>')


def _frames(lay: Layout, members: list[list[int]], labels: list[str], view: str) -> list[str]:
    """Dashed boxes around each module of the next coarser view (two or more nodes); ``view``:
    the key of the view that shows the module collapsed."""
    out = []
    for label, rows in zip(labels, members):
        if len(rows) < 2 or not label:
            continue
        xs = [_xy(lay, i)[0] for i in rows]
        ys = [_xy(lay, i)[1] for i in rows]
        x, y = min(xs) - 5, min(ys) - 4
        w, h = max(xs) + NODE_W + 5 - x, max(ys) + NODE_H + 4 - y
        out.append(f'<g class="f" data-v="{view}" data-r="{rows[0]}"><rect x="{x}" y="{y}" width="{w}" '
                   f'height="{h}"/><text x="{x + 2}" y="{y - 2}">▾ {esc(_clip(label, 40))}</text></g>')
    return out


def _svg(lay: Layout, body: list[str], title: str) -> str:
    width = MARGIN + lay.n_lanes * LANE_W + 10
    height = 8 + (lay.n_layers + 1) * LAYER_H
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img"><title>{esc(title)}</title>' + "".join(body) + "</svg>")


def _draw(lay: Layout, node_svg: list[str], frames: list[str], input_label: str, title: str) -> str:
    occupied = {(lay.lane[i], lay.layer[i]) for i in range(len(lay.layer))}
    edges = "".join(f'<path d="{_edge(lay, s, t, occupied)}"/>' for s, t in lay.edges)
    x, y = _xy(lay, -1)
    inp = (f'<g class="n in" transform="translate({x} {y})"><rect width="{NODE_W}" height="{NODE_H}" rx="10"/>'
           f'<text x="4" y="14">{esc(input_label)}</text></g>')
    return _svg(lay, [*frames, f'<g class="e">{edges}</g>', inp, *node_svg], title)


def _module_view(names: Sequence[str], ops: Sequence[str], sources: Sequence[Sequence[int]], level: int,
                 coarser: int | None, input_label: str, main_sink: int | None) -> GraphView:
    labels, members, gsrc = group_runs(names, sources, level)
    sink = None if main_sink is None else next(g for g, rows in enumerate(members) if main_sink in rows)
    lay = layout(gsrc, sink)
    nodes = []
    for g, (label, rows) in enumerate(zip(labels, members)):
        text = (f"{short(label)} ({len(rows)} ops)" if len(rows) > 1
                else f"{short(names[rows[0]]) or '(model)'} {ops[rows[0]]}")
        nodes.append(_node(lay, g, text, f'data-a="{rows[0]}" data-b="{rows[-1]}"'))
    frames = []
    if coarser is not None:  # the coarser modules, over this view's nodes
        clabels, cmembers, _ = group_runs(labels, gsrc, coarser)
        frames = _frames(lay, cmembers, clabels, f"m{coarser}")
    title = f"graph, one node per module at name depth {level} ({len(labels)} nodes)"
    return GraphView(f"m{level}", f"modules (depth {level})", _draw(lay, nodes, frames, input_label, title),
                     len(labels))


def graph_views(names: Sequence[str], ops: Sequence[str], sources: Sequence[Sequence[int]], input_label: str,
                main_sink: int | None = None) -> list[GraphView]:
    """The ops view, then up to two module views, finest first (keys 'ops', 'm2', 'm1')."""
    levels = useful_levels(names)  # coarsest first
    lay = layout(sources, main_sink)
    frames, framed = [], [""] * len(names)
    if levels:  # the ops view frames the coarsest modules, and its labels drop their prefix
        labels, members, _ = group_runs(names, sources, levels[0])
        frames = _frames(lay, members, labels, f"m{levels[0]}")
        for label, rows in zip(labels, members):
            for i in rows if len(rows) > 1 else ():
                framed[i] = label
    nodes = [_node(lay, i, f"{_inside(n, framed[i]) or '(model)'} {op}", f'data-i="{i}"')
             for i, (n, op) in enumerate(zip(names, ops))]
    title = f"graph, one node per op call ({len(names)} nodes)"
    views = [GraphView("ops", "every op", _draw(lay, nodes, frames, input_label, title), len(names))]
    for k in range(len(levels) - 1, -1, -1):
        views.append(_module_view(names, ops, sources, levels[k], levels[k - 1] if k > 0 else None, input_label,
                                  main_sink))
    return views
