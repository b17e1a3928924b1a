"""Single ops against fvcore's own verdict: the fvcore convention's numbers and its
"oracle unsupported" marks must be what FlopCountAnalysis counts and lists in unsupported_ops()."""
import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archstat
from archstat.validation.validate import validate

from _call import Call

logging.getLogger("fvcore").setLevel(logging.ERROR)


CASES = {  # name: (module, input per sample, fvcore handles it)
    "conv": (nn.Conv2d(3, 4, 3), (3, 8, 8), True),
    "conv_same": (nn.Conv2d(3, 4, 3, padding="same"), (3, 8, 8), False),  # aten::_convolution_mode
    "conv_transpose": (nn.ConvTranspose2d(3, 4, 3, stride=2), (3, 5, 5), True),
    "conv1d": (nn.Conv1d(3, 4, 3, groups=1), (3, 9), True),
    "linear_3d": (nn.Linear(6, 5), (4, 6), True),
    "bn_affine": (nn.BatchNorm2d(3), (3, 6, 6), True),
    "bn_plain": (nn.BatchNorm2d(3, affine=False), (3, 6, 6), True),
    "bn_no_stats": (nn.BatchNorm2d(3, track_running_stats=False), (3, 6, 6), True),
    "group_norm": (nn.GroupNorm(1, 3), (3, 6, 6), True),
    "layer_norm": (nn.LayerNorm([6, 6]), (3, 6, 6), True),
    "instance_norm": (nn.InstanceNorm2d(3, affine=True), (3, 6, 6), True),
    "adaptive_avg_2d": (nn.AdaptiveAvgPool2d(2), (3, 7, 7), True),
    "adaptive_avg_1d": (nn.AdaptiveAvgPool1d(2), (3, 7), False),
    "adaptive_max": (nn.AdaptiveMaxPool2d(2), (3, 7, 7), False),
    "upsample_nearest": (nn.Upsample(scale_factor=2), (3, 4, 4), True),
    "upsample_bilinear": (nn.Upsample(scale_factor=2, mode="bilinear"), (3, 4, 4), True),
    "upsample_1d": (nn.Upsample(scale_factor=2), (3, 4), False),
    "max_pool": (nn.MaxPool2d(2), (3, 6, 6), False),
    "avg_pool": (nn.AvgPool2d(2), (3, 6, 6), False),
    "relu": (nn.ReLU(), (3, 4, 4), True),
    "relu_inplace": (nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU(inplace=True)), (3, 4, 4), True),
    "relu6": (nn.ReLU6(), (3, 4, 4), False),
    "gelu": (nn.GELU(), (3, 4, 4), False),
    "prelu": (nn.PReLU(), (3, 4, 4), False),
    "dropout": (nn.Dropout(0.5), (3, 4, 4), True),
    "dropout2d": (nn.Dropout2d(0.5), (3, 4, 4), False),  # aten::feature_dropout, even in eval
    "alpha_dropout": (nn.AlphaDropout(0.5), (3, 4, 4), False),
    "lrn": (nn.LocalResponseNorm(3), (3, 4, 4), False),
    "flatten": (nn.Flatten(), (3, 4, 4), True),
    "identity": (nn.Identity(), (3, 4, 4), True),
    "softmax": (nn.Softmax(1), (3, 4, 4), False),
    "add": (Call(lambda x: x + x), (3, 4, 4), False),
    "clamp": (Call(lambda x: torch.clamp(x, 0, 1)), (3, 4, 4), True),  # on fvcore's ignore list
    "mean": (Call(lambda x: x.mean((2, 3))), (3, 4, 4), False),
    "cat": (Call(lambda x: torch.cat([x, x], 1)), (3, 4, 4), True),
    "matmul": (Call(lambda x: x @ x.transpose(-1, -2)), (3, 4, 5), True),
    "view": (Call(lambda x: x.view(x.size(0), -1)), (3, 4, 4), True),
    "flatten_2d_is_identity": (nn.Sequential(nn.Flatten(), nn.Flatten()), (3, 4, 4), True),
    "pixel_shuffle": (nn.PixelShuffle(2), (8, 3, 3), False),
    "pixel_unshuffle": (Call(lambda x: F.pixel_unshuffle(x, 2)), (2, 4, 6), False),
    "interpolate_down": (Call(lambda x: F.interpolate(x, scale_factor=0.5, mode="bilinear")), (3, 7, 9), True),
    "interpolate_size": (Call(lambda x: F.interpolate(x, size=(5, 3))), (3, 7, 9), True),
    "interpolate_1d": (Call(lambda x: F.interpolate(x, scale_factor=3)), (3, 5), False),
    # values and indices, each a storage of its own; the unused indices die at once
    "max_dim": (Call(lambda x: x.max(dim=1)[0].unsqueeze(1) + x.min(2, keepdim=True).values), (3, 4, 4), False),
    "max_all": (Call(lambda x: x * torch.max(x)), (3, 4, 4), False),
    "max_pair": (Call(lambda x: torch.max(x, x * 2)), (3, 4, 4), False),
    # every F.pad mode is traced as aten::pad, which fvcore has no handle for
    "zero_pad": (nn.ZeroPad2d((1, 2, 0, 1)), (3, 4, 5), False),
    "reflect_pad": (nn.ReflectionPad2d(1), (3, 4, 5), False),
    "replicate_pad": (Call(lambda x: F.pad(x, (1, 1, 2, 0), mode="replicate")), (3, 4, 5), False),
    "circular_pad": (nn.CircularPad2d(1), (3, 4, 5), False),
    # the conv pads a copy (alive while it runs, and what backward keeps), then convolves it
    "conv_reflect": (nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), (3, 6, 6), False),
    "conv_circular": (nn.Sequential(nn.Conv2d(3, 3, 1), nn.Conv2d(3, 4, 3, padding=2, padding_mode="circular")),
                      (3, 6, 6), False),
    "flip": (nn.Sequential(nn.Conv2d(3, 3, 1), Call(lambda x: x.flip(-1))), (3, 4, 4), False),
    "roll": (nn.Sequential(nn.Conv2d(3, 3, 1), Call(lambda x: torch.roll(x, 1, 2))), (3, 4, 4), True),
    # a bool mask and a fresh fill need no gradient: the multiply keeps only them, not x
    "compare": (nn.Sequential(nn.Conv2d(3, 3, 1), Call(lambda x: x * (x < 0.5))), (3, 4, 4), False),
    "ones_like": (nn.Sequential(nn.Conv2d(3, 3, 1), Call(lambda x: x * torch.ones_like(x))), (3, 4, 4), False),
    "softmax2d": (nn.Sequential(nn.Conv2d(3, 3, 1), nn.Softmax2d()), (3, 4, 4), False),  # keeps its output
    # four kernels in one row: the clamped norm is alive during the division; backward keeps 3 tensors
    "normalize": (nn.Sequential(nn.Conv2d(3, 3, 1), Call(lambda x: F.normalize(x, dim=1))), (3, 4, 4), False),
    # casts return the tensor itself when nothing changes, else a new one; clone/repeat copy
    "to_same_dtype": (nn.Sequential(nn.Conv2d(3, 3, 1), Call(lambda x: x.to(torch.float32) * 2)), (3, 4, 4),
                      False),
    "half_then_float": (nn.Sequential(nn.Conv2d(3, 3, 1), Call(lambda x: x.half().float())), (3, 4, 4), True),
    "type_as": (nn.Sequential(nn.Conv2d(3, 3, 1), Call(lambda x: x.double().type_as(x))), (3, 4, 4), True),
    "clone": (nn.Sequential(nn.Conv2d(3, 3, 1), Call(lambda x: x.clone())), (3, 4, 4), False),
    "repeat": (nn.Sequential(nn.Conv2d(3, 3, 1), Call(lambda x: x.repeat(1, 2, 1, 3))), (3, 4, 4), False),
    "expand_as": (nn.Sequential(nn.Conv2d(3, 3, 1),
                                Call(lambda x: torch.cat([x.mean((2, 3), keepdim=True).expand_as(x), x], 1))),
                  (3, 4, 4), False),
    "max_pool_indices_unused": (Call(lambda x: F.max_pool2d(x, 2, return_indices=True)[0] * 2), (3, 6, 6),
                                False),
}


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_single_op_matches_fvcore_and_flopcounter(name, mode):
    module, shape, handled = CASES[name]
    df = validate(nn.Sequential(module), shape, batch=2, mode=mode)
    assert df.attrs["agree"], df.attrs["mismatches"]
    # fully costed: an op that lost its formula is skipped by the checks, so "agree" alone passes
    assert not df.attrs["partial"] and not df.attrs["unsupported"], df.attrs["unsupported"]
    assert df["supported"].all()
    fv_unsupported = set(df.attrs["fvcore_unsupported"]) - ({"aten::add_"} if mode == "train" else set())
    assert bool(fv_unsupported) == (not handled), df.attrs["fvcore_unsupported"]
    assert bool(df.attrs["oracle_unsupported"]) == (not handled)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_bare_module_goes_through_the_meta_engine(mode):
    """nn.BatchNorm2d's own forward has Python checks fx cannot trace: the functional batch_norm
    inside it is the row, its weights are counted from the real call."""
    df = validate(nn.BatchNorm2d(3), (3, 6, 6), batch=2, mode=mode)
    # in training, `num_batches_tracked.add_(1)` runs first: a row of its own
    assert df.attrs["engine"] == "meta" and list(df.op) == (["add", "batch_norm"] if mode == "train" else ["batch_norm"])
    assert df.attrs["agree"], df.attrs["mismatches"]
    assert df.real_params.iloc[-1] == 6


