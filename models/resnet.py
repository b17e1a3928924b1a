"""ResNet (He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016).

``resnet18`` ... ``resnet152`` in torchvision's layout and state_dict keys (``conv1``, ``bn1``,
``layer1``..``layer4`` of blocks with ``conv1/bn1/conv2/bn2[/conv3/bn3]`` and
``downsample.0/.1``, ``fc``), so torchvision checkpoints load with ``strict=True``.

Stride placement (``variant``):

- ``"v1.5"`` (default, torchvision's): a downsampling bottleneck strides in its 3x3 conv.
- ``"v1"`` (the paper's): it strides in its first 1x1 conv, so the 3x3 runs at the lower
  resolution.  Basic blocks are the same in both.

MACs at 224x224 (conv + fc, bias not counted), against the paper's Table 1 "FLOPs" (multiply-adds):

==========  ==============  ===============  ================  ==============
model       v1.5 (default)  v1 (paper)       Table 1 prints    params
==========  ==============  ===============  ================  ==============
resnet18    1,814,073,344   1,814,073,344    1.8 x 10^9        11,689,512
resnet34    3,663,761,408   3,663,761,408    3.6 x 10^9        21,797,672
resnet50    4,089,184,256   3,857,973,248    3.8 x 10^9        25,557,032
resnet101   7,801,405,440   7,570,194,432    7.6 x 10^9        44,549,160
resnet152   11,513,626,624  11,282,415,616   11.3 x 10^9       60,192,808
==========  ==============  ===============  ================  ==============

101 and 152 round to the printed values; 18 and 34 are truncated (1.814 -> 1.8, 3.664 -> 3.6);
ResNet-50 v1 computes to 3.858 G against the printed 3.8 (1.5 % more).  The v1.5 numbers are
torchvision's ``_ops`` (1.814 / 3.664 / 4.089 / 7.801 / 11.514).

Residual blocks compute out = act(F(x) + shortcut(x)).  With Kaiming init Var(F(x)) ~ Var(x), so
Var(F(x) + x) ~ 2 Var(x) and the variance doubles per block; ``zero_init_residual=True``
(default) zeroes the last BN's gamma in each block, so F(x) = 0 and Var(F(x) + x) = Var(x) at
the start, as the lecture explains (Goyal et al. 2017 report +0.2-0.3 % from it).

Smallest input: 1x1 at batch >= 2 (every conv and pool pads enough to map 1 -> 1; adaptive average
pooling then feeds ``fc``).  At batch 1 in train mode, BatchNorm needs >1 value per channel at
layer4, i.e. an input of at least 33x33 (33 -> 17 -> 9 -> 5 -> 3 -> 2).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Union

import torch
from torch import nn

from archstat.models.init import init_weights
from archstat.models._registry import Published, register_model

ActLayer = Callable[[], nn.Module]


def inplace_relu() -> nn.Module:
    """The default activation: ReLU in place (no extra activation tensor, as torchvision's)."""
    return nn.ReLU(inplace=True)


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    """3x3 conv, padding 1, no bias (a BatchNorm follows)."""
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """[3x3, C; 3x3, C]: 18 H W C^2 MACs at stride 1 (the lecture's basic block)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, act_layer: ActLayer = inplace_relu,
                 stride_in_1x1: bool = False) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)  # N x C x H/s x W/s
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = act_layer()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.act2 = act_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + identity)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn2.weight)


class Bottleneck(nn.Module):
    """[1x1, C; 3x3, C; 1x1, 4C]: 17 H W C^2 MACs at stride 1 with 4C in and out (the lecture's)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, act_layer: ActLayer = inplace_relu,
                 stride_in_1x1: bool = False) -> None:
        super().__init__()
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)  # v1 vs v1.5
        self.conv1 = conv1x1(inplanes, planes, s1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = act_layer()
        self.conv2 = conv3x3(planes, planes, s3)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = act_layer()
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.downsample = downsample
        self.act3 = act_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.act3(out + identity)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn3.weight)


Block = Union[type[BasicBlock], type[Bottleneck]]
VARIANTS = ("v1.5", "v1")


