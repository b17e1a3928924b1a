"""Each convention equals its tool where a fuzz against fvcore once found gaps (issue 14)."""
import logging

import pytest
from torch import nn

from archstat import analyze
from archstat.validation.validate import validate

logging.getLogger("fvcore").setLevel(logging.ERROR)


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("padding, padding_mode, fvcore_flops", [
    ("same", "reflect", 55_296), ("valid", "reflect", 42_336), ("same", "circular", 55_296),
    ("same", "replicate", 55_296), ("same", "zeros", 0),  # zeros: aten::_convolution_mode, unhandled
])
def test_string_padding_with_a_padding_mode_is_costed_as_fvcore_does(padding, padding_mode, fvcore_flops, mode):
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=padding, padding_mode=padding_mode))
    assert analyze(model, (3, 16, 16), convention="fvcore", mode=mode).attrs["total"]["flops"] == fvcore_flops
    df = validate(model, (3, 16, 16), batch=2, mode=mode, convention="fvcore")
    assert df.attrs["agree"], df.attrs["mismatches"]
    assert df.attrs["totals"]["flops_fvcore"] == (2 * fvcore_flops, 2 * fvcore_flops)


class DeadBranch(nn.Module):
    """A conv + BN computed and never used: fvcore's jit trace drops it in eval; in training BN's
    running statistics are a side effect, so the trace keeps the branch."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        unused = self.bn(self.b(x))  # noqa: F841
        return self.a(x)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_unused_values_are_marked_and_priced_per_tool(mode):
    df = analyze(DeadBranch(), (3, 16, 16), convention="fvcore", mode=mode)
    assert list(df["used"]) == [False, False, True]
    conv = 8 * 16 * 16 * 27
    bn = 8 * 16 * 16 * (5 if mode == "train" else 2)
    assert df.attrs["total"]["flops"] == (conv if mode == "eval" else 2 * conv + bn)
    assert df["flops_flopcounter"].sum() == 2 * 2 * conv  # FlopCounterMode counts what runs
    checked = validate(DeadBranch(), (3, 16, 16), batch=2, mode=mode, convention="fvcore")
    assert checked.attrs["agree"], checked.attrs["mismatches"]
    assert not checked.attrs["partial"]
