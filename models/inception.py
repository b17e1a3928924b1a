"""Inception v3 and Inception-v4.

``inception_v3``: Szegedy et al., "Rethinking the Inception Architecture for Computer Vision"
(CVPR 2016), as torchvision's ``Inception3``: same attribute names (``Conv2d_1a_3x3`` ...
``Mixed_7c``, ``AuxLogits``, ``fc``) and state_dict keys/shapes, 299x299 input, dropout 0.5,
``transform_input`` option.  27,161,264 parameters with the aux head (torchvision's
num_params counts it, because ``inception_v3()`` keeps ``aux_logits=True``), 23,834,568 without.

``inception_v4``: Szegedy, Ioffe, Vanhoucke, Alemi, "Inception-v4, Inception-ResNet and the
Impact of Residual Connections on Learning" (arXiv:1602.07261, 2016; AAAI 2017), Fig. 9: stem,
4 x Inception-A, Reduction-A (k, l, m, n = 192, 224, 256, 384), 7 x Inception-B, Reduction-B,
3 x Inception-C, global average pool, dropout 0.2 (the paper's "keep 0.8"), fc.  The paper prints
no parameter count; this model has 42,679,816 parameters (1000 classes, BN with affine scale and
shift), which rounds to the "42.7M" of the timm model card for ``inception_v4.tf_in1k`` (Cadene's
port of the TF-slim checkpoint; 12.3 GMACs at 299).  OpenVINO's "42.648 MParams" for the TF-slim
graph is this count without BatchNorm scales (TF-slim's BN has no gamma): 42,679,816 - 31,584.

Outputs: eval mode (or ``aux_logits=False``) returns the logits tensor; training mode with the
aux head returns ``InceptionOutputs(logits, aux_logits)``.  No ``torch.jit.is_scripting()`` /
``eager_outputs`` indirection as in torchvision: a plain ``if self.training and self.aux_logits``
on Python bools, so ``torch.fx.symbolic_trace`` traces both modes.

Smallest input (square, batch 2):
- ``inception_v3`` eval mode, or training without the aux head: 75x75 (torchvision's min_size):
  75 -> 37 -> 35 -> 17 -> 15 -> 7 (Mixed_5*) -> 3 (Mixed_6*) -> 1 (Mixed_7*).
- ``inception_v3`` training mode with the aux head: 299x299.  The aux head's 5x5/3 avg pool and
  valid 5x5 conv need a 17x17 Mixed_6e map; following the valid convs and pools back, the
  smallest input giving 17x17 is exactly 299 (298 gives 16x16).  So ``min_input`` is 299.
- ``inception_v4``: 75x75 in both modes (no aux head): 75 -> 37 -> 35 -> 17 -> 15 -> 7 ->
  3 (Reduction-A) -> 1 (Reduction-B).
"""
from __future__ import annotations

from collections import namedtuple

import torch
from torch import nn

from archstat.models import _inception_v3_blocks as v3
from archstat.models import _inception_v4_blocks as v4
from archstat.models._inception_common import (
    ActLayer,
    BasicConv2d,
    check_transform_input,
    init_with_classifiers,
    transform_input,
)
from archstat.models._registry import Published, register_model

InceptionOutputs = namedtuple("InceptionOutputs", ["logits", "aux_logits"])

# (attribute, block class, constructor kwargs): torchvision's Inception3 body, in order.
V3_MIXED: tuple[tuple[str, type[nn.Module], dict], ...] = (
    ("Mixed_5b", v3.InceptionA, {"in_channels": 192, "pool_features": 32}),  # 35x35x256
    ("Mixed_5c", v3.InceptionA, {"in_channels": 256, "pool_features": 64}),  # 35x35x288
    ("Mixed_5d", v3.InceptionA, {"in_channels": 288, "pool_features": 64}),  # 35x35x288
    ("Mixed_6a", v3.InceptionB, {"in_channels": 288}),  # 17x17x768
    ("Mixed_6b", v3.InceptionC, {"in_channels": 768, "channels_7x7": 128}),
    ("Mixed_6c", v3.InceptionC, {"in_channels": 768, "channels_7x7": 160}),
    ("Mixed_6d", v3.InceptionC, {"in_channels": 768, "channels_7x7": 160}),
    ("Mixed_6e", v3.InceptionC, {"in_channels": 768, "channels_7x7": 192}),  # aux head here
    ("Mixed_7a", v3.InceptionD, {"in_channels": 768}),  # 8x8x1280
    ("Mixed_7b", v3.InceptionE, {"in_channels": 1280}),  # 8x8x2048
    ("Mixed_7c", v3.InceptionE, {"in_channels": 2048}),
)


