"""Pre-activation ResNet (He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016).

The lecture's "improved residual block": BN -> ReLU -> conv inside the residual branch and nothing
after the addition, so x_{l+1} = x_l + F(x_l) is a true identity path.  Setting F's last conv to
zero makes the block the identity, which the original block (ReLU after the sum, outputs >= 0)
cannot express.

ImageNet layout as in the authors' released code (fb.resnet.torch ``preresnet.lua``):

- stem conv1 7x7/2 -> BN -> ReLU -> 3x3/2 max pool (the paper: "the first activation right after
  conv1 and before splitting into two paths"), so ``layer1.0`` has no pre-activation of its own;
- the first block of layer2..4 pre-activates its input once and feeds the result to both the
  residual branch and the 1x1 projection shortcut (plain conv, no BN);
- other blocks pre-activate only the residual branch; the shortcut is the raw input;
- after the last block an extra BN -> ReLU ("for the last Residual Unit ... an extra activation
  right after its element-wise addition"), then global average pooling and ``fc``.

Downsampling bottlenecks stride in the 3x3 conv (fb.resnet.torch's choice, torchvision's "v1.5");
``variant="v1"`` moves the stride to the first 1x1.  Conv and fc shapes equal ``resnetN``'s, so
MACs equal resnetN's v1.5 counts (1.814 / 3.664 / 4.089 / 7.801 / 11.514 G); only the BatchNorm
placement, and the projections' missing BN, change the parameter counts:
11,687,720 / 21,795,880 / 25,549,352 / 44,541,480 / 60,185,128 (resnet: 11,689,512 / 21,797,672 /
25,557,032 / 44,549,160 / 60,192,808).

``zero_init_residual=True`` (default) zeroes each block's last conv, so F(x) = 0 and
Var(F(x) + x) = Var(x) at the start (the lecture's recipe: MSRA for the first conv, zero for the
second).

Smallest input: 1x1 at batch >= 2; 33x33 at batch 1 in train mode (BatchNorm at layer4).
"""
from __future__ import annotations

from typing import Any, Callable, Union

import torch
from torch import nn

from archstat.models.init import init_weights
from archstat.models._registry import Published, register_model
from archstat.models.resnet import VARIANTS, ActLayer, conv1x1, conv3x3, inplace_relu


