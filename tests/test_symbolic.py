"""Closed forms: substituting any valid size into the symbolic table equals the numeric table."""
import sympy
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import archstat
from archstat.engine.analyze import SYMBOLS

N, H, W = SYMBOLS["N"], SYMBOLS["H"], SYMBOLS["W"]


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 5, stride=2, padding=1), nn.ReLU(),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(8, 8, (1, 3), padding=(0, 1), dilation=1, groups=2), nn.BatchNorm2d(8),
        nn.AvgPool2d(2), nn.AdaptiveAvgPool2d((2, 3)), nn.Flatten(), nn.Linear(48, 10),
    )


SYM = archstat.analyze(small_cnn(), (3, 32, 32), symbolic=True, convention="fvcore")


def substitute(value, n, h, w):
    if isinstance(value, sympy.Basic):
        return int(value.subs({N: n, H: h, W: w}))
    if isinstance(value, list):
        return [substitute(v, n, h, w) for v in value]
    return value


@given(st.integers(1, 4), st.integers(16, 80), st.integers(16, 80))
def test_symbolic_equals_numeric(n, h, w):
    num = archstat.analyze(small_cnn(), (3, h, w), batch=n, convention="fvcore")
    assert len(num) == len(SYM)
    for col in ("out_shape", "macs", "flops", "act_bytes", "params"):
        assert [substitute(v, n, h, w) for v in SYM[col]] == list(num[col]), col
    for key in ("macs", "flops", "act_bytes"):
        assert substitute(SYM.attrs["total"][key], n, h, w) == num.attrs["total"][key]


def test_symbolic_conv_is_a_closed_form():
    df = archstat.analyze(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1)), (3, 32, 32), symbolic=True)
    assert df.out_shape[0] == [8, H, W]
    assert sympy.simplify(df.macs[0] - 8 * 27 * N * H * W) == 0