class ResNet(nn.Module):
    """torchvision-compatible ResNet with the zoo's options and the paper's v1 stride placement."""

    def __init__(
        self,
        block: Block,
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
        self.variant = variant
        self.inplanes = 64
        # stem: 224 -> 112 -> 56, the "aggressive downsampling" the lecture describes
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.act = act()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)  # N x 64 x 56 x 56
        self.layer1 = self._make_layer(block, 64, layers[0], 1, act)  # N x 64e x 56 x 56
        self.layer2 = self._make_layer(block, 128, layers[1], 2, act)  # N x 128e x 28 x 28
        self.layer3 = self._make_layer(block, 256, layers[2], 2, act)  # N x 256e x 14 x 14
        self.layer4 = self._make_layer(block, 512, layers[3], 2, act)  # N x 512e x 7 x 7
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout) if dropout > 0 else None  # not in the paper
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        init_weights(self, init)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    m.zero_init_last()

    def _make_layer(self, block: Block, planes: int, blocks: int, stride: int,
                    act: ActLayer) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            # projection shortcut (the paper's option B), strided like the block
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        v1 = self.variant == "v1"
        layers = [block(self.inplanes, planes, stride, downsample, act, v1)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, 1, None, act, v1) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.act(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)  # N x 512e
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc(x)


# configs as data: name -> (block, blocks per stage), the paper's Table 1
CFGS: dict[str, tuple[Block, list[int]]] = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet101": (Bottleneck, [3, 4, 23, 3]),
    "resnet152": (Bottleneck, [3, 8, 36, 3]),
}

TABLE1 = "He et al. 2016, Table 1 (FLOPs = multiply-adds, 224x224)"
OLD_DOCS = "torchvision docs (pre-0.13), 1-crop 224x224; the lecture's ResNet table"


@dataclass(frozen=True)
class ResNetNumbers:
    """What the literature prints for one depth (torchvision's weights card and the paper)."""

    params: int  # torchvision num_params; the paper prints none, and v1 and v1.5 have the same
    gmacs: float  # torchvision's _ops: GMAC at 224x224 with v1.5 strides
    table1_gflops: float  # the paper's Table 1 "FLOPs" (multiply-adds, v1 strides)
    v1_note: str  # what v1 computes against the Table 1 print
    top1_err: float  # percent, 1-crop 224x224
    top5_err: float


NUMBERS: dict[str, ResNetNumbers] = {
    "resnet18": ResNetNumbers(params=11_689_512, gmacs=1.814, table1_gflops=1.8, top1_err=30.24, top5_err=10.92,
                              v1_note="v1 computes 1,814,073,344 (printed truncated)"),
    "resnet34": ResNetNumbers(params=21_797_672, gmacs=3.664, table1_gflops=3.6, top1_err=26.70, top5_err=8.58,
                              v1_note="v1 computes 3,663,761,408 (printed truncated)"),
    "resnet50": ResNetNumbers(params=25_557_032, gmacs=4.089, table1_gflops=3.8, top1_err=23.85, top5_err=7.13,
                              v1_note="v1 computes 3,857,973,248: 1.5 % above the print"),
    "resnet101": ResNetNumbers(params=44_549_160, gmacs=7.801, table1_gflops=7.6, top1_err=22.63, top5_err=6.44,
                               v1_note="v1 computes 7,570,194,432"),
    "resnet152": ResNetNumbers(params=60_192_808, gmacs=11.514, table1_gflops=11.3, top1_err=21.69, top5_err=5.94,
                               v1_note="v1 computes 11,282,415,616"),
}


def _published(name: str) -> dict[str, Published]:
    n = NUMBERS[name]
    tv = f"torchvision {name.replace('resnet', 'ResNet')}_Weights.IMAGENET1K_V1"
    out = {
        "params": Published(n.params, f"{tv} num_params",
                            "the paper prints no parameter counts; v1 and v1.5 have the same"),
        "macs": Published(n.gmacs * 1e9, f"{tv} _ops (GMAC)", "torchvision's v1.5 stride placement"),
        "macs_v1": Published(n.table1_gflops * 1e9, TABLE1, f"build with variant='v1'; {n.v1_note}"),
        "top1_err": Published(n.top1_err, OLD_DOCS),
        "top5_err": Published(n.top5_err, OLD_DOCS),
    }
    if name == "resnet152":
        out["ilsvrc_top5_err"] = Published(3.57, "lecture (ILSVRC 2015 winner)", "an ensemble")
    return out


