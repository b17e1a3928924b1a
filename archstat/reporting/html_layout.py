"""A layered layout of a model's op graph, for the HTML page's SVG (pure Python, no torch).

Input: each node's sources (indices of earlier nodes, ``-1`` = the model input), in execution
order, which is a topological order.  Output: for each node a layer (its longest path from the
input) and a lane (a column).  Lanes follow chains: a node continues the lane of the source it is
the *heir* of (of a node's consumers, the one with the longest way still to go), a branch opens the
nearest free lane to the right, a merge (add, cat) keeps the leftmost lane of its sources.  Side
outputs that never rejoin the main output (GoogLeNet's auxiliary heads) take lanes right of the
main graph, so that they do not cut through the modules beside them.

``group_runs`` coarsens a graph by module name prefix (``layer1``, ``inception3a``) for the
collapsed views: each maximal run of consecutive rows with one prefix becomes one node, so that
the coarse graph stays acyclic.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Layout:
    """``layer[i]``, ``lane[i]`` for node ``i``; ``edges`` as (source, target), source -1 = input."""

    layer: list[int]
    lane: list[int]
    edges: list[tuple[int, int]]
    n_layers: int
    n_lanes: int


def _consumers(sources: Sequence[Sequence[int]]) -> list[list[int]]:
    out: list[list[int]] = [[] for _ in sources]
    for j, srcs in enumerate(sources):
        for s in dict.fromkeys(srcs):
            if 0 <= s < j:
                out[s].append(j)
    return out


def _heights(consumers: list[list[int]]) -> list[int]:
    """Longest path from each node to a sink."""
    height = [0] * len(consumers)
    for i in range(len(consumers) - 1, -1, -1):
        height[i] = 1 + max((height[c] for c in consumers[i]), default=0)
    return height


def _main_nodes(consumers: list[list[int]], main_sink: int) -> list[bool]:
    """Nodes from which the main output is reachable (the rest are side outputs)."""
    main = [False] * len(consumers)
    for i in range(len(consumers) - 1, -1, -1):
        main[i] = i == main_sink or any(main[c] for c in consumers[i])
    return main


class _Lanes:
    """Lane bookkeeping: which lanes hold a chain whose tip still has consumers to feed."""

    def __init__(self, first: int) -> None:
        self.first = first
        self.busy_until: dict[int, int] = {}  # lane -> last layer drawn in it
        self.open: set[int] = set()  # lanes whose tip still feeds a later node
        self.tip: dict[int, int] = {}  # lane -> the node last placed in it

    def claim(self, layer: int, right_of: int) -> int:
        lane = max(right_of + 1, self.first)
        while lane in self.open or self.busy_until.get(lane, -1) >= layer:
            lane += 1
        return lane

    def use(self, lane: int, layer: int, node: int) -> None:
        self.open.add(lane)
        self.tip[lane] = node
        self.busy_until[lane] = max(self.busy_until.get(lane, -1), layer)


def layout(sources: Sequence[Sequence[int]], main_sink: int | None = None) -> Layout:
    """Layers and lanes for the DAG given by ``sources`` (see the module docstring)."""
    n = len(sources)
    srcs = [[s for s in dict.fromkeys(ss) if 0 <= s < j] for j, ss in enumerate(sources)]
    consumers = _consumers(srcs)
    height = _heights(consumers)
    heir = [max(c, key=lambda k: (height[k], -k)) if c else -1 for c in consumers]
    main = _main_nodes(consumers, n - 1 if main_sink is None else main_sink)
    layer = [0] * n
    for j in range(n):
        layer[j] = 1 + max((layer[s] for s in srcs[j]), default=0)
    lane = [0] * n
    pending = [len(c) for c in consumers]
    main_pool, side_pool = _Lanes(0), None
    for j in sorted(range(n), key=lambda k: (not main[k], k)):  # the main graph first, side outputs after
        if not main[j] and side_pool is None:
            side_pool = _Lanes(max(main_pool.busy_until, default=-1) + 1)
        pool = main_pool if main[j] else side_pool
        inherited = [lane[s] for s in srcs[j] if heir[s] == j and main[s] == main[j]]
        if inherited:
            lane[j] = min(inherited)
        else:
            lane[j] = pool.claim(layer[j], min((lane[s] for s in srcs[j]), default=-1))
        pool.use(lane[j], layer[j], j)
        for s in srcs[j]:
            pending[s] -= 1
            owner = main_pool if main[s] else side_pool
            if pending[s] == 0 and owner.tip.get(lane[s]) == s:
                owner.open.discard(lane[s])
        if not consumers[j]:
            pool.open.discard(lane[j])
    edges = [(s, j) for j in range(n) for s in ([-1] if -1 in sources[j] else []) + srcs[j]]
    return Layout(layer, lane, edges, max(layer, default=0), max(lane, default=0) + 1)


def prefix(name: str, level: int) -> str:
    """The first ``level`` dot-separated parts of a qualified module name."""
    return ".".join(name.split(".")[:level])


def group_runs(names: Sequence[str], sources: Sequence[Sequence[int]], level: int
               ) -> tuple[list[str], list[list[int]], list[list[int]]]:
    """Coarsen by name prefix: (group labels, member rows of each group, each group's sources)."""
    labels: list[str] = []
    members: list[list[int]] = []
    group_of: list[int] = []
    for i, name in enumerate(names):
        key = prefix(name, level)
        if not labels or labels[-1] != key or not key:
            labels.append(key)
            members.append([])
        members[-1].append(i)
        group_of.append(len(labels) - 1)
    group_sources: list[list[int]] = []
    for g, rows in enumerate(members):
        feeds = {(-1 if s < 0 else group_of[s]) for r in rows for s in sources[r]}
        group_sources.append(sorted(f for f in feeds if f != g))
    return labels, members, group_sources


def useful_levels(names: Sequence[str], max_levels: int = 2) -> list[int]:
    """Prefix levels (1, 2, ...) whose grouping merges rows, coarsest first, at most ``max_levels``.

    A level counts when it has fewer nodes than the ops themselves (by at least a fifth) and
    differs from the coarser level kept before it."""
    levels: list[int] = []
    depth = max((len(n.split(".")) for n in names), default=1)
    counts_seen: set[int] = set()
    for level in range(1, depth):
        count = len(group_runs(names, [[] for _ in names], level)[0])
        if count <= 0.8 * len(names) and count not in counts_seen:
            levels.append(level)
            counts_seen.add(count)
        if len(levels) == max_levels:
            break
    return levels