class Inception3(nn.Module):
    """torchvision-compatible Inception v3 with the zoo's common options."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        aux_logits: bool = True,
        transform_input: bool = False,
        dropout: float = 0.5,
        act_layer: ActLayer | None = None,
        init: str = "kaiming",
    ) -> None:
        super().__init__()
        check_transform_input(transform_input, in_channels)
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        a = act_layer
        self.Conv2d_1a_3x3 = BasicConv2d(in_channels, 32, a, kernel_size=3, stride=2)  # 149
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, a, kernel_size=3)  # 147
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, a, kernel_size=3, padding=1)  # 147
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)  # 73
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, a, kernel_size=1)  # 73
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, a, kernel_size=3)  # 71
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)  # 35
        self.AuxLogits: nn.Module | None = None
        for name, block, kw in V3_MIXED:
            setattr(self, name, block(**kw, act_layer=a))
            if name == "Mixed_6e" and aux_logits:  # registered here, as in torchvision
                self.AuxLogits = v3.InceptionAux(768, num_classes, a)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(2048, num_classes)
        heads = [self.fc] + ([self.AuxLogits.fc] if self.AuxLogits is not None else [])
        init_with_classifiers(self, init, heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor | InceptionOutputs:
        if self.transform_input:
            x = transform_input(x)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.maxpool1(x)
        x = self.maxpool2(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)))
        aux = None
        for name, _, _ in V3_MIXED:
            x = getattr(self, name)(x)
            if name == "Mixed_6e" and self.training and self.AuxLogits is not None:
                aux = self.AuxLogits(x)
        x = torch.flatten(self.dropout(self.avgpool(x)), 1)  # N x 2048
        x = self.fc(x)
        if self.training and self.aux_logits:
            return InceptionOutputs(x, aux)
        return x


class InceptionV4(nn.Module):
    """Inception-v4 (Fig. 9): stem, 4 x A, Reduction-A, 7 x B, Reduction-B, 3 x C, pool, fc."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        dropout: float = 0.2,
        act_layer: ActLayer | None = None,
        init: str = "kaiming",
        blocks: tuple[int, int, int] = (4, 7, 3),
        reduction_a: tuple[int, int, int, int] = (192, 224, 256, 384),
    ) -> None:
        super().__init__()
        a = act_layer
        n_a, n_b, n_c = blocks
        self.stem = v4.Stem(in_channels, a)  # 35x35x384
        self.inception_a = nn.Sequential(*(v4.InceptionA(384, a) for _ in range(n_a)))
        self.reduction_a = v4.ReductionA(384, *reduction_a, act=a)  # 17x17x(n + m + 384)
        c = reduction_a[3] + reduction_a[2] + 384
        self.inception_b = nn.Sequential(*(v4.InceptionB(c, a) for _ in range(n_b)))
        self.reduction_b = v4.ReductionB(c, a)  # 8x8x(c + 512)
        self.inception_c = nn.Sequential(*(v4.InceptionC(c + 512, a) for _ in range(n_c)))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))  # the paper's 8x8 average pool at 299
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(c + 512, num_classes)
        init_with_classifiers(self, init, [self.fc])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inception_a(self.stem(x))
        x = self.inception_b(self.reduction_a(x))
        x = self.inception_c(self.reduction_b(x))
        x = torch.flatten(self.avgpool(x), 1)  # N x 1536
        return self.fc(self.dropout(x))


V3_PAPER = "Rethinking the Inception Architecture for Computer Vision"
V3_WEIGHTS = "torchvision Inception_V3_Weights.IMAGENET1K_V1"
V4_PAPER = "Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning"
TIMM_V4 = "timm model card inception_v4.tf_in1k (https://huggingface.co/timm/inception_v4.tf_in1k)"


@register_model(
    family="inception",
    paper=V3_PAPER,
    year=2016,
    url="https://arxiv.org/abs/1512.00567",
    default_input=(3, 299, 299),
    min_input=(3, 299, 299),
    published={
        "params": Published(27_161_264, V3_WEIGHTS + " num_params",
                            "includes the AuxLogits head (23,834,568 without it)"),
        "macs": Published(5.713e9, V3_WEIGHTS + " _ops", "GMACs at 299x299"),
        "top1_err": Published(22.706, V3_WEIGHTS + " (acc@1 77.294)",
                              "old torchvision docs: 22.55"),
        "top5_err": Published(6.55, V3_WEIGHTS + " (acc@5 93.450)", "old torchvision docs: 6.44"),
    },
    torchvision_name="inception_v3",
    notes="state_dict-compatible with torchvision.models.inception_v3; training mode with the aux "
          "head needs 299x299, eval (or aux_logits=False) works from 75x75",
)
def inception_v3(**kwargs) -> Inception3:
    """torchvision's Inception v3 (aux head active in training mode)."""
    return Inception3(**kwargs)


@register_model(
    family="inception",
    paper=V4_PAPER,
    year=2016,
    url="https://arxiv.org/abs/1602.07261",
    default_input=(3, 299, 299),
    min_input=(3, 75, 75),
    published={
        "params": Published(42.7e6, TIMM_V4 + ", 'Params (M): 42.7'",
                            "the paper gives no count; this model: 42,679,816"),
        "macs": Published(12.3e9, TIMM_V4 + ", 'GMACs: 12.3' at 299x299",
                          "the paper gives no count"),
        "top1_err": Published(20.09, "Canziani et al. 2016, Fig. 1 bar (79.91% top-1)",
                              "APPROX: read from figure pixels (../shared/published, section 6)"),
        "top5_err": Published(None, "Inception-v4 paper",
                              "no top-5 figure in ../shared/published; the paper's Table 2 "
                              "was not available as verified text"),
    },
    notes="paper's Fig. 9 network; BN after every conv; no aux head",
)
def inception_v4(**kwargs) -> InceptionV4:
    """Inception-v4 (Szegedy et al. 2016), 299x299 input."""
    return InceptionV4(**kwargs)
