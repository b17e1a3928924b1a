"""Hypothesis: formula shapes, params and MACs against real PyTorch modules and fvcore."""
import logging

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import nn

import archstat

logging.getLogger("fvcore").setLevel(logging.ERROR)


def analyze_one(module, shape):
    return archstat.analyze(nn.Sequential(module), shape).iloc[0]


@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    c_in = groups * draw(st.integers(1, 3))
    c_out = groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    bias = draw(st.booleans())
    return nn.Conv2d(c_in, c_out, (kh, kw), stride, padding, dilation, groups, bias), (c_in, h, w)


def real_out_shape(module, shape):
    try:
        return list(module.eval()(torch.zeros(2, *shape)).shape[1:])
    except RuntimeError:
        return None  # PyTorch refuses: the input is too small


@given(conv_cases())
def test_conv_matches_pytorch(case):
    module, shape = case
    expected = real_out_shape(module, shape)
    if expected is None:
        with pytest.raises(archstat.ArchstatError, match="below 1"):
            analyze_one(module, shape)
        return
    row = analyze_one(module, shape)
    assert row.out_shape == expected
    assert row.params == sum(p.numel() for p in module.parameters())


@given(conv_cases())
def test_conv_macs_match_fvcore(case):
    from fvcore.nn import FlopCountAnalysis

    module, shape = case
    assume(real_out_shape(module, shape) is not None)
    fv = FlopCountAnalysis(module.eval(), torch.zeros(1, *shape))
    fv.unsupported_ops_warnings(False)
    assert analyze_one(module, shape).macs == fv.total()


@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 4), st.integers(1, 5), st.integers(1, 3),
       st.integers(0, 2), st.booleans(), st.sampled_from(["max", "avg"]))
def test_pool_matches_pytorch(h, w, k, s, d, p, ceil_mode, kind):
    assume(p <= k // 2)  # PyTorch's own rule for pooling padding
    if kind == "max":
        module = nn.MaxPool2d(k, s, p, dilation=d, ceil_mode=ceil_mode)
    else:
        assume(d == 1)
        module = nn.AvgPool2d(k, s, p, ceil_mode=ceil_mode)
    expected = real_out_shape(module, (2, h, w))
    if expected is None or 0 in expected:
        with pytest.raises(archstat.ArchstatError):
            analyze_one(module, (2, h, w))
        return
    assert analyze_one(module, (2, h, w)).out_shape == expected


@given(st.integers(1, 30), st.integers(1, 30), st.integers(1, 7), st.integers(1, 7))
def test_adaptive_pool_matches_pytorch(h, w, oh, ow):
    module = nn.AdaptiveAvgPool2d((oh, ow))
    assert analyze_one(module, (1, h, w)).out_shape == real_out_shape(module, (1, h, w))


@given(st.integers(1, 64), st.integers(1, 64), st.lists(st.integers(1, 5), min_size=0, max_size=2), st.booleans())
def test_linear_matches_pytorch_and_fvcore(fin, fout, lead, bias):
    from fvcore.nn import FlopCountAnalysis

    module = nn.Linear(fin, fout, bias=bias)
    shape = (*lead, fin)
    row = analyze_one(module, shape)
    assert row.out_shape == real_out_shape(module, shape)
    assert row.params == sum(p.numel() for p in module.parameters())
    fv = FlopCountAnalysis(module, torch.zeros(1, *shape))
    assert row.macs == fv.total()
