"""nn.LSTM / nn.GRU / nn.RNN: every layer, both directions, every step, with and without initial
states.  Rows worked out by hand, and validate (real run, live and saved bytes, backward FLOPs, both
oracles) in eval and train for the variants PyTorch runs differently on the CPU: oneDNN's fused
LSTM (float32, no projections) and the aten path (GRU, RNN, LSTM with proj_size, float64)."""
import logging

import pytest
import torch
from torch import nn

import archstat
from _validated import validated

logging.getLogger("fvcore").setLevel(logging.ERROR)


class Recur(nn.Module):
    """A linear (so the layer's input needs a gradient), then the recurrent layer, called with
    initial states made from buffers when ``init``; the output and the final h are both used."""

    def __init__(self, cls: str = "LSTM", init: bool = False, batch_first: bool = True, **kw) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 8)
        self.rnn = getattr(nn, cls)(8, 5, batch_first=batch_first, **kw)
        self.init, self.batch_first, self.lstm = init, batch_first, cls == "LSTM"
        states = (2 if kw.get("bidirectional") else 1) * kw.get("num_layers", 1)
        torch.manual_seed(1)
        self.register_buffer("h0", torch.randn(states, 1, kw.get("proj_size") or 5))
        self.register_buffer("c0", torch.randn(states, 1, 5))

    def forward(self, x):  # N x T x 8 (batch_first) or T x N x 8
        x = self.lin(x)
        if self.init:
            b = x.shape[0] if self.batch_first else x.shape[1]
            h0 = self.h0.expand(-1, b, -1).contiguous() * 2  # computed: h_0 needs a gradient in training
            hx = (h0, self.c0.expand(-1, b, -1).contiguous()) if self.lstm else h0
            res = self.rnn(x, hx)
        else:
            res = self.rnn(x)
        out, state = res[0], res[1]  # indexed, not unpacked: fx traces it (the fx engine, live bytes checked)
        h = state[0] if self.lstm else state
        return out.flatten(1).sum(1) + h.sum(0).sum(1)


CASES = {  # name -> (builder, input per sample)
    "lstm": (lambda: Recur(), (4, 8)),
    "lstm_h0": (lambda: Recur(init=True), (4, 8)),
    "lstm_deep_bidir": (lambda: Recur(num_layers=2, bidirectional=True, init=True), (4, 8)),
    "lstm_seq_first": (lambda: Recur(batch_first=False), (2, 8)),
    "lstm_proj": (lambda: Recur(proj_size=3), (4, 8)),
    "lstm_proj_h0_bidir": (lambda: Recur(proj_size=3, init=True, bidirectional=True), (4, 8)),
    "lstm_float64": (lambda: Recur(num_layers=2).double(), (4, 8)),
    "gru": (lambda: Recur("GRU"), (4, 8)),
    "gru_deep_bidir_h0": (lambda: Recur("GRU", num_layers=3, bidirectional=True, init=True), (3, 8)),
    "gru_seq_first": (lambda: Recur("GRU", batch_first=False, num_layers=2), (2, 8)),
    "rnn": (lambda: Recur("RNN"), (4, 8)),
    "rnn_relu_h0_bidir": (lambda: Recur("RNN", nonlinearity="relu", init=True, bidirectional=True), (4, 8)),
    "one_step": (lambda: Recur("GRU"), (1, 8)),
    # without biases the fused kernel is handed zeros the weights' sizes (saved in training), and the
    # aten path's first projection of a batch_first input is an mm with no bias add
    "lstm_no_bias_deep_bidir_h0": (lambda: Recur(bias=False, num_layers=2, bidirectional=True, init=True), (4, 8)),
    "gru_no_bias": (lambda: Recur("GRU", bias=False), (4, 8)),
}


def _row(model, shape, **kw):
    df = archstat.analyze(model, shape, batch=2, **kw)
    return df[df.kind == "recurrent"].iloc[0]


def test_lstm_row_by_hand():
    row = _row(Recur(), (4, 8), mode="train")
    # B=2, T=4, I=8, H=5, 4 gates: input projection T*B*I*4H, recurrent T*B*H*4H
    assert row.supported and row.out_shape == [4, 5] and row.macs == 4 * 2 * 8 * 20 + 4 * 2 * 5 * 20
    assert row.params == 4 * 5 * (8 + 5) + 2 * 4 * 5
    assert row.flops_fvcore == 0 and row.hparams["kernel"] == "mkldnn"  # aten::lstm: no fvcore handle


def test_gru_and_projection_macs_by_hand():
    gru = _row(Recur("GRU", num_layers=2, bidirectional=True), (4, 8), convention="flopcounter")
    # layer 0: 2 directions * T*B*(I + H)*3H; layer 1 reads both directions' outputs, 2H wide
    assert gru.macs == 2 * 4 * 2 * (8 + 5) * 15 + 2 * 4 * 2 * (10 + 5) * 15 and gru.flops == 2 * gru.macs
    proj = _row(Recur(proj_size=3), (4, 8), convention="flopcounter")
    # the recurrent product reads the projected h (P=3), and the projection is H*P per step
    assert proj.macs == 4 * 2 * 8 * 20 + 4 * 2 * 3 * 20 + 4 * 2 * 5 * 3 and proj.flops == 2 * proj.macs
    assert proj.hparams["kernel"] == "aten"


