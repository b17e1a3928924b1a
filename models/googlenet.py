"""GoogLeNet / Inception v1 (Szegedy et al., "Going deeper with convolutions", CVPR 2015).

Two registered models, one class configured by data (``GoogLeNetConfig``):

``googlenet``: the paper's network, Table 1.  Convolutions with bias and ReLU, no BatchNorm;
true 5x5 convolutions in the third branch; local response normalisation (size 5, alpha 1e-4,
beta 0.75, as in the released Caffe model) after the first max pool and after the 3x3
convolution, as the paper's Figure 3 draws it; 3x3/2 max pools with padding 1 (224 -> 112 -> 56
-> 28 -> 14 -> 7, the lecture's stem table); global average pooling (= Table 1's 7x7/1 avg pool at
224), dropout 0.4, linear.  Auxiliary classifiers on (4a) and (4d), active in training mode
only: 5x5/3 avg pool, 1x1 conv 128 + ReLU, fc 1024 + ReLU, dropout 0.7, fc (Sec. 5).

It reproduces Table 1 row by row where Table 1 agrees with its own channel counts.  Where it does
not, the model follows the channel counts (see ``_googlenet_table1`` for every number):
conv1 is 9,408 weights (9.19K) and 118.0M multiply-adds, the table prints 2.7K and 34M; 5a is
1018K / 51.1M, printed 1072K / 54M; 4a 366.75K vs 364K, 4c 497.5K vs 463K, 4d 590.5K vs 580K,
4e 847K vs 840K, 5b 1409K vs 1388K (params; their ops agree).  Totals: 6,990,272 weights =
6,826.4K against the printed column's 6,797.7K ("6.8M"); 6,998,552 parameters with biases
(no aux heads); 1,582.7M multiply-adds for conv+fc against "1.5 billion" (the printed column sums
to 1,502M; the +80.7M is conv1's +84.0M, less 5a's -2.9M, plus the other rows' rounding).

Two choices the paper does not force: each aux head has an ``AdaptiveAvgPool2d(4)`` after its
5x5/3 pool (the identity at 224, where the pool already gives 4x4; at other sizes it keeps fc1's
2048 inputs), and the default Kaiming init uses fan_in for this BN-free network (forward variance
kept per conv; with fan_out the untrained logits are ~25x too large, see ``_inception_common``).

``googlenet_bn``: torchvision's GoogLeNet, state_dict-compatible (same keys and shapes):
conv(bias=False) + BatchNorm(eps=0.001) + ReLU units, a 3x3 (not 5x5) conv in the "5x5" branch
(torchvision's known bug, pytorch/vision#906), ceil-mode max pools without padding, a 2x2/2
pool before 5a, dropout 0.2, aux heads with an adaptive 4x4 pool, and ``transform_input``.
6,624,904 parameters without the aux heads (torchvision's num_params), 13,004,888 with them.

Outputs.  Eval mode (or ``aux_logits=False``) returns the logits tensor.  Training mode with
``aux_logits=True`` returns ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)``, the order
torchvision uses.  Unlike torchvision, ``forward`` has no ``torch.jit.is_scripting()`` /
``eager_outputs`` branch: the choice is a plain ``if self.training and self.aux_logits`` on
Python bools, so ``torch.fx.symbolic_trace`` traces both modes.

Smallest input (batch 2; square):
- ``googlenet``: eval mode 1x1 (every stride-2 layer pads, so a map never vanishes); training
  mode with aux heads 65x65: each aux head's 5x5/3 pool needs the 4a/4d map >= 5x5, and that
  map is ceil(H/16).  Without aux heads, training works from 1x1 too.
- ``googlenet_bn``: 15x15 in both modes (torchvision's min_size).  A ceil-mode 3x3/2 pool without
  padding needs an input >= 2 (out = ceil((h - 3)/2) + 1): 15 -> 8 -> 4 -> 2 -> 1 works, while
  14 -> 7 -> 3 -> 1 leaves maxpool3 a 1x1 map.  The aux heads' adaptive pool imposes no limit.
"""
from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from archstat.models._googlenet_blocks import Inception, InceptionAux, InceptionAuxPaper
from archstat.models._googlenet_table1 import INCEPTION_CFGS
from archstat.models._inception_common import (
    ActLayer,
    BasicConv2d,
    ConvAct,
    check_transform_input,
    init_with_classifiers,
    transform_input,
)
from archstat.models._registry import Published, register_model

GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])


@dataclass(frozen=True)
class GoogLeNetConfig:
    """What differs between the paper's network and torchvision's."""

    conv_block: Callable[..., nn.Module]
    branch3_kernel: int  # 5 in the paper, 3 in torchvision
    lrn: bool  # LocalResponseNorm after pool1 and after conv3 (paper)
    pool_padding: int  # 1: floor-mode 3x3/2 pools with pad 1 (paper); 0 + ceil mode (torchvision)
    ceil_mode: bool
    maxpool4_kernel: int  # 3 (Table 1) or 2 (torchvision)
    aux_block: Callable[..., nn.Module]
    dropout: float
    kaiming_mode: str  # fan_in without BN (keeps forward variance), fan_out (torchvision) with BN


PAPER = GoogLeNetConfig(ConvAct, 5, True, 1, False, 3, InceptionAuxPaper, 0.4, "fan_in")
TORCHVISION = GoogLeNetConfig(BasicConv2d, 3, False, 0, True, 2, InceptionAux, 0.2, "fan_out")


class GoogLeNet(nn.Module):
    """GoogLeNet; module attribute names are torchvision's (``conv1`` ... ``inception5b``, ``fc``)."""

    def __init__(
        self,
        cfg: GoogLeNetConfig = TORCHVISION,
        num_classes: int = 1000,
        in_channels: int = 3,
        aux_logits: bool = True,
        transform_input: bool = False,
        dropout: float | None = None,
        dropout_aux: float = 0.7,
        act_layer: ActLayer | None = None,
        init: str = "kaiming",
    ) -> None:
        super().__init__()
        check_transform_input(transform_input, in_channels)
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        block, act = cfg.conv_block, act_layer

        def pool(kernel: int = 3) -> nn.MaxPool2d:
            pad = cfg.pool_padding if kernel == 3 else 0
            return nn.MaxPool2d(kernel, stride=2, padding=pad, ceil_mode=cfg.ceil_mode)

        def lrn() -> nn.Module | None:
            return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0) if cfg.lrn else None

        self.conv1 = block(in_channels, 64, act, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = pool()
        self.lrn1 = lrn()
        self.conv2 = block(64, 64, act, kernel_size=1)
        self.conv3 = block(64, 192, act, kernel_size=3, padding=1)
        self.lrn2 = lrn()
        self.maxpool2 = pool()
        for name, icfg in INCEPTION_CFGS.items():
            setattr(self, name, Inception(icfg, block, cfg.branch3_kernel, cfg.ceil_mode, act))
            if name == "inception3b":
                self.maxpool3 = pool()
            elif name == "inception4e":
                self.maxpool4 = pool(cfg.maxpool4_kernel)
        if aux_logits:
            self.aux1 = cfg.aux_block(INCEPTION_CFGS["inception4a"].out_channels, num_classes,
                                      dropout_aux, act)
            self.aux2 = cfg.aux_block(INCEPTION_CFGS["inception4d"].out_channels, num_classes,
                                      dropout_aux, act)
        else:
            self.aux1 = None
            self.aux2 = None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=cfg.dropout if dropout is None else dropout)
        self.fc = nn.Linear(INCEPTION_CFGS["inception5b"].out_channels, num_classes)

        heads = [self.fc] + ([self.aux1.fc2, self.aux2.fc2] if aux_logits else [])
        init_with_classifiers(self, init, heads, kaiming_mode=cfg.kaiming_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutputs:
        if self.transform_input:
            x = transform_input(x)
        x = self.conv1(x)  # N x 64 x 112 x 112
        x = self.maxpool1(x)  # N x 64 x 56 x 56
        if self.lrn1 is not None:
            x = self.lrn1(x)
        x = self.conv3(self.conv2(x))  # N x 192 x 56 x 56
        if self.lrn2 is not None:
            x = self.lrn2(x)
        x = self.maxpool2(x)  # N x 192 x 28 x 28
        x = self.inception3b(self.inception3a(x))  # N x 480 x 28 x 28
        x = self.maxpool3(x)  # N x 480 x 14 x 14
        x = self.inception4a(x)  # N x 512 x 14 x 14
        aux_active = self.training and self.aux1 is not None
        aux1 = self.aux1(x) if aux_active else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))  # N x 528 x 14 x 14
        aux2 = self.aux2(x) if aux_active else None
        x = self.inception4e(x)  # N x 832 x 14 x 14
        x = self.maxpool4(x)  # N x 832 x 7 x 7
        x = self.inception5b(self.inception5a(x))  # N x 1024 x 7 x 7
        x = torch.flatten(self.avgpool(x), 1)  # N x 1024
        x = self.fc(self.dropout(x))
        if self.training and self.aux_logits:
            return GoogLeNetOutputs(x, aux2, aux1)
        return x


