"""Inference peak memory: the live-bytes schedule by hand, and against the dispatch-level tracker."""
import pytest
import torch
from torch import nn

from archstat import analyze, validate
from archstat.analyses.live_memory import inference_peak, live_bytes
from archstat.models import get_model, model_info


def small() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(8 * 4 * 4, 10))


def test_schedule_by_hand():
    df = analyze(small(), (3, 8, 8))
    inp, conv, pooled, indices, fc = 3 * 64 * 4, 8 * 64 * 4, 8 * 16 * 4, 8 * 16 * 8, 10 * 4
    assert live_bytes(df) == [
        inp + conv,                      # conv writes its output next to the input
        inp + conv,                      # the in-place ReLU reuses it
        inp + conv + pooled + indices,   # max pooling also computes int64 argmax indices, then drops them
        inp + pooled,                    # flatten is a view; the conv output was last read by the pool
        inp + pooled + fc,
    ]
    peak = inference_peak(df)
    assert peak["peak_bytes"] == inp + conv + pooled + indices and peak["peak_name"] == "2 (MaxPool2d)"
    assert live_bytes(df, transients=False)[2] == inp + conv + pooled  # the floor: no op's own temporaries


def test_symbolic_tables_have_no_peak():
    assert inference_peak(analyze(small(), (3, 8, 8), symbolic=True)) is None


def test_residual_input_stays_alive_until_the_add():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            y = self.a(x)
            return self.b(y) + y

    df = analyze(Block(), (4, 6, 6))
    t = 4 * 36 * 4
    assert live_bytes(df) == [2 * t, 3 * t, 4 * t]  # input, y, b(y), and the sum while y is still read


@pytest.mark.parametrize("name", ["alexnet", "alexnet_2012", "googlenet", "resnet18"])
def test_zoo_peak_equals_the_tracker(name):
    """LocalResponseNorm's temporaries, max-pool indices, residual adds: every row, exactly."""
    shape = model_info(name).min_input if name == "resnet18" else model_info(name).default_input
    df = validate(get_model(name), tuple(shape))
    assert df.attrs["checks"]["live_ok"] == {"ok": len(df), "failed": 0, "skipped": 0}
    ours, real = df.attrs["totals"]["inference_peak"]
    assert ours == real > 0


def test_meta_engine_keeps_unread_values_to_the_end():
    """A forward fx cannot trace runs on the meta engine, which does not report the model's outputs:
    every value no row reads is kept to the end, which here is exactly the fx schedule."""
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.pool = nn.Conv2d(3, 8, 3, padding=1), nn.MaxPool2d(2)

        def forward(self, x):
            y = self.conv(x)
            return self.pool(y) if y.shape[-1] > 4 else y  # Python on a shape: not fx-traceable

    meta = analyze(Branchy(), (3, 8, 8))
    assert meta.attrs["engine"] == "meta" and meta.attrs["outputs"] is None
    traced = analyze(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.MaxPool2d(2)), (3, 8, 8))
    assert live_bytes(meta) == live_bytes(traced)


class Picky(nn.Module):
    """Multi-output ops whose outputs are not all read: max pooling's returned indices, max along a
    dim, attention's averaged weights (the fused inference kernel's second output), a returned tuple part."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x):
        y, _ = self.pool(self.conv(x))                 # indices dropped at once
        v = y.max(dim=3).values                       # (N, 8, 4): indices dropped at once
        t = v.transpose(1, 2)                         # 4 tokens of width 8
        a = self.mha(t, t, t)[0]                      # weights dropped at once
        return a.mean(1), y.min(dim=1)                # min's values and indices both returned


def test_unread_outputs_of_a_multi_output_op_die_at_once():
    net = Picky().eval()
    df = analyze(net, (3, 8, 8))
    pool = df[df.op == "MaxPool2d"].iloc[0]
    pooled, indices = 2 * 8 * 4 * 4 * 4, 2 * 8 * 4 * 4 * 8  # batch 1: 8x4x4 values (fp32) and indices (int64)
    assert pool.out_part_bytes == [pooled // 2, indices // 2]
    after = df.index[df.op == "MaxPool2d"][0] + 1
    live = live_bytes(df)
    assert live[after] - live[after - 1] < indices // 2  # the next row no longer holds the indices
    v = validate(net, (3, 8, 8), batch=2)
    assert v.attrs["agree"], v.attrs["mismatches"]
    assert v.attrs["checks"]["live_ok"] == {"ok": len(v), "failed": 0, "skipped": 0}  # attention's row too