def test_mismatch_names_layer_and_both_values(monkeypatch):
    """A wrong formula is caught: the check fails and the message names the layer and both numbers."""
    from archstat.formulas import MODULE_FORMULAS

    real = MODULE_FORMULAS[nn.Conv2d]

    def off_by_one(m, inputs):
        cost = real(m, inputs)
        cost.macs += 1
        return cost

    monkeypatch.setitem(MODULE_FORMULAS, nn.Conv2d, off_by_one)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    df = validate(net, (3, 6, 6))
    assert not df.attrs["agree"]
    macs = 2 * 0 + 4 * 4 * 4 * 3 * 9
    assert any(m.startswith("layer 0 (Conv2d, call 0): MACs of module: archstat "
                            f"{macs + 1:,} vs fvcore {macs:,}") for m in df.attrs["mismatches"]), df.attrs["mismatches"]
    assert df.attrs["checks"]["macs_ok"]["failed"] >= 1


def test_wrong_shape_is_caught(monkeypatch):
    from archstat.formulas import MODULE_FORMULAS

    real = MODULE_FORMULAS[nn.MaxPool2d]

    def wrong(m, inputs):
        cost = real(m, inputs)
        cost.out = cost.out.with_shape((*cost.out.shape[:-1], cost.out.shape[-1] + 1))
        return cost

    monkeypatch.setitem(MODULE_FORMULAS, nn.MaxPool2d, wrong)
    df = validate(nn.Sequential(nn.MaxPool2d(2)), (3, 6, 6))
    assert not df.attrs["agree"]
    assert any("output shape" in m and "[3, 3, 4]" in m and "[3, 3, 3]" in m for m in df.attrs["mismatches"])