class PreActBasicBlock(nn.Module):
    """[BN-ReLU-3x3, C; BN-ReLU-3x3, C] + shortcut."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, preact: bool = True,
                 act_layer: ActLayer = inplace_relu, stride_in_1x1: bool = False) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes) if preact else None
        self.act1 = act_layer() if preact else None
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = act_layer()
        self.conv2 = conv3x3(planes, planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.bn1 is None else self.act1(self.bn1(x))
        # a projection sees the pre-activated input ("both_preact"); identity sees x itself
        shortcut = x if self.downsample is None else self.downsample(out)
        out = self.conv1(out)
        out = self.conv2(self.act2(self.bn2(out)))
        return out + shortcut

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv2.weight)


class PreActBottleneck(nn.Module):
    """[BN-ReLU-1x1, C; BN-ReLU-3x3, C; BN-ReLU-1x1, 4C] + shortcut."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, preact: bool = True,
                 act_layer: ActLayer = inplace_relu, stride_in_1x1: bool = False) -> None:
        super().__init__()
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.bn1 = nn.BatchNorm2d(inplanes) if preact else None
        self.act1 = act_layer() if preact else None
        self.conv1 = conv1x1(inplanes, planes, s1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = act_layer()
        self.conv2 = conv3x3(planes, planes, s3)
        self.bn3 = nn.BatchNorm2d(planes)
        self.act3 = act_layer()
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.bn1 is None else self.act1(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(out)
        out = self.conv1(out)
        out = self.conv2(self.act2(self.bn2(out)))
        out = self.conv3(self.act3(self.bn3(out)))
        return out + shortcut

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv3.weight)


PreActBlock = Union[type[PreActBasicBlock], type[PreActBottleneck]]


class PreActResNet(nn.Module):
    """Pre-activation ResNet with the zoo's options."""

    def __init__(
        self,
        block: PreActBlock,
        layers: list[int],
        num_classes: int = 1000,
        in_channels: int = 3,
        variant: str = "v1.5",
        zero_init_residual: bool = True,
        dropout: float = 0.0,
        act_layer: ActLayer | None = None,
        init: str = "kaiming",
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        act = act_layer or inplace_relu
        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.act = act()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)  # N x 64 x 56 x 56
        v1 = variant == "v1"
        self.layer1 = self._make_layer(block, 64, layers[0], 1, act, v1, first=True)
        self.layer2 = self._make_layer(block, 128, layers[1], 2, act, v1)
        self.layer3 = self._make_layer(block, 256, layers[2], 2, act, v1)
        self.layer4 = self._make_layer(block, 512, layers[3], 2, act, v1)  # N x 512e x 7 x 7
        self.final_bn = nn.BatchNorm2d(512 * block.expansion)
        self.final_act = act()
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout) if dropout > 0 else None  # not in the paper
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        init_weights(self, init)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (PreActBasicBlock, PreActBottleneck)):
                    m.zero_init_last()

    def _make_layer(self, block: PreActBlock, planes: int, blocks: int, stride: int,
                    act: ActLayer, v1: bool, first: bool = False) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride))
        # layer1.0 follows the stem's BN-ReLU (and max pool): no pre-activation of its own
        layers = [block(self.inplanes, planes, stride, downsample, not first, act, v1)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, 1, None, True, act, v1) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.act(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.final_act(self.final_bn(x))  # the extra activation after the last addition
        x = torch.flatten(self.avgpool(x), 1)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc(x)


CFGS: dict[str, tuple[PreActBlock, list[int]]] = {
    "preact_resnet18": (PreActBasicBlock, [2, 2, 2, 2]),
    "preact_resnet34": (PreActBasicBlock, [3, 4, 6, 3]),
    "preact_resnet50": (PreActBottleneck, [3, 4, 6, 3]),
    "preact_resnet101": (PreActBottleneck, [3, 4, 23, 3]),
    "preact_resnet152": (PreActBottleneck, [3, 8, 36, 3]),
}
PAPER = "He et al. 2016b (Identity Mappings)"
_NO_PARAMS = "the paper prints no ImageNet parameter counts for these depths"
_NO_MACS = "the paper prints no operation counts; conv/fc shapes equal resnet{} v1.5's: {} G MACs"
_NO_ERR = "reference_numbers.md carries no ImageNet error for this depth (the paper reports 152/200)"
# depth -> resnet{depth}'s v1.5 GMACs (torchvision's _ops), which the same conv/fc shapes give here
V15_GMACS: dict[str, str] = {"18": "1.814", "34": "3.664", "50": "4.089", "101": "7.801", "152": "11.514"}


def _preact_model(builder: Callable[..., PreActResNet]) -> Callable[..., PreActResNet]:
    """Register a builder under its own name; the paper prints none of its numbers, so each says why."""
    depth = builder.__name__.removeprefix("preact_resnet")
    return register_model(
        family="preact_resnet", paper="Identity Mappings in Deep Residual Networks", year=2016,
        url="https://arxiv.org/abs/1603.05027", default_input=(3, 224, 224), min_input=(3, 1, 1),
        published={
            "params": Published(None, PAPER, _NO_PARAMS),
            "macs": Published(None, PAPER, _NO_MACS.format(depth, V15_GMACS[depth])),
            "top1_err": Published(None, PAPER, _NO_ERR),
            "top5_err": Published(None, PAPER, _NO_ERR),
        },
        notes="min_input at batch >= 2; batch 1 in train mode needs 33x33 (BatchNorm at layer4)",
    )(builder)


@_preact_model
def preact_resnet18(**kwargs: Any) -> PreActResNet:
    """Pre-activation ResNet-18 (PreActBasicBlock x [2, 2, 2, 2]), https://arxiv.org/abs/1603.05027.

    11,687,720 params; the conv and fc shapes of ``resnet18`` (v1.5), so its 1.814 G MACs.
    """
    return PreActResNet(*CFGS["preact_resnet18"], **kwargs)


@_preact_model
def preact_resnet34(**kwargs: Any) -> PreActResNet:
    """Pre-activation ResNet-34 (PreActBasicBlock x [3, 4, 6, 3]), https://arxiv.org/abs/1603.05027.

    21,795,880 params; the conv and fc shapes of ``resnet34`` (v1.5), so its 3.664 G MACs.
    """
    return PreActResNet(*CFGS["preact_resnet34"], **kwargs)


@_preact_model
def preact_resnet50(**kwargs: Any) -> PreActResNet:
    """Pre-activation ResNet-50 (PreActBottleneck x [3, 4, 6, 3]), https://arxiv.org/abs/1603.05027.

    25,549,352 params; the conv and fc shapes of ``resnet50`` (v1.5), so its 4.089 G MACs.
    """
    return PreActResNet(*CFGS["preact_resnet50"], **kwargs)


@_preact_model
def preact_resnet101(**kwargs: Any) -> PreActResNet:
    """Pre-activation ResNet-101 (PreActBottleneck x [3, 4, 23, 3]), https://arxiv.org/abs/1603.05027.

    44,541,480 params; the conv and fc shapes of ``resnet101`` (v1.5), so its 7.801 G MACs.
    """
    return PreActResNet(*CFGS["preact_resnet101"], **kwargs)


@_preact_model
def preact_resnet152(**kwargs: Any) -> PreActResNet:
    """Pre-activation ResNet-152 (PreActBottleneck x [3, 8, 36, 3]), https://arxiv.org/abs/1603.05027.

    60,185,128 params; the conv and fc shapes of ``resnet152`` (v1.5), so its 11.514 G MACs.
    """
    return PreActResNet(*CFGS["preact_resnet152"], **kwargs)
