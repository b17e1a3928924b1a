"""einsum, baddbmm and addmm: table-driven rows (worked out by hand) and validate in eval and train."""
import logging

import pytest
import torch
from torch import nn

import archstat
from archstat.formulas.contraction import parse_einsum
from archstat.validation.validate import validate
from _validated import validated

logging.getLogger("fvcore").setLevel(logging.ERROR)


class EinsumWithWeight(nn.Module):
    """``einsum(equation, linear(x), w)``: the input passes a Linear first, so that it needs a gradient."""

    def __init__(self, equation: str, w_shape: tuple, features: int) -> None:
        super().__init__()
        self.equation, self.lin = equation, nn.Linear(features, features)
        self.w = nn.Parameter(torch.randn(*w_shape))

    def forward(self, x):
        return torch.einsum(self.equation, self.lin(x), self.w)


class EinsumAttention(nn.Module):
    """Attention written with einsum: scores ``bqd,bkd->bqk``, softmax, then ``bqk,bkd->bqd``."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.q, self.k = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x):
        scores = torch.einsum("bqd,bkd->bqk", self.q(x), self.k(x)).softmax(-1)
        return torch.einsum("bqk,bkd->bqd", [scores, x])  # the list form


class BiasedScores(nn.Module):
    """``baddbmm(bias, q, x^T)``: Swin-style scores with a learnt bias, and ``addmm`` of a flat input."""

    def __init__(self, d: int, length: int) -> None:
        super().__init__()
        self.q, self.bias = nn.Linear(d, d), nn.Parameter(torch.zeros(1, length, length))
        self.w, self.b = nn.Parameter(torch.randn(length, 4)), nn.Parameter(torch.zeros(4))

    def forward(self, x):
        scores = torch.baddbmm(self.bias, self.q(x), x.transpose(1, 2))  # N x L x L
        return torch.addmm(self.b, scores.flatten(0, 1), self.w)  # (N*L) x 4


# (module, input per sample, the contraction row's output per sample, its MACs at batch 1)
CASES = [
    # b=1, l=5, d=8, e=6: every index once: 1*5*8*6
    (EinsumWithWeight("bld,de->ble", (8, 6), 8), (5, 8), [5, 6], 5 * 8 * 6),
    # ellipsis over (b, l): 1*5 * d 8 * e 3
    (EinsumWithWeight("...d,de->...e", (8, 3), 8), (5, 8), [5, 3], 5 * 8 * 3),
    # implicit output (indices seen once, sorted): "bld,ed" -> "bel", so 6 x 5 per sample: 1*5*8*6
    (EinsumWithWeight("bld,ed", (6, 8), 8), (5, 8), [6, 5], 5 * 8 * 6),
    # scores of 7 tokens, d 4: b*q*k*d = 1*7*7*4
    (EinsumAttention(4), (7, 4), [7, 7], 7 * 7 * 4),
    # baddbmm: b*q*d*k = 1*6*3*6
    (BiasedScores(3, 6), (6, 3), [6, 6], 6 * 3 * 6),
]


@pytest.mark.parametrize("module, shape, out_shape, macs", CASES)
def test_contraction_row(module, shape, out_shape, macs):
    df = archstat.analyze(module, shape)
    row = df[df.kind == "matmul"].iloc[0]
    assert row.supported and row.out_shape == out_shape and row.macs == macs
    assert row.flops_flopcounter == 2 * macs  # one bmm (or mm) at the aten level


def test_fvcore_prices_einsum_and_addmm_but_not_baddbmm():
    df = archstat.analyze(BiasedScores(3, 6), (6, 3), convention="fvcore")
    bad, add = df[df.op == "baddbmm"].iloc[0], df[df.op == "addmm"].iloc[0]
    assert bad.flops == 0 and not bad.oracle_supported
    assert add.flops == add.macs == 6 * 6 * 4 and add.oracle_supported
    ein = archstat.analyze(EinsumAttention(4), (7, 4), convention="fvcore")
    assert list(ein[ein.op == "einsum"].flops) == [7 * 7 * 4] * 2


def test_einsum_equations_parse():
    assert parse_einsum("bhqd, bhkd -> bhqk", [4, 4]) == (["bhqd", "bhkd"], "bhqk")
    assert parse_einsum("...ij,jk", [4, 2]) == (["ABij", "jk"], "ABik")
    assert parse_einsum("ij,jk", [2, 2]) == (["ij", "jk"], "ik")


def test_einsum_without_a_contraction_is_flagged_not_zero():
    df = archstat.analyze(EinsumWithWeight("bld,ld->bld", (5, 8), 8), (5, 8))
    assert not df[df.op == "einsum"].iloc[0].supported and df.attrs["partial"]


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_contractions_validate(case, mode):
    module, shape, _, _ = CASES[case]
    torch.manual_seed(0)
    df = validated(module, shape, mode)


def test_fvcore_reads_a_large_einsum_rounded():
    """fvcore prices an einsum (other than two equations it knows) off numpy's einsum_path report,
    printed to 4 significant digits: 2*2*49*49*32 = 307,328 MACs read as 307,350.  The fvcore
    convention says so, exact against FlopCountAnalysis; the MACs stay exact."""
    import torch

    class Heads(torch.nn.Module):
        def forward(self, q):  # N x G x H x P x D
            return torch.einsum("bghid,bghjd->bghij", q, q * 2)

    df = validate(Heads(), (2, 2, 49, 32), batch=1, convention="fvcore")
    assert df.attrs["agree"], df.attrs["mismatches"]
    row = df[df.op == "einsum"].iloc[0]
    assert row.macs == 307_328 and row.flops == 307_350
