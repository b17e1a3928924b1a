"""Every op with a formula has a test case, and the formulas behind the rarely used ones are checked.

* ``test_every_registered_op_has_a_case`` is registry-driven: it analyses every validated case
  (``test_validate_ops``, ``test_validate_patterns`` and the composite nets below) and fails when a
  key of ``MODULE_FORMULAS`` or ``FUNCTION_FORMULAS`` (``archstat list --ops``) is costed by none.
* The composite nets pack many ops into one model each, validated against the real run, fvcore and
  FlopCounterMode, fully costed (no unsupported row).
* Transposed convs (grouped, dilated, output padding) against FlopCounterMode and PyTorch's shapes;
  symbolic pooling with padding and ceil_mode against PyTorch's real output size.
"""
from __future__ import annotations

import logging
import warnings

import pytest
import sympy
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import archstat
import test_formulas_attention
import test_formulas_contraction
import test_formulas_embedding
import test_formulas_fold
import test_formulas_indexing
import test_formulas_multihead
import test_formulas_recurrent
import test_formulas_unfold
import test_fx_wrapped
import test_validate_ops
import test_validate_patterns
from archstat.formulas import FUNCTION_FORMULAS, MODULE_FORMULAS, registered
from archstat.validation.validate import validate

logging.getLogger("fvcore").setLevel(logging.ERROR)


