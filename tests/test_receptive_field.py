"""Receptive fields: the formula per layer, and the gradient of one output unit in check mode."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from torch import nn

from _random_nets import ChannelShuffle, Concat, Residual, random_cnn
from archstat.engine.analyze import analyze_rows
from archstat.models import get_model
from archstat.analyses.receptive_field import receptive_field
from archstat.validation.receptive_field_check import measure


def assert_measured(model, shape, formula_too=False, rows=None):
    res = measure(analyze_rows(model, shape), rows)
    assert len(res) and res.ok.notna().all(), res[res.ok.isna()]
    assert res.ok.all(), res[~res.ok.astype(bool)][["name", "op", "expected", "measured"]].to_string()
    if formula_too:
        assert res.formula_ok.all(), res[res.formula_ok == False][["name", "formula", "measured"]].to_string()  # noqa: E712
    return res


def test_three_stacked_3x3_convs_see_7x7():
    """The lecture's claim, with ReLUs in between (bypassed by the check) and an input big enough
    that the centre unit's field is not clipped."""
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU())
    rf = receptive_field(analyze_rows(net, (3, 15, 15)))
    assert list(rf.rf_h) == [3, 3, 5, 5, 7, 7] and list(rf.rf_w) == [3, 3, 5, 5, 7, 7]
    res = assert_measured(net, (3, 15, 15), formula_too=True)
    last = res.iloc[-1]
    assert last.measured == [(4, 10), (4, 10)]  # 7 pixels per side: a 7x7 field


def test_rectangular_kernels_give_rectangular_fields():
    net = nn.Sequential(nn.Conv2d(3, 4, (1, 7), padding=(0, 3)), nn.Conv2d(4, 4, (7, 1), padding=(3, 0)),
                        nn.MaxPool2d(3, 2, 1), nn.Conv2d(4, 4, 3, dilation=2))
    rf = receptive_field(analyze_rows(net, (3, 31, 31)))
    assert (rf.rf_h[0], rf.rf_w[0]) == (1, 7) and (rf.rf_h[1], rf.rf_w[1]) == (7, 7)
    assert (rf.rf_h[2], rf.jump_h[2], rf.pad_h[2]) == (9, 2, 4)
    assert (rf.rf_h[3], rf.jump_h[3]) == (9 + 4 * 2, 2)
    assert_measured(net, (3, 31, 31), formula_too=True)


def test_residual_and_concat_take_the_largest_path():
    body = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
    res_block = Residual(body, None, inplace_add=False, relu_after=True)
    with torch.no_grad():
        body[2].weight.zero_()  # a zero-initialised residual branch: check mode still sees through it
    incep = Concat([nn.Conv2d(4, 2, 1), nn.Sequential(nn.Conv2d(4, 2, 1), nn.Conv2d(2, 2, 5, padding=2)),
                    nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(4, 2, 1))])
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), res_block, incep)
    rf = receptive_field(analyze_rows(net, (3, 25, 25)))
    add = rf[rf.op == "add"].iloc[0]
    assert add.rf_h == 3 + 2 + 2  # the body's path, not the identity's 3
    cat = rf[rf.op == "cat"].iloc[0]
    assert cat.rf_h == 7 + 4 and cat.rf_w == 7 + 4  # the 5x5 branch
    assert_measured(net, (3, 25, 25), formula_too=True)


def test_flatten_sees_every_position_the_strides_reach():
    """AlexNet at 227: its strides never reach the last two columns, and the measurement agrees."""
    torch.manual_seed(0)
    net = get_model("alexnet", device=None)
    res = assert_measured(net, (3, 227, 227))
    flat = res[res.op == "flatten"].iloc[0]
    assert flat.measured == [(0, 224), (0, 224)] and flat.formula == [(0, 226), (0, 226)]
    rf = receptive_field(analyze_rows(net, (3, 227, 227)))
    assert rf[rf.kind == "conv"].iloc[-1][["rf_h", "jump_h"]].tolist() == [163, 16]


def test_dilation_can_step_over_the_input():
    """A dilated 1x4 'same' conv on a 1-pixel-wide map reads only padding: nothing reaches the input."""
    net = nn.Sequential(nn.AdaptiveAvgPool2d((3, 1)), nn.Conv2d(1, 1, (1, 4), padding="same", dilation=2))
    res = assert_measured(net, (1, 6, 6))
    assert res.iloc[-1].measured == [None, None]


@given(random_cnn(transposed=False))
@settings(max_examples=max(1, settings.default.max_examples // 2))  # half the profile; see also test_receptive_field_gradient
def test_random_cnn_fields_match_the_gradient(case):
    net, shape = case
    assert_measured(net, shape)


@pytest.mark.parametrize("name,shape,last", [("resnet18", (3, 64, 64), 435), ("googlenet", (3, 96, 96), None)])
def test_zoo_fields(name, shape, last):
    torch.manual_seed(0)
    net = get_model(name, device=None)
    rf = receptive_field(analyze_rows(net, shape))
    # the rows where a field changes (windows, merges) and the last: a backward each, not one per ReLU/BN
    changing = [i for i, kind in enumerate(rf.kind) if kind in ("conv", "pool", "adaptive_pool", "elementwise",
                                                                 "concat")]
    assert_measured(net, shape, rows=changing + [len(rf) - 1])
    if last:
        assert rf[rf.kind == "conv"].iloc[-1].rf_h == last  # ResNet-18's theoretical field


@pytest.mark.slow
@pytest.mark.parametrize("name", ["inception_v3", "inception_v4", "resnet50", "vgg16", "zfnet", "alexnet_2012"])
def test_zoo_fields_slow(name):
    from archstat.models import model_info

    torch.manual_seed(0)
    assert_measured(get_model(name, device=None), model_info(name).default_input)


@pytest.mark.parametrize("how", ["contiguous", "reshape", "flatten"])
def test_channel_shuffle_passes_the_field_through(how):
    """The shuffle's (groups, C/groups, H, W) views keep H and W: the conv after it sees 5x5, not
    the whole input (the spatial dims are the trailing two, whatever comes before them)."""
    net = nn.Sequential(nn.Conv2d(4, 4, 3), ChannelShuffle(2, how), nn.Conv2d(4, 4, 3))
    rf = receptive_field(analyze_rows(net, (4, 12, 12)))
    assert list(rf.rf_h)[-1] == 5 and not rf["global"].any()
    assert_measured(net, (4, 12, 12), formula_too=True)


def test_constant_padding_shifts_the_field_and_reflection_is_irregular():
    """F.pad adds its left pad to P (P' = P + left * J); a negative pad crops.  Reflect padding reads
    mirrored units at the borders, so its rows are marked irregular (not checked)."""
    class Padded(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.pad, self.b = nn.Conv2d(1, 1, 3), nn.ZeroPad2d((2, 0, 1, 3)), nn.Conv2d(1, 1, 3, stride=2)
            self.mirror, self.c = nn.ReflectionPad2d(1), nn.Conv2d(1, 1, 3)

        def forward(self, x):
            y = self.b(F.pad(self.pad(self.a(x)), (0, 1, -1, 0)))
            return self.c(self.mirror(y))

    rf = receptive_field(analyze_rows(Padded(), (1, 15, 15)))
    assert list(rf.pad[1]) == [1, 2] and list(rf.pad[2]) == [0, 2]  # +1 / +2 left; then -1 on H, 0 on W
    assert list(rf.regular) == [True] * 4 + [False] * 2
    res = measure(analyze_rows(Padded(), (1, 15, 15)))
    regular = res[res.regular]
    assert len(regular) == 4 and regular.ok.all() and regular.formula_ok.all()