def test_initial_state_given_at_call_time_reaches_the_formula():
    assert _row(Recur(init=True), (4, 8)).hparams["initial_state"]
    assert not _row(Recur(), (4, 8)).hparams["initial_state"]


def test_fused_lstm_saved_bytes_by_hand():
    """oneDNN's LSTM in training, B=2, T=4, I=8, H=5, batch_first: the kernel's time-major copy of
    the input (T*B*I floats), the zero h_0 and c_0 (B*H each), its output (T*B*H, the module's
    output), h_T and c_T (B*H each) and the workspace: seven parts of at most a page (gates
    4*2*32 floats, h_t 4*2*16, five state buffers of 2*5*2 rows of 16 or 5 floats): 7 * 4096 bytes."""
    from archstat.analyses.memory import saved_per_row
    from archstat.engine.analyze import analyze_rows

    rows = analyze_rows(Recur().train(), (4, 8), batch=2, mode="train")
    saved = saved_per_row(rows)
    index = [i for i, k in enumerate(rows.df["kind"]) if k == "recurrent"][0]
    assert saved["saved_known"].iloc[index]
    floats = 4 * 2 * 8 + 2 * (2 * 5) + 4 * 2 * 5 + 2 * (2 * 5)
    assert saved["saved_bytes"].iloc[index] == 4 * floats + 7 * 4096


def test_recurrent_saved_bytes_off_the_cpu_are_unknown():
    """On CUDA cuDNN fuses LSTM, GRU and RNN with a reserve space of its own: '?', not the CPU's numbers."""
    from archstat.analyses.memory import saved_per_row
    from archstat.engine.analyze import analyze_rows

    for cls in ("LSTM", "GRU"):
        rows = analyze_rows(Recur(cls).train(), (4, 8), batch=2, mode="train")
        index = [i for i, k in enumerate(rows.df["kind"]) if k == "recurrent"][0]
        assert saved_per_row(rows)["saved_known"].iloc[index]
        assert not saved_per_row(rows, device="cuda")["saved_known"].iloc[index]


@pytest.mark.parametrize("build", [
    lambda: Recur(num_layers=2, dropout=0.2).train(),  # dropout between layers in training
    lambda: Recur().half(),
])
def test_variants_not_modelled_are_flagged(build):
    model = build()
    dtype = next(model.parameters()).dtype
    df = archstat.analyze(model, (4, 8), batch=2, dtype=dtype, mode="train" if model.training else "eval")
    assert df.attrs["partial"] and not df[df.op == "LSTM"].iloc[0].supported


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_recurrent_validates(name, mode):
    build, shape = CASES[name]
    torch.manual_seed(0)
    df = validated(build(), shape, mode)
    assert df.attrs["engine"] == "fx"  # so that the live bytes (eval) are checked too
    if mode == "eval":
        assert df[df.kind == "recurrent"]["live_ok"].all()


@pytest.mark.slow
def test_inference_transients_over_the_variants():
    """The replayed allocations against the dispatch-level tracker validate uses, on every mix of
    kind, layers (1-3), direction, batch_first, proj_size, given states, dtype, steps (1, 3) and bias."""
    import itertools

    from torch.utils._pytree import tree_leaves

    from archstat.formulas import CallInputs
    from archstat.formulas.recurrent import recurrent_module
    from archstat.spec import TensorSpec
    from archstat.validation.live_storages import LiveStorages, existing_storages

    wrong = []
    for cls, layers, bi, bf, proj, init, dtype, steps, bias in itertools.product(
            ["LSTM", "GRU", "RNN"], [1, 2, 3], [False, True], [False, True], [0, 3], [False, True],
            [torch.float32, torch.float64], [1, 3], [True, False]):
        if proj and cls != "LSTM":
            continue
        kw = {"num_layers": layers, "bidirectional": bi, "batch_first": bf, "bias": bias,
              **({"proj_size": proj} if proj else {})}
        m = getattr(nn, cls)(6, 5, **kw).to(dtype).eval()
        x = torch.randn((2, steps, 6) if bf else (steps, 2, 6), dtype=dtype)
        args: list = [x]
        if init:
            h0 = torch.randn((2 if bi else 1) * layers, 2, proj or 5, dtype=dtype)
            args.append((h0, torch.randn(h0.shape[0], 2, 5, dtype=dtype)) if cls == "LSTM" else h0)
        known = existing_storages(m, x) | {a.untyped_storage().data_ptr() for a in tree_leaves(args[1:])}
        tracker = LiveStorages(known, 0)
        with torch.no_grad(), tracker:
            out = m(*args)
        real = tracker.peak - sum(o.untyped_storage().nbytes() for o in tree_leaves(out))
        specs = [TensorSpec.of(a) if isinstance(a, torch.Tensor) else tuple(map(TensorSpec.of, a)) for a in args]
        cost = recurrent_module(m, CallInputs(tree_leaves(specs), tuple(specs), {}))
        shapes = [list(o.shape) for o in tree_leaves(out)] == [list(o.shape) for o in tree_leaves(cost.out)]
        if cost.work["transient_bytes"] != real or not shapes:
            wrong.append((cls, kw, init, dtype, steps, cost.work["transient_bytes"], real))
    assert not wrong, wrong