class Elementwise(nn.Module):
    """Functional activations, arithmetic, comparisons, reductions, views and fills on N x 4 x 6 x 6."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1)
        self.slope = nn.Parameter(torch.full((4,), 0.2))

    def forward(self, x):
        x = self.conv(x)
        acts = [torch.abs(x), F.celu(x), F.elu(x), F.gelu(x), F.hardsigmoid(x), F.hardswish(x), F.hardtanh(x),
                F.leaky_relu(x), F.log_softmax(x, 1), F.mish(x), F.prelu(x, self.slope), F.relu(x), F.relu6(x),
                F.selu(x), torch.sigmoid(x), F.silu(x), F.softmax(x, 1), F.softplus(x), torch.tanh(x)]
        y = torch.stack(acts[:4], 0).sum(0) + torch.concat(acts[4:8], 1)[:, :4] + torch.concatenate(acts[8:], 1)[:, 4:8]
        pos = torch.exp(y).clamp(0.5, 2)
        z = torch.log(pos) + torch.sqrt(pos) + torch.rsqrt(pos) - (-pos) + pos ** 2 + torch.div(pos, 2) + pos / 3
        z = z + pos.detach() // 1 + (1 - pos) + torch.sub(pos, 1) + torch.rsub(pos, 1) + torch.where(pos > 1, pos, z)
        z = z + torch.maximum(z, pos) + torch.minimum(z, pos)
        masks = [z == pos, z != pos, z >= pos, z <= pos, z < pos]
        z = sum((z * m for m in masks), z) + torch.amax(z, 1, keepdim=True) + torch.amin(z, 1, keepdim=True) + z.sum(1, keepdim=True)
        z = z + z.detach().contiguous() + torch.zeros_like(z) + torch.full_like(z, 2) + (torch.empty_like(z) > 0) * 0.0
        z = z + 0 * torch.rand_like(z) + 0 * torch.randn_like(z)
        a, b = torch.split(z, 2, 1)
        c, d = torch.chunk(z, 2, 1)
        flat = torch.flatten(a + b + c + d, 1)  # N x 72
        m = flat[:, :36].view(-1, 6, 6)[0].t().squeeze()
        return flat.sum(1) + m.sum()


class Functional(nn.Module):
    """Functional convs, pools, norms, dropouts, matrix products, resizes and casts."""

    def __init__(self) -> None:
        super().__init__()
        self.w1, self.w2 = nn.Parameter(torch.rand(4, 2, 3)), nn.Parameter(torch.rand(4, 2, 3, 3))
        self.w3, self.lin = nn.Parameter(torch.rand(4, 4, 1, 3, 3)), nn.Parameter(torch.rand(5, 16))
        self.mean, self.var = nn.Parameter(torch.zeros(4), requires_grad=False), nn.Parameter(torch.ones(4),
                                                                                              requires_grad=False)

    def forward(self, x):  # N x 4 x 8 x 8
        y = F.conv2d(x, self.w2, padding=1, groups=2, dilation=1)
        y = F.batch_norm(y, self.mean, self.var, training=False) + F.group_norm(y, 2)
        y = F.dropout(y, 0.1, self.training) + F.dropout2d(y, 0.1, self.training) + F.alpha_dropout(y, 0.1, self.training)
        v = y.unsqueeze(2)  # N x 4 x 1 x 8 x 8
        v = F.dropout3d(F.conv3d(v, self.w3, padding=(0, 1, 1)), 0.1, self.training)
        v = F.avg_pool3d(v, (1, 2, 2)) + F.max_pool3d(v, (1, 2, 2)) + F.max_pool3d(v, (1, 2, 2), return_indices=True)[0]
        v = v + F.adaptive_avg_pool3d(v, (1, 4, 4)) + F.adaptive_max_pool3d(v, (1, 4, 4))
        s = v.flatten(2)  # N x 4 x 16
        s = F.dropout1d(F.conv1d(s, self.w1, padding=1, groups=2), 0.1, self.training)
        s = F.avg_pool1d(s, 2) + F.max_pool1d(s, 2) + F.max_pool1d(s, 2, return_indices=True)[0]
        s = s + F.adaptive_avg_pool1d(s, 8) + F.adaptive_max_pool1d(s, 8)  # N x 4 x 8
        img = F.avg_pool2d(y, 2) + F.max_pool2d(y, 2) + F.adaptive_avg_pool2d(y, 4) + F.adaptive_max_pool2d(y, 4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            big = F.upsample(img, scale_factor=2) + F.upsample_nearest(img, scale_factor=2) + \
                F.upsample_bilinear(img, scale_factor=2)
        img = F.pixel_shuffle(torch.cat([img] * 4, 1), 2) + big  # N x 4 x 8 x 8
        flat = img.flatten(1)[:, :16]
        # (mm of a parameter's transposed view: archstat counts the view as saved, autograd does not)
        out = F.linear(flat, self.lin) + torch.mm(flat.t(), flat).sum() + torch.bmm(s, s.transpose(1, 2)).sum((1, 2))[:, None]
        return out.bfloat16().float()


class Modules(nn.Module):
    """The module classes the op tables leave out: 1-d and 3-d layers, more activations and pads."""

    def __init__(self) -> None:
        super().__init__()
        self.one = nn.Sequential(nn.Conv1d(4, 4, 3, padding=1), nn.BatchNorm1d(4), nn.InstanceNorm1d(4),
                                 nn.ConvTranspose1d(4, 4, 3, padding=1), nn.MaxPool1d(2), nn.AvgPool1d(1),
                                 nn.AdaptiveMaxPool1d(4), nn.Dropout1d(0.1))
        self.three = nn.Sequential(nn.Conv3d(4, 4, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(4),
                                   nn.InstanceNorm3d(4, affine=True), nn.ConvTranspose3d(4, 4, 1),
                                   nn.MaxPool3d((1, 2, 2)), nn.AvgPool3d(1), nn.AdaptiveAvgPool3d((1, 2, 2)),
                                   nn.AdaptiveMaxPool3d((1, 2, 2)), nn.Dropout3d(0.1))
        self.acts = nn.Sequential(nn.ConstantPad2d(1, 0.5), nn.Conv2d(4, 4, 3), nn.CELU(), nn.ELU(), nn.Hardsigmoid(), nn.Hardtanh(), nn.LeakyReLU(),
                                  nn.Mish(), nn.SELU(), nn.SiLU(), nn.Sigmoid(), nn.Softplus(), nn.Tanh(),
                                  nn.LogSoftmax(1), nn.ReplicationPad2d(1), nn.PixelUnshuffle(2))

    def forward(self, x):  # N x 4 x 8 x 8
        a = self.one(x.flatten(2)).flatten(1)            # N x 16
        b = self.three(x.unsqueeze(2)).flatten(1)        # N x 16
        c = self.acts(x).flatten(1)                      # N x 16 x 5 x 5 -> N x 400
        return a.sum(1) + b.sum(1) + c.sum(1)


COMPOSITES = {"elementwise": (Elementwise(), (4, 6, 6)), "functional": (Functional(), (4, 8, 8)),
              "modules": (Modules(), (4, 8, 8))}


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_composite_validates_fully_costed(name: str, mode: str):
    model, shape = COMPOSITES[name]
    df = validate(model, shape, batch=2, mode=mode)
    assert df.attrs["agree"], df.attrs["mismatches"]
    assert not df.attrs["partial"] and not df.attrs["unsupported"], df.attrs["unsupported"]


def _all_cases() -> dict:
    cases = {f"ops:{k}": (v[0], v[1]) for k, v in test_validate_ops.CASES.items()}
    cases.update({f"patterns:{k}": v for k, v in test_validate_patterns.CASES.items()})
    cases.update(COMPOSITES)
    # the attention, multihead, contraction, indexing and unfold files validate each of these in eval and train
    cases.update({f"contraction:{i}": (c[0], c[1]) for i, c in enumerate(test_formulas_contraction.CASES)})
    cases.update({f"attention:{k}": (build(), shape) for k, (build, shape) in test_formulas_attention.CASES.items()})
    cases.update({f"multihead:{k}": (build(), shape) for k, (build, shape) in test_formulas_multihead.CASES.items()})
    cases.update({f"recurrent:{k}": (build(), shape) for k, (build, shape) in test_formulas_recurrent.CASES.items()})
    cases.update({"embedding": (test_formulas_embedding.Lookup(), (6,)), "fold": (test_formulas_fold.FoldBack(), (3, 8, 8))})
    cases.update({"indexing:bias": (test_formulas_indexing.RelativeBias(), (2, 9, 9)),
                  "indexing:picks": (test_formulas_indexing.Picks(), (4, 6)),
                  "unfold": (test_formulas_unfold.PatchMixer(2, 1), (3, 8, 8)),
                  "wrapped": (test_fx_wrapped.build(), (8, 10)), "fills": (test_fx_wrapped.Fills(), (6,))})
    return cases


# Names the engine normalises before the registry lookup (trace's aliases, operator names), or
# wrappers whose inner call is the row: the registry has no key for them (a key would be dead), and
# the composite nets call each, so its target must cost the row (checked).
NORMALISED = {"concat": "cat", "concatenate": "cat", "truediv": "div", "upsample": "interpolate",
              "upsample_nearest": "interpolate", "upsample_bilinear": "interpolate"}


def _recording(registry: dict, used: set) -> dict:
    """The registry's formulas, wrapped to record which key priced a call."""
    def wrap(key, fn):
        def formula(*args):
            used.add(key)
            return fn(*args)
        return formula
    return {key: wrap(key, fn) for key, fn in registry.items()}


