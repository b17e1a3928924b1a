"""``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN``: every layer, both directions, every time step.

Per layer l and direction, with T steps, batch B, hidden size H, G gates (LSTM 4, GRU 3, RNN 1),
output size P (``proj_size`` of an LSTM, else H) and layer input width I_l (``input_size`` for
l = 0, D*P above it, D = 2 when bidirectional):

    MACs = T*B*I_l*G*H          (input projection: one matrix product over all steps)
         + T*B*P*G*H            (the recurrent product h_{t-1} W_hh^T, once per step, h_0 included)
         + T*B*H*P              (LSTM with proj_size: h_t = W_hr (o * tanh c_t))

Elementwise work per step and batch row (the ``hardware`` convention): LSTM 13H (gate add 4H,
sigmoid/tanh 4H, c_t = f*c + i*g 3H, tanh c_t H, o * tanh c_t H), GRU 10H, RNN 2H.

Which kernels run on the CPU (torch 2.13, ``aten::lstm`` / ``gru`` / ``rnn_tanh`` / ``rnn_relu``),
so what the oracles see:

* LSTM in float32 without ``proj_size``: oneDNN's fused ``aten::mkldnn_rnn_layer``, one call per
  layer and direction.  FlopCounterMode has no formula for it: 0, forward and backward.
* otherwise (GRU, RNN, LSTM with projections, float64): per layer and direction one ``mm`` for the
  input projection, then per step ``addmm`` for the recurrent product (and ``mm`` for an LSTM's
  projection): FlopCounterMode counts 2 per MAC, and its backward both products per ``mm``.
* fvcore traces ``aten::lstm`` / ``gru`` / ``rnn_tanh``: no handle, 0, oracle unsupported.

On CUDA cuDNN fuses all three (FlopCounterMode 0): the ``flopcounter`` numbers here are the CPU's.
Flagged unsupported (not modelled): unbatched (2-d) input, a PackedSequence, float16/bfloat16
(whether oneDNN runs depends on the CPU), and training dropout between layers.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from archstat.formulas import Cost, register_module
from archstat.formulas._checks import require_channels
from archstat.formulas.onednn_rnn import lstm_workspace_bytes
from archstat.formulas.timeline import Timeline
from archstat.spec import Size, TensorSpec, is_symbolic, leaves, strides_are_contiguous

GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}
# pointwise ops per step, per batch row, in units of H (see the module docstring)
POINTWISE = {"LSTM": 13, "GRU": 10, "RNN_TANH": 2, "RNN_RELU": 2}


def fused(m: nn.RNNBase, dtype: torch.dtype) -> bool:
    """Does the CPU run oneDNN's fused ``mkldnn_rnn_layer`` (RNN.cpp ``use_mkldnn``: LSTM only,
    float32 here, no projections)?"""
    return m.mode == "LSTM" and dtype == torch.float32 and m.proj_size == 0


def _layers(m: nn.RNNBase, b: Size, t: Size) -> list[dict[str, Size]]:
    """Per layer (both directions together): the MACs of its input, recurrent (all steps, and one
    step) and projection products."""
    d, g, h = 1 + m.bidirectional, GATES[m.mode], m.hidden_size
    p = m.proj_size or h
    out = []
    for layer in range(m.num_layers):
        width = m.input_size if layer == 0 else d * p
        out.append({"input": d * t * b * width * g * h, "hidden": d * t * b * p * g * h, "step": d * b * p * g * h,
                    "proj": d * t * b * h * p if m.proj_size else 0, "width": width})
    return out


@register_module(nn.LSTM, nn.GRU, nn.RNN)
def recurrent_module(m: nn.RNNBase, inputs: list) -> Cost:
    args: tuple = getattr(inputs, "args", ())
    kwargs: dict = getattr(inputs, "kwargs", {})
    x = args[0] if args else kwargs.get("input")
    hx: Any = args[1] if len(args) > 1 else kwargs.get("hx")
    if not isinstance(x, TensorSpec):  # a PackedSequence, or a call the engine could not see
        raise NotImplementedError(f"{type(m).__name__} without a plain tensor input")
    if len(x.shape) != 3 or x.dtype not in (torch.float32, torch.float64) or (m.training and m.dropout > 0
                                                                               and m.num_layers > 1):
        raise NotImplementedError(f"{type(m).__name__} variant")
    bf = m.batch_first
    b, t = (x.shape[0], x.shape[1]) if bf else (x.shape[1], x.shape[0])
    if is_symbolic(t):  # memory is replayed step by step: it needs the number of steps
        raise NotImplementedError(f"{type(m).__name__} with a symbolic number of steps")
    require_channels(x.shape[-1], m.input_size, "input features")
    d, h, p = 1 + m.bidirectional, m.hidden_size, m.proj_size or m.hidden_size
    layers = _layers(m, b, t)
    macs = sum(v["input"] + v["hidden"] + v["proj"] for v in layers)
    kernel = "mkldnn" if fused(m, x.dtype) else "aten"
    # batch_first: the (T, B, D*P) result is transposed in place (``transpose_``), not copied
    out = x.as_view((b, t, d * p), (d * p, b * d * p, 1)) if bf else x.with_shape((t, b, d * p))
    h_n = x.with_shape((d * m.num_layers, b, p))
    outs: tuple = (out, (h_n, x.with_shape((d * m.num_layers, b, h)))) if m.mode == "LSTM" else (out, h_n)
    out_bytes = sum(o.nbytes for o in leaves(outs, TensorSpec))
    # the kernels read the input time-major (T, B, I) and copy it when that is not contiguous: a
    # batch_first input (transposed unless one step or one sample), or a time-major one that is a view
    tm = (x.shape[1], x.shape[0], x.shape[2]) if bf else x.shape
    tm_stride = (x.stride[1], x.stride[0], x.stride[2]) if bf else x.stride
    copied = not strides_are_contiguous(tm, tm_stride)
    peak = _Inference(m, b, t, x.dtype.itemsize, hx is not None, copied).peak(kernel == "mkldnn")
    work: dict = {"pointwise": d * m.num_layers * t * b * POINTWISE[m.mode] * h, "transient_bytes": peak - out_bytes}
    h0 = next((i for i, v in enumerate(inputs) if hx is not None and v is leaves(hx, TensorSpec)[0]), None)
    work["bwd_products"] = _backward(layers, h0)
    work["bwd_flopcounter"] = kernel == "aten"  # FlopCounterMode has no formula for oneDNN's backward
    if kernel == "aten":
        work["saved"] = _saved(m, inputs, hx, b, t, copied, x.dtype)
    elif not is_symbolic(b):  # oneDNN's workspace is paged: it needs a number, not a closed form
        work["saved"] = _fused_saved(m, inputs, hx, b, t, copied)
    return Cost(out=outs, kind="recurrent", macs=macs,
                hparams={"fn": m.mode.lower(), "kernel": kernel, "layers": m.num_layers, "directions": d,
                         "hidden": h, "proj": m.proj_size, "steps": t, "batch_first": bf,
                         "initial_state": hx is not None,
                         "input_macs": sum(v["input"] for v in layers),
                         "hidden_macs": sum(v["hidden"] + v["proj"] for v in layers)},
                work=work)


class _Inference:
    """The allocations of one inference call, in order, replayed on a :class:`Timeline` (sizes in
    bytes; U = B*H, Q = B*P elements).  Read off a dispatch-level trace of torch 2.13 on the CPU:

    * oneDNN (``mkldnn``): zero initial states (unless given); per layer and direction one kernel
      that makes its output (T*B*H), h and c (U each), after (without biases) zeros the sizes of
      w_hh and w_ih passed as the biases, gone once it returns; both directions ``cat``; the
      previous layer's output of a direction goes once this layer's call for it returns (its
      ``cat`` once this layer's is made); then ``stack`` of the final h's and c's.
    * aten: per layer and direction the input projection (T*B*G*H), then per step the cell's
      temporaries and its new hidden (kept for the ``stack`` of the outputs); a layer's projection
      and step outputs go once the next layer starts.
    * a time-major input that is not contiguous (``batch_first``, or a view): it is first copied
      (T*B*I, alive to the end); on the aten path the
      first layer's projection is ``mm`` then a bias ``add`` (two T*B*G*H tensors for a moment;
      without biases the ``mm`` alone).
    """

    def __init__(self, m: nn.RNNBase, b: Size, t: Size, size: int, given: bool, copied: bool) -> None:
        self.m, self.b, self.t, self.s, self.given = m, b, t, size, given
        self.d, self.h, self.p, self.g = 1 + m.bidirectional, m.hidden_size, m.proj_size or m.hidden_size, GATES[m.mode]
        self.tl = Timeline()
        self.copied = copied  # the time-major input is not contiguous: the kernels copy it

    def peak(self, fused_kernel: bool) -> Size:
        m, tl, s, b, t, d = self.m, self.tl, self.s, self.b, self.t, self.d
        states = d * m.num_layers * b * s
        if not self.given:
            tl.new("h0", states * self.p)
            if m.mode == "LSTM":
                tl.new("c0", states * self.h)
        if self.copied and fused_kernel:  # oneDNN keeps its contiguous copy of the input to the end
            tl.new("clone", t * b * m.input_size * s)
        if fused_kernel:
            self._fused()
        else:
            self._aten()
            self._release()
        tl.new("h_n", states * self.p)
        if m.mode == "LSTM":
            tl.new("c_n", states * self.h)
        return tl.peak

    def _fused(self) -> None:
        tl, s, b, t, u = self.tl, self.s, self.b, self.t, self.b * self.h * self.s
        for layer in range(self.m.num_layers):
            width = self.m.input_size if layer == 0 else self.d * self.h
            for k in range(self.d):
                if not self.m.bias:  # RNN.cpp passes zeros the weights' sizes as the biases (w_hh's first)
                    tl.new("zeros_hh", 4 * self.h * self.h * s)
                    tl.new("zeros_ih", 4 * self.h * width * s)
                tl.new(f"out{layer}.{k}", t * b * self.h * s)
                tl.new(f"h{layer}.{k}", u)
                tl.new(f"c{layer}.{k}", u)
                if not self.m.bias:
                    tl.free("zeros_hh", "zeros_ih")
                if layer:  # layer_output[k] = this call's output: the previous layer's goes
                    tl.free(f"out{layer - 1}.{k}")
            if self.d == 2:
                tl.new(f"cat{layer}", t * b * 2 * self.h * s)
                if layer:
                    tl.free(f"cat{layer - 1}")

    def _aten(self) -> None:
        tl, s, b, t, g, h, p = self.tl, self.s, self.b, self.t, self.g, self.h, self.p
        u, q = b * h * s, b * p * s
        steps = int(t)
        for layer in range(self.m.num_layers):
            if layer:  # the previous layer's projections, non-final step outputs and stacks go
                tl.free(*[n for n in list(tl.alive) if n.startswith(f"iw{layer - 1}.") or (n.startswith(
                    f"y{layer - 1}.") and not n.endswith(f".{steps - 1}")) or (self.d == 2 and n.startswith(
                    f"stack{layer - 1}.")) or (layer > 1 and n in (f"stack{layer - 2}.0", f"cat{layer - 2}"))])
            for k in range(self.d):
                if self.copied and layer == 0:  # a contiguous copy of the input, mm, then the bias add
                    tl.new("rows", t * b * self.m.input_size * s)
                    tl.new("mm" if self.m.bias else f"iw{layer}.{k}", t * b * g * h * s)
                    tl.free("rows")
                    if self.m.bias:
                        tl.new(f"iw{layer}.{k}", t * b * g * h * s)
                        tl.free("mm")
                else:
                    tl.new(f"iw{layer}.{k}", t * b * g * h * s)
                if k:  # the forward direction's projection goes as the reverse one starts
                    tl.free(f"iw{layer}.0")
                for i in range(steps):
                    self._cell(f"{layer}.{k}.{i}", f"{layer}.{k}.{i - 1}" if i else None, u, q)
                tl.new(f"stack{layer}.{k}", t * q)
            if self.d == 2:
                tl.new(f"cat{layer}", t * b * 2 * p * s)

    def _release(self) -> None:
        """Before the final stacks the aten path lets go of all but the output and final states."""
        last, steps = self.m.num_layers - 1, int(self.t)
        keep = {"h0", "c0", "clone", f"stack{last}.0" if self.d == 1 else f"cat{last}"}
        keep |= {f"{c}{layer}.{k}.{steps - 1}" for c in "yc" for layer in range(last + 1) for k in range(self.d)}
        self.tl.free(*[n for n in list(self.tl.alive) if n not in keep])

    def _cell(self, at: str, before: str | None, u: Size, q: Size) -> None:
        """One step: the cell's temporaries, then its new hidden ``y<at>`` (and an LSTM's ``c<at>``)."""
        tl, mode = self.tl, self.m.mode
        if mode == "GRU":  # hh gates, the new gate, then (h - n) * z + n
            tl.new("hh", 3 * u)
            tl.new("n", u)
            tl.new(f"y{at}", u)
            tl.free("hh", "n")
        elif mode != "LSTM":  # tanh(h W_hh^T + b + x_t)
            tl.new("hh", u)
            tl.new(f"y{at}", u)
            tl.free("hh")
        else:  # gates, c = f*c + i*g, tanh(c), o*tanh(c) (then the projection)
            tl.new("gates", 4 * u)
            tl.new(f"c{at}", u)
            tl.new("ig", u)
            tl.new("tanh", u)
            tl.free("ig")
            if self.m.proj_size:
                tl.new("hy", u)
                tl.free("hy")  # gone by the time the tracer sees the projection's result
                tl.new(f"y{at}", q)
            else:
                tl.new(f"y{at}", u)
            tl.free("gates", "tanh", *([f"c{before}"] if before else []))


def _saved(m: nn.RNNBase, inputs: list, hx: Any, b: Size, t: Size, copied: bool, dtype: torch.dtype) -> list:
    """What autograd keeps on the aten path (read off ``saved_tensors_hooks``), U = B*H, Q = B*P:

    * the input projection's input: the layer's input (layer 0: the call's input, or its
      contiguous copy per direction when ``batch_first``; above it the previous layer's output);
    * the initial states (zeros the op makes, or the ones given): what step 0's products read;
    * per step, the recurrent product's input h_{t-1} (step 0: the initial state) and the cell's:
      RNN its output (U, which is the next step's h_{t-1}); GRU the gates (3U) and three U's (the new gate, r * (h W_hn) before it is
      overwritten, h - n); LSTM the gates (4U), c_{t-1}, tanh(c_t), and with projections the
      projection's input o * tanh(c_t) (U).  The last step's h is kept by nothing.
    """
    d, h, p, steps = 1 + m.bidirectional, m.hidden_size, m.proj_size or m.hidden_size, int(t)
    u, q = b * h, b * p
    states = d * m.num_layers * b
    given = [i for i, x in enumerate(inputs) if any(x is s for s in leaves(hx, TensorSpec))] if hx is not None else []
    items: list = [("in", i) for i in given] if given else \
        [("new", states * p, dtype)] + ([("new", states * h, dtype)] if m.mode == "LSTM" else [])
    per_step = {"RNN_TANH": [u], "RNN_RELU": [u], "GRU": [3 * u, u, u, u],
                "LSTM": [4 * u, u] + ([u] if m.proj_size else [])}[m.mode]
    for layer in range(m.num_layers):
        if layer == 0:
            items += [("new", t * b * m.input_size, dtype)] * d if copied else [("in", 0)]
        else:
            items.append(("new", t * b * d * p, dtype))
        for _ in range(d):
            for i in range(steps):
                items += [("new", n, dtype) for n in per_step]
                if i and m.mode == "LSTM":  # h_{t-1} and c_{t-1} (and an LSTM's c_{t-1}): the previous step's results
                    items += [("new", q, dtype), ("new", u, dtype)]
                elif i and m.mode == "GRU":  # h_{t-1}, made by the step before (an RNN's is its tanh, above)
                    items.append(("new", u, dtype))
    return items


def _given_states(m: nn.RNNBase, inputs: list, hx: Any, states: Size) -> list | None:
    """The initial h and c as autograd saves them: the ones given (a copy when not contiguous, as
    ``hx.contiguous()`` makes), or the zeros ``nn.LSTM`` makes, each (D*L, B, H)."""
    if hx is None:
        return [("new", states, torch.float32), ("new", states, torch.float32)]
    items = []
    for spec in leaves(hx, TensorSpec):
        k = next((i for i, v in enumerate(inputs) if v is spec), None)
        if k is None:  # a state the engine did not hand over as an input: cannot be named
            return None
        items.append(("in", k) if strides_are_contiguous(spec.shape, spec.stride) else ("new", states, spec.dtype))
    return items


def _fused_saved(m: nn.RNNBase, inputs: list, hx: Any, b: Size, t: Size, copied: bool) -> list | None:
    """What autograd keeps for oneDNN's fused float32 LSTM (derivatives.yaml ``mkldnn_rnn_layer``:
    input, the four weights, hx, cx, output, hy, cy, workspace; read off ``saved_tensors_hooks``),
    per layer and direction, with U = B*H:

    * the initial states, once (every call saves its slice ``hx[index]`` of the same storage);
    * the layer's input: layer 0 the call's input, or the one time-major contiguous copy both
      directions read; above it the previous layer's output (one direction: that call's output;
      two: their ``cat``, T*B*2H);
    * the weights are parameters (model state), but without biases RNN.cpp passes ``zeros`` the
      weights' sizes as the two biases: 4H*W and 4H*H new per call;
    * its output T*B*H (one direction, last layer: the module's output itself, part 0), hy and cy
      (U each; the module's h_n and c_n are ``stack`` copies of them, not saved);
    * the uint8 workspace, :func:`archstat.formulas.onednn_rnn.lstm_workspace_bytes`.
    """
    d, h, steps, f32 = 1 + m.bidirectional, m.hidden_size, int(t), torch.float32
    states = _given_states(m, inputs, hx, d * m.num_layers * b * h)
    if states is None:
        return None
    items: list = states
    items.append(("new", steps * b * m.input_size, f32) if copied else ("in", 0))
    for layer in range(m.num_layers):
        width, last = m.input_size if layer == 0 else d * h, layer == m.num_layers - 1
        for _ in range(d):
            if not m.bias:
                items += [("new", 4 * h * width, f32), ("new", 4 * h * h, f32)]
            if not (last and d == 1):  # this call's output (the last layer's, one direction: ("out", 0) below)
                items.append(("new", steps * b * h, f32))
            items += [("new", b * h, f32), ("new", b * h, f32),
                      ("new", lstm_workspace_bytes(steps, int(b), width, h), torch.uint8)]
        if d == 2 and not last:  # the next layer's input: both directions' outputs side by side
            items.append(("new", steps * b * 2 * h, f32))
    if d == 1:
        items.append(("out", 0))
    return items


def _backward(layers: list[dict[str, Size]], h0: int | None) -> list:
    """The products backward computes, as ``(MACs, k)`` (Cost.work["bwd_products"]): each forward
    product's weight gradient (k = -1), and its input's: the call's input (k = 0) for layer 0's
    projection, always above it; h_{t-1} for steps 1..T-1, step 0 only for a given h_0 (input k =
    ``h0``) that needs it (zeros made inside need none); an LSTM projection's input always."""
    out: list = []
    for layer, v in enumerate(layers):
        step = v["step"]  # one step of the recurrent product, both directions
        out += [(v["input"], -1), (v["input"], 0 if layer == 0 else -1), (v["hidden"], -1),
                (v["hidden"] - step, -1), (v["proj"], -1), (v["proj"], -1)]
        if h0 is not None:
            out.append((step, h0))
    return [(macs, k) for macs, k in out if not (isinstance(macs, int) and macs == 0)]
