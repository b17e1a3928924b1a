"""Patterns from torchvision's newer models (EfficientNet, ConvNeXt, MobileNetV3, ViT, Swin V2),
rebuilt here without torchvision: each once made validate disagree with the real run or crash."""
import logging

import pytest
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from archstat import analyze
from archstat.validation.validate import validate

logging.getLogger("fvcore").setLevel(logging.ERROR)


def stochastic_depth(input: torch.Tensor, p: float, mode: str, training: bool = True) -> torch.Tensor:
    """torchvision.ops.stochastic_depth, as torchvision writes it (and fx-wraps it: one leaf call)."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"drop probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    survival_rate = 1.0 - p
    size = [input.shape[0]] + [1] * (input.ndim - 1) if mode == "row" else [1] * input.ndim
    noise = torch.empty(size, dtype=input.dtype, device=input.device)
    noise = noise.bernoulli_(survival_rate)
    if survival_rate > 0.0:
        noise.div_(survival_rate)
    return input * noise


torch.fx.wrap("stochastic_depth")


class ResidualWithDropPath(nn.Module):
    """EfficientNet's MBConv shortcut: x + stochastic_depth(block(x))."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.conv, self.mode = nn.Conv2d(4, 4, 3, padding=1), mode

    def forward(self, x):
        return x + stochastic_depth(self.conv(x), 0.2, self.mode, self.training)


class LayerNorm2d(nn.LayerNorm):
    """ConvNeXt's channels-first LayerNorm: permute, F.layer_norm, permute back."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class TokensWithClassToken(nn.Module):
    """ViT's input processing: sizes multiplied in Python (traced by TorchScript as aten::mul) and
    a class token expanded from a parameter (a view: nothing allocated)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, 8, 4, stride=4)
        self.cls = nn.Parameter(torch.zeros(1, 1, 8))

    def forward(self, x):
        n, _, h, w = x.shape
        x = self.proj(x).reshape(n, 8, (h // 4) * (w // 4)).permute(0, 2, 1)
        return torch.cat([self.cls.expand(n, -1, -1), x], dim=1).mean(1)


class BufferMLP(nn.Module):
    """Swin V2's continuous position bias: an MLP applied to a buffer, not to the input."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("table", torch.randn(1, 5, 5, 2))
        self.mlp = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        bias = self.mlp(self.table).permute(0, 3, 1, 2)  # 1 x 3 x 5 x 5
        return self.conv(x) + bias


class Unsupported(nn.Module):
    """Ops without a formula still say whether they allocate: a view (diagonal), an input returned."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        d = torch.diagonal(self.conv(x), dim1=-2, dim2=-1)
        return torch.special.expit(d)


CASES = {
    "drop_path_row": (ResidualWithDropPath("row"), (4, 6, 6)),
    "drop_path_batch": (ResidualWithDropPath("batch"), (4, 6, 6)),
    "layer_norm_2d": (nn.Sequential(nn.Conv2d(3, 8, 1), LayerNorm2d(8), nn.GELU()), (3, 5, 5)),
    "dropout_inplace_head": (nn.Sequential(nn.Linear(6, 5), nn.Hardswish(), nn.Dropout(0.2, inplace=True),
                                           nn.Linear(5, 2)), (6,)),
    "vit_tokens": (TokensWithClassToken(), (3, 16, 16)),
    "layer_on_buffer": (BufferMLP(), (3, 5, 5)),
    "unsupported_view": (Unsupported(), (3, 8, 8)),
}

UNSUPPORTED = {"unsupported_view": ["diagonal", "special_expit"]}  # ops with no formula, on purpose


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_pattern_validates(name, mode):
    model, shape = CASES[name]
    df = validate(model, shape, batch=2, mode=mode)
    assert df.attrs["agree"], df.attrs["mismatches"]
    # fully costed wherever a formula exists: a lost formula is skipped by the checks and still "agrees"
    unsupported = sorted(df.loc[~df["supported"].astype(bool), "op"])
    assert unsupported == UNSUPPORTED.get(name, []), df.attrs["unsupported"]
    assert df.attrs["partial"] == bool(unsupported)


def test_drop_path_is_an_identity_in_eval_and_keeps_its_noise_in_training():
    model = ResidualWithDropPath("row")
    ev = analyze(model, (4, 6, 6), batch=2)
    row = ev[ev.op == "stochastic_depth"].iloc[0]
    assert row.supported and not row.alloc and row.act_bytes == 0
    tr = validate(model, (4, 6, 6), batch=2, mode="train")
    row = tr[tr.op == "stochastic_depth"].iloc[0]
    assert row.alloc and row.saved_bytes == row.real_saved_bytes == 2 * 4  # one float per sample


def test_functional_group_norm_and_layer_norm_have_formulas():
    class Norms(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 1)

        def forward(self, x):
            y = F.group_norm(self.conv(x), 2)
            return F.layer_norm(y, y.shape[-2:])

    df = validate(Norms(), (3, 5, 5), batch=2)
    assert df.attrs["agree"] and not df.attrs["partial"], df.attrs["mismatches"]


def test_an_unsupported_view_allocates_nothing():
    df = analyze(Unsupported(), (3, 8, 8))
    diag = df[df.op == "diagonal"].iloc[0]
    assert not diag.supported and not diag.alloc