def test_every_registered_op_has_a_case():
    """Fails when an op gets a formula (``archstat list --ops``) but no validated case prices it."""
    used_fns: set = set()
    used_types: set = set()
    with registered(modules=_recording(MODULE_FORMULAS, used_types),
                    functions=_recording(FUNCTION_FORMULAS, used_fns)):
        for model, shape in _all_cases().values():
            archstat.analyze(nn.Sequential(model), shape)
    assert {v for v in NORMALISED.values()} <= used_fns
    assert not set(NORMALISED) & set(FUNCTION_FORMULAS), "dead registry keys: the engine never looks these up"
    missing_fns = sorted(set(FUNCTION_FORMULAS) - used_fns - set(NORMALISED))
    missing_types = sorted(t.__name__ for t in set(MODULE_FORMULAS) - used_types)
    assert not missing_fns and not missing_types, f"no case for functions {missing_fns}, modules {missing_types}"


TRANSPOSED = [  # (module, input per sample): grouped, dilated, strided, output padding, rectangular
    (nn.ConvTranspose2d(6, 4, 3, stride=2, groups=2), (6, 5, 5)),
    (nn.ConvTranspose2d(6, 9, (2, 3), stride=(1, 2), padding=(0, 1), dilation=(2, 3), groups=3), (6, 4, 7)),
    (nn.ConvTranspose2d(4, 4, 3, stride=3, dilation=2, output_padding=1, groups=4), (4, 3, 4)),
    (nn.ConvTranspose1d(4, 6, 5, stride=2, groups=2, dilation=2), (4, 7)),
    (nn.ConvTranspose3d(2, 4, (1, 3, 3), stride=(1, 2, 2), groups=2, output_padding=(0, 1, 0)), (2, 2, 3, 4)),
]


@pytest.mark.parametrize("i", range(len(TRANSPOSED)))
def test_transposed_conv_macs_against_flopcounter(i: int):
    module, shape = TRANSPOSED[i]
    x = torch.rand(2, *shape)
    with FlopCounterMode(display=False) as fc:
        out = module(x)
    row = archstat.analyze(nn.Sequential(module), shape, batch=2).iloc[0]
    assert list(row.out_shape) == list(out.shape[1:])
    assert 2 * int(row.macs) == fc.get_total_flops()