PAPER_TITLE = "Going deeper with convolutions"
PAPER_URL = "https://arxiv.org/abs/1409.4842"
TV_WEIGHTS = "torchvision GoogLeNet_Weights.IMAGENET1K_V1"


# the lecture's stem table (224 -> 28) and global-average-pooling slide; the paper's two LRN layers
# (lrn1, lrn2) have no row there, which is why the slide's stem is 7.5 MB where this one is 10,780 KB
LECTURE_NAMES = {"conv1.conv": "conv", "maxpool1": "max-pool", "conv2.conv": "conv", "conv3.conv": "conv",
                 "maxpool2": "max-pool", "avgpool": "avg-pool", "fc": "fc"}


@register_model(
    family="googlenet",
    paper=PAPER_TITLE,
    year=2014,
    url=PAPER_URL,
    default_input=(3, 224, 224),
    min_input=(3, 65, 65),
    published={
        "params": Published(
            6_797_700, "GoogLeNet paper Table 1 (sum of the params column: 6,797.7K)",
            "Table 1 counts weights only, in K = 1024 (3a: 163,328/1024 = 159.5 -> 159K), and 7 of "
            "its rows disagree with its own channel counts (conv1 2.7K vs 9.19K, 5a 1072K vs 1018K, "
            "4c 463K vs 497.5K, ...). This model: 6,998,552 params without aux heads "
            "(6,990,272 weights = 6,826.4K)"),
        "macs": Published(
            1.5e9, "GoogLeNet paper Sec. 5 ('1.5 billion multiply-adds'); Table 1 ops column sums to 1,502M",
            "conv+fc multiply-adds at 224x224; the channel counts give 1,582.7M because Table 1 "
            "prints conv1 as 34M (7x7x3x64 at 112x112 is 118.0M) and 5a as 54M (51.1M)"),
        "top5_err": Published(10.07, "GoogLeNet paper Table 3", "1 model, 1 crop (validation)"),
        "ilsvrc_top5_err": Published(6.7, "lecture (ILSVRC 2014 winner)",
                                     "paper: 6.67% on the test set, 7-model ensemble, 144 crops"),
        "top1_err": Published(None, "GoogLeNet paper", "the paper reports top-5 error only"),
    },
    notes="Table 1 network: 5x5 branches, LRN, no BN; aux heads in training mode only",
    lecture_names=LECTURE_NAMES,
)
def googlenet(**kwargs) -> GoogLeNet:
    """Inception v1 as the paper's Table 1 (5x5 branches, LRN, no BN, aux heads in train mode)."""
    return GoogLeNet(PAPER, **kwargs)


@register_model(
    family="googlenet",
    paper=PAPER_TITLE + " (torchvision variant: BatchNorm, 3x3 in the '5x5' branch)",
    year=2014,
    url=PAPER_URL,
    default_input=(3, 224, 224),
    min_input=(3, 15, 15),
    published={
        "params": Published(6_624_904, TV_WEIGHTS + " num_params",
                            "without the aux heads (torchvision drops them when loading weights); "
                            "13,004,888 with them"),
        "macs": Published(1.498e9, TV_WEIGHTS + " _ops", "GMACs at 224x224"),
        "top1_err": Published(30.222, TV_WEIGHTS + " (acc@1 69.778)"),
        "top5_err": Published(10.47, TV_WEIGHTS + " (acc@5 89.530)"),
    },
    torchvision_name="googlenet",
    notes="state_dict-compatible with torchvision.models.googlenet",
)
def googlenet_bn(**kwargs) -> GoogLeNet:
    """torchvision's GoogLeNet: BN after every conv, 3x3 in the '5x5' branch, ceil-mode pools."""
    return GoogLeNet(TORCHVISION, **kwargs)
