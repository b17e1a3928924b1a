"""Pieces shared by the Inception families (GoogLeNet, Inception v3, Inception v4).

``BasicConv2d`` is torchvision's conv(bias=False) -> BatchNorm(eps=1e-3) -> ReLU unit with the
same attribute names (``conv``, ``bn``), so state_dicts keep torchvision's keys; the activation
is a module (``act``) so ``act_layer`` can swap it, and an activation without parameters adds no
state_dict entries.  ``ConvAct`` is the pre-BatchNorm unit of the 2014 GoogLeNet paper:
conv(bias=True) -> ReLU.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from archstat.models.init import init_weights, is_meta

ActLayer = Callable[[], nn.Module]


def default_act() -> nn.Module:
    """ReLU, in place like torchvision's ``F.relu(x, inplace=True)``."""
    return nn.ReLU(inplace=True)


class BasicConv2d(nn.Module):
    """conv (no bias: BN's shift replaces it) -> BN(eps=0.001) -> activation."""

    def __init__(
        self, in_channels: int, out_channels: int, act_layer: ActLayer | None = None, **kwargs: Any
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)
        self.act = (act_layer or default_act)()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class ConvAct(nn.Module):
    """conv (with bias, as in the pre-BatchNorm 2014 paper) -> activation."""

    def __init__(
        self, in_channels: int, out_channels: int, act_layer: ActLayer | None = None, **kwargs: Any
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=True, **kwargs)
        self.act = (act_layer or default_act)()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


def transform_input(x: torch.Tensor) -> torch.Tensor:
    """torchvision's ``transform_input``: re-normalise ImageNet-mean/std input to [-1, 1] scaling.

    Channel c becomes x_c * std_c / 0.5 + (mean_c - 0.5) / 0.5, which is what the ported
    TensorFlow weights expect.  Plain tensor code, so it traces with torch.fx.
    """
    x_ch0 = torch.unsqueeze(x[:, 0], 1) * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
    x_ch1 = torch.unsqueeze(x[:, 1], 1) * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
    x_ch2 = torch.unsqueeze(x[:, 2], 1) * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
    return torch.cat((x_ch0, x_ch1, x_ch2), 1)


def check_transform_input(transform: bool, in_channels: int) -> None:
    if transform and in_channels != 3:
        raise ValueError(f"transform_input needs 3 input channels, got in_channels={in_channels}")


def init_with_classifiers(
    model: nn.Module,
    scheme: str,
    classifiers: list[nn.Linear],
    std: float = 0.01,
    kaiming_mode: str = "fan_out",
) -> None:
    """Kaiming (or ``scheme``) init for the whole model, then a small N(0, std) for the classifiers.

    ``init_weights`` gives the small std to the *last* ``nn.Linear`` in ``model.modules()``
    order, which in a network with auxiliary heads depends on registration order and could be
    an aux head's fc.  Re-initialising every classifier explicitly makes sure the MAIN
    classifier (and each aux classifier) starts small, so the initial loss is ~ln(num_classes).

    ``kaiming_mode="fan_in"`` (std = sqrt(2 / (C_in k^2)), the lecture's sqrt(2/D_in)) is for
    networks without BatchNorm whose branches change width: it keeps the *forward* variance per
    conv, Var(y) = Var(x).  With ``fan_out`` a 1x1 reduction 832 -> 32 followed by a 5x5 conv
    32 -> 128 scales the variance by (832/32) * (800/3200) = 6.5 per Inception module, and the
    BN-free paper GoogLeNet starts with logits ~25x too large (initial loss ~12 instead of ln 10).
    """
    init_weights(model, scheme, last_linear_std=std)
    if is_meta(model):  # no values to draw (and meta normal_ would import torch._dynamo)
        return
    if scheme == "kaiming" and kaiming_mode != "fan_out":
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode=kaiming_mode, nonlinearity="relu")
    for fc in classifiers:
        nn.init.normal_(fc.weight, 0.0, std)
        if fc.bias is not None:
            nn.init.zeros_(fc.bias)
