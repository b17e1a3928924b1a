"""Per-op-call timing: the model's fx graph, with a clock read between every two op calls.

Method, and why.  The graph is the one ``analyze_rows()`` traced (the product's), so its op
calls are exactly the table's rows and carry its ``(name, op, call)`` key.  A ``_mark()`` call is
inserted after every costed node and the graph runs as fx's generated Python code on real tensors,
reading the clock at every boundary between costed nodes: CUDA events recorded on the stream (GPU),
``perf_counter`` (CPU).  (Generated code, not ``fx.Interpreter``, whose per-node Python dispatch
would starve the GPU on small layers.)  Row ``i``'s
time is ``t_i - t_{i-1}``; boundaries are shared, so the per-layer times add up exactly to the span
of the pass, and whatever the per-node dispatch adds (Python overhead that starves the GPU of work)
shows up in the comparison of that sum with the whole-model time rather than vanishing.

We chose this over ``torch.profiler`` kernel times attributed to modules because (1) functional ops
(``+``, ``torch.flatten``, ``cat``) get their own rows here, whereas module attribution folds them
into the enclosing block; (2) the key is analyze()'s by construction, not re-derived from profiler
names; (3) it needs no CUPTI, so the identical code runs on CPU in CI; (4) the kernel-sum from the
profiler hides the launch gaps that the whole-model time contains, so it cannot show the overhead.
The cost is that a node too small to keep the GPU busy is charged its launch latency (batch 1).
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch
import torch.fx as fx
from torch import nn

from archstat.engine.interpret import OpRecord
from archstat.engine.rows import Rows
from archstat.engine.trace import copy_graph
from archstat.errors import ArchstatError
from archstat.profiling.timing import elapsed_s, new_event, sync
from archstat.spec import TensorSpec


def weight_bytes(module: Optional[nn.Module], dtype: torch.dtype) -> int:
    """Bytes of the floating-point parameters and buffers a module call reads, in the run dtype."""
    if module is None:
        return 0
    tensors = list(module.parameters()) + [b for b in module.buffers() if b.is_floating_point()]
    return sum(t.numel() for t in tensors) * dtype.itemsize


def _spec_bytes(value: Any) -> int:
    if isinstance(value, TensorSpec):
        return int(value.nbytes)
    if isinstance(value, (tuple, list)):
        return sum(_spec_bytes(v) for v in value)
    return 0


def trace_records(rows: Rows) -> tuple[fx.Graph, list[OpRecord], list[fx.Node], list[int]]:
    """The product's graph, its costed records, the node of each record, and each call's weight bytes
    (its module's floating-point parameters and buffers, plus the ``get_attr`` tensors it reads,
    counted per call, not once per model).  Nothing is traced here: the rows carry all of it."""
    if rows.engine != "fx":
        raise ArchstatError(f"cannot trace {type(rows.model).__name__} with torch.fx: per-layer timing runs its graph")
    wbytes = [weight_bytes(r.module, rows.dtype) + sum(int(s.nbytes) for s in r.state_inputs) for r in rows.records]
    return rows.graph, rows.records, rows.nodes, wbytes


def bytes_moved(record: OpRecord, wbytes: int) -> int:
    """Fewest bytes an op call must move: each input read once, weights once, each output written once.

    Views and identities (eval-mode dropout is one) launch no kernel and move nothing.
    """
    if record.cost.kind in ("view", "identity"):
        return 0
    return sum(_spec_bytes(t) for t in record.inputs) + wbytes + _spec_bytes(record.cost.out)


class _Clock:
    """The clock readings of one pass: events created up front, only ``record`` on the timed path."""

    def __init__(self, device: torch.device, n: int) -> None:
        self.device = device
        self.pool = [new_event(device) for _ in range(n)]
        self.used = 0

    def mark(self) -> None:
        self.pool[self.used].record()
        self.used += 1

    def intervals(self) -> list[float]:
        sync(self.device)  # once per pass, after the last op call
        marks = self.pool[:self.used]
        return [elapsed_s(a, b) for a, b in zip(marks, marks[1:])]


_ACTIVE: list[_Clock] = []  # the clock of the pass in progress (read by the inserted _mark nodes)


def _mark() -> None:
    _ACTIVE[-1].mark()


def instrument(model: nn.Module, graph: fx.Graph, nodes: list[fx.Node]) -> tuple[fx.GraphModule, list[fx.Node]]:
    """A GraphModule of a copy of ``graph`` with a ``_mark()`` call after every node in ``nodes``.

    ``graph`` itself is left as it is (it is the rows' graph, which other checks run).  Returns the
    module and the timed nodes of ``graph`` in graph order, which is the order of the clock readings.
    """
    graph, copies = copy_graph(graph)
    timed = {copies[n] for n in nodes}
    back = {c: n for n, c in copies.items()}
    order: list[fx.Node] = []
    for n in list(graph.nodes):
        if n in timed:
            with graph.inserting_after(n):
                graph.call_function(_mark, ())
            order.append(back[n])
    gm = fx.GraphModule(model, graph)
    gm.training = model.training
    return gm, order


def interleaved(model: nn.Module, graph: fx.Graph, nodes: list[fx.Node], x: Any, device: torch.device,
                warmup: int, repeat: int, kwargs: Optional[dict] = None,
                whole: Optional[Callable[[], object]] = None) -> tuple[list[list[float]], list[float]]:
    """``repeat`` instrumented passes (per-node seconds, in the order of ``nodes``) on ``x`` (one tensor, or
    the positional inputs) and the keyword inputs ``kwargs``, each right after a timed call of ``whole``
    (the uninstrumented model, if given; warmed up with the passes): the passes and the whole-model
    seconds.  Each whole-model call, as each pass, starts on an empty device queue and ends with a sync:
    on a GPU both are single-call latencies, a little above the back-to-back median of ``time_calls``.

    Why interleaved: the layer sum is judged against the whole model, and a shared machine's pace moves
    by 10-20% over the seconds that separate two blocks of calls (the layer sum of the same model read
    0.77-1.11 of a whole-model median taken just before); one after the other, both medians see the same
    machine.  The instrumented graph runs as generated Python code, not node by node through
    ``fx.Interpreter``: what the timing adds per op call is one function call and one event record.
    """
    args, kwargs = ([x] if isinstance(x, torch.Tensor) else list(x)), dict(kwargs or {})
    gm, order = instrument(model, graph, nodes)
    position = {n: i for i, n in enumerate(order)}
    index = [position[n] for n in nodes]

    def one_pass() -> list[float]:
        clock = _Clock(device, len(order) + 1)
        _ACTIVE.append(clock)
        try:
            clock.mark()
            gm(*args, **kwargs)  # the generated forward takes keyword inputs by name
        finally:
            _ACTIVE.pop()
        return clock.intervals()

    def whole_call() -> float:
        clock = _Clock(device, 2)
        clock.mark()
        whole()  # type: ignore[misc]
        clock.mark()
        return clock.intervals()[0]

    passes, whole_s = [], []
    with torch.inference_mode():
        for _ in range(max(warmup, 1)):
            if whole is not None:
                whole()
            one_pass()
        for _ in range(repeat):
            if whole is not None:
                whole_s.append(whole_call())
            passes.append(one_pass())
    return [[p[i] for i in index] for p in passes], whole_s