def _resnet_model(builder: Callable[..., ResNet]) -> Callable[..., ResNet]:
    """Register a builder under its own name with the family's metadata and its depth's numbers."""
    return register_model(
        family="resnet", paper="Deep Residual Learning for Image Recognition", year=2016,
        url="https://arxiv.org/abs/1512.03385", default_input=(3, 224, 224), min_input=(3, 1, 1),
        published=_published(builder.__name__), torchvision_name=builder.__name__,
        notes="min_input at batch >= 2; batch 1 in train mode needs 33x33 (BatchNorm at layer4)",
    )(builder)


@_resnet_model
def resnet18(**kwargs: Any) -> ResNet:
    """ResNet-18 (BasicBlock x [2, 2, 2, 2]), https://arxiv.org/abs/1512.03385.

    1.81 G MACs, 11.7 M params at 224x224.  ``variant='v1'`` is the same network (basic blocks
    do not move their stride).  ``kwargs`` go to :class:`ResNet`.
    """
    return ResNet(*CFGS["resnet18"], **kwargs)


@_resnet_model
def resnet34(**kwargs: Any) -> ResNet:
    """ResNet-34 (BasicBlock x [3, 4, 6, 3]), https://arxiv.org/abs/1512.03385.

    3.66 G MACs, 21.8 M params at 224x224; the plain-vs-residual comparison of the paper's Fig. 4.
    """
    return ResNet(*CFGS["resnet34"], **kwargs)


@_resnet_model
def resnet50(**kwargs: Any) -> ResNet:
    """ResNet-50 (Bottleneck x [3, 4, 6, 3]), https://arxiv.org/abs/1512.03385.

    4.09 G MACs with torchvision's v1.5 strides, 3.86 G with ``variant='v1'`` (Table 1 prints
    3.8); 25.6 M params.
    """
    return ResNet(*CFGS["resnet50"], **kwargs)


@_resnet_model
def resnet101(**kwargs: Any) -> ResNet:
    """ResNet-101 (Bottleneck x [3, 4, 23, 3]), https://arxiv.org/abs/1512.03385.

    7.80 G MACs (v1.5), 7.57 G with ``variant='v1'`` (Table 1: 7.6); 44.5 M params.
    """
    return ResNet(*CFGS["resnet101"], **kwargs)


@_resnet_model
def resnet152(**kwargs: Any) -> ResNet:
    """ResNet-152 (Bottleneck x [3, 8, 36, 3]), https://arxiv.org/abs/1512.03385.

    11.51 G MACs (v1.5), 11.28 G with ``variant='v1'`` (Table 1: 11.3); 60.2 M params.  An
    ensemble of it won ILSVRC 2015 (3.57 % top-5).
    """
    return ResNet(*CFGS["resnet152"], **kwargs)


def _resnet_v1_model(builder: Callable[..., ResNet]) -> Callable[..., ResNet]:
    """Register ``resnetNN_v1``: the paper's stride placement, with Table 1's multiply-adds as its MACs."""
    depth = builder.__name__.removesuffix("_v1")
    n = NUMBERS[depth]
    return register_model(
        family="resnet", paper="Deep Residual Learning for Image Recognition (v1: stride in the first 1x1)",
        year=2016, url="https://arxiv.org/abs/1512.03385", default_input=(3, 224, 224), min_input=(3, 1, 1),
        published={"params": Published(n.params, f"torchvision {depth} num_params", "v1 and v1.5 have the same"),
                   "macs": Published(n.table1_gflops * 1e9, TABLE1, n.v1_note)},
        notes="the paper's (and the lecture's) ResNet: downsampling bottlenecks stride in their first 1x1 conv",
    )(builder)


@_resnet_v1_model
def resnet50_v1(**kwargs: Any) -> ResNet:
    """ResNet-50 v1 (the paper's strides): 3,857,973,248 MACs at 224x224; Table 1 prints 3.8 G."""
    return ResNet(*CFGS["resnet50"], **{"variant": "v1", **kwargs})


@_resnet_v1_model
def resnet101_v1(**kwargs: Any) -> ResNet:
    """ResNet-101 v1 (the paper's strides): 7,570,194,432 MACs at 224x224; Table 1 prints 7.6 G."""
    return ResNet(*CFGS["resnet101"], **{"variant": "v1", **kwargs})


@_resnet_v1_model
def resnet152_v1(**kwargs: Any) -> ResNet:
    """ResNet-152 v1 (the paper's strides): 11,282,415,616 MACs at 224x224; Table 1 prints 11.3 G."""
    return ResNet(*CFGS["resnet152"], **{"variant": "v1", **kwargs})