class Unknown(nn.Module):
    """An op archstat has no formula for (torch.cumsum): flagged, totals partial, checks skipped."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return torch.cumsum(self.conv(x), 1)


def test_unsupported_op_makes_validate_partial():
    df = validate(Unknown(), (3, 6, 6))
    assert df.attrs["partial"] and df.attrs["unsupported"] == ["cumsum (<root>)"]
    row = df[df.op == "cumsum"].iloc[0]
    assert row.shape_ok and row.params_ok and row.fvcore_ok is None
    assert df.attrs["checks"]["fvcore_ok"]["skipped"] >= 1
    assert df.attrs["agree"]  # everything that can be checked agrees


def test_meta_model_and_missing_cuda_are_one_line_errors():
    with torch.device("meta"):
        net = nn.Conv2d(3, 4, 3)
    with pytest.raises(archstat.ArchstatError, match="meta device"):
        validate(net, (3, 6, 6))
    if not torch.cuda.is_available():
        with pytest.raises(archstat.ArchstatError, match="CUDA is not available"):
            validate(nn.Conv2d(3, 4, 3), (3, 6, 6), device="cuda")


class Untraceable(nn.Module):
    """Data-dependent Python: fx fails, the meta engine analyses it, validate hooks the real model."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 1)

    def forward(self, x):
        y = F.relu(self.a(x))
        if y.shape[-1] > 2:  # fine for fx? no: a Proxy in a Python `if`
            y = self.b(y)
        return torch.flatten(y, 1)


def test_model_fx_cannot_trace_is_validated_through_hooks():
    df = validate(Untraceable(), (3, 8, 8))
    assert df.attrs["engine"] == "meta"
    assert df.attrs["agree"], df.attrs["mismatches"]
    assert list(df.op) == ["Conv2d", "relu", "Conv2d", "flatten"]