@given(k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2), d=st.integers(1, 2), ceil=st.booleans(),
       sizes=st.lists(st.tuples(st.integers(1, 30), st.integers(1, 30)), min_size=4, max_size=4))
@settings(max_examples=max(1, settings.default.max_examples * 3 // 4))
def test_symbolic_pool_size_matches_pytorch(k, s, p, d, ceil, sizes):
    """Closed-form pool sizes (padding, dilation, ceil_mode) substituted at random H, W."""
    if p > k // 2:
        p = k // 2  # PyTorch: padding at most half the kernel
    pool = nn.MaxPool2d(k, s, p, d, ceil_mode=ceil)
    sym = archstat.analyze(nn.Sequential(pool), (2, 16, 16), symbolic=True).iloc[0]
    H, W = sympy.Symbol("H", positive=True, integer=True), sympy.Symbol("W", positive=True, integer=True)
    for h, w in sizes:
        try:
            real = pool(torch.zeros(1, 2, h, w)).shape
        except RuntimeError:
            continue  # too small for PyTorch
        got = [int(sympy.sympify(e).subs({"H": h, "W": w}).subs({H: h, W: w})) for e in sym.out_shape[-2:]]
        assert got == list(real[-2:]), (h, w)


class PositionalPools(nn.Module):
    """Functional pools with every argument positional: dilation (max) and ceil_mode (avg) sit at index 4."""

    def forward(self, x):  # N x 2 x 9 x 11
        self.shapes = [F.max_pool2d(x, 3, 1, 1, 2)]  # dilation 2: 7 x 9
        self.shapes.append(F.max_pool2d(self.shapes[-1], 3, 1, 1, 1, False))
        self.shapes.append(F.avg_pool2d(self.shapes[-1], 2, 2, 0, True))  # ceil_mode: 4 x 5
        return self.shapes[-1]


def test_positional_pool_arguments_match_pytorch():
    net = PositionalPools()
    net(torch.zeros(2, 2, 9, 11))
    real = [list(t.shape[1:]) for t in net.shapes]
    df = archstat.analyze(PositionalPools(), (2, 9, 11), batch=2)
    assert [list(s) for s in df[df.op.isin(["max_pool2d", "avg_pool2d"])].out_shape] == real


class SymbolicInnerDims(nn.Module):
    """A matrix product whose inner sizes are two closed forms of one number: ceil(W/2) and
    floor((W-1)/2) + 1.  Symbolic mode must not call them different."""

    def forward(self, x):  # N x C x H x W
        a = F.max_pool2d(x, 2, ceil_mode=True)        # ... x ceil(W/2)
        b = F.avg_pool2d(x, 1, 2).transpose(-1, -2)   # ... x floor((W-1)/2)+1 x floor((H-1)/2)+1
        return a @ b


def test_symbolic_matmul_with_equal_closed_forms():
    df = archstat.analyze(SymbolicInnerDims(), (2, 8, 8), symbolic=True)
    num = archstat.analyze(SymbolicInnerDims(), (2, 7, 9), batch=3)
    row = df[df.op == "matmul"].iloc[0]
    subs = {s: v for s in sympy.sympify(row.macs).free_symbols for v in [{"N": 3, "H": 7, "W": 9}[str(s)]]}
    assert int(sympy.sympify(row.macs).subs(subs)) == int(num[num.op == "matmul"].iloc[0].macs)


class WidthMatmul(nn.Module):
    """``x @ w`` over the width: the inner size is the symbol W on the left, the number 8 on the right."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.rand(8, 5))

    def forward(self, x):
        return x @ self.w


def test_symbolic_matmul_with_a_symbolic_inner_size():
    sym = archstat.analyze(WidthMatmul(), (2, 3, 8), symbolic=True).iloc[0]
    real = archstat.analyze(WidthMatmul(), (2, 3, 8), batch=4).iloc[0]
    value = sympy.sympify(sym.macs).subs({s: {"N": 4, "H": 3, "W": 8}[str(s)] for s in sympy.sympify(sym.macs).free_symbols})
    assert int(value) == int(real.macs) == 4 * 2 * 3 * 8 * 5
