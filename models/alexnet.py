"""AlexNet (Krizhevsky, Sutskever, Hinton, NIPS 2012), in the lecture's / torchvision's layout.

``alexnet`` is the network of the lecture's per-layer table: 64-192-384-256-256 filters, 227x227
input, laid out as torchvision's ``AlexNet`` (``features`` / ``avgpool`` / ``classifier``) so that
its state_dicts load with ``strict=True``.

Lecture table, reproduced exactly by ``archstat table alexnet`` (lecture convention, fp32):
conv1 64x56x56, 784 KB, 23,296 params, 72,855,552 flop; pool1 64x27x27, 182.25 KB, 419,904 flop;
fc6 37,752,832 params (the seed's 37,725,832 is a typo of 9216*4096 + 4096).  The slide's conv4
"145 M" is a typo too: 256*13*13 * 384*3*3 = 149,520,384.

Smallest input: 63x63.  The three 3x3/2 max pools and the 11x11/4 conv need
floor((H + 4 - 11)/4) + 1 >= 15 so that pool5 still sees a 3x3 window.

``alexnet_2012`` is the paper's own network (Sec. 3.5, Fig. 2) as one model: 96-256-384-384-256
filters, the two-GPU split as ``groups=2`` on conv2, conv4 and conv5 (conv3 and the FC layers see
both halves), local response normalisation after the ReLUs of conv1 and conv2, overlapping 3x3/2
max pools after both LRNs and after conv5, 227x227 input (no padding on conv1: the paper's
"224x224" gives a non-integer (224 - 11)/4 + 1).  60,965,224 parameters for 1000 classes (the
abstract rounds to "60 million"); 724,406,816 MACs at 227x227.

LRN, paper: b_c = a_c / (k + alpha * sum_{c' in window of n} a_{c'}^2)^beta, with k=2, n=5,
alpha=1e-4, beta=0.75.  PyTorch's ``LocalResponseNorm`` divides its ``alpha`` by ``size``, so the
paper's alpha is passed as ``alpha * n = 5e-4`` (Caffe's ``bvlc_alexnet`` passes 1e-4 to a formula
that also divides by n, i.e. an LRN five times weaker than the paper's).

Smallest input for ``alexnet_2012``: 67x67.  With no conv1 padding, floor((H - 11)/4) + 1 >= 15
is needed so that pool5 still sees a 3x3 window.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from archstat.models._heads import PlainCNN, fc_head
from archstat.models.init import init_weights
from archstat.models._registry import Published, register_model

LECTURE = "EECS 498-007 Lecture 8 (AlexNet table)"


class AlexNet(PlainCNN):
    """torchvision-compatible AlexNet with the zoo's common options."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        dropout: float = 0.5,
        act_layer: Callable[[], nn.Module] | None = None,
        init: str = "kaiming",
    ) -> None:
        super().__init__()
        act = act_layer or (lambda: nn.ReLU(inplace=True))
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2),  # N x 64 x 56 x 56
            act(),
            nn.MaxPool2d(kernel_size=3, stride=2),  # N x 64 x 27 x 27
            nn.Conv2d(64, 192, kernel_size=5, padding=2),  # N x 192 x 27 x 27
            act(),
            nn.MaxPool2d(kernel_size=3, stride=2),  # N x 192 x 13 x 13
            nn.Conv2d(192, 384, kernel_size=3, padding=1),  # N x 384 x 13 x 13
            act(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),  # N x 256 x 13 x 13
            act(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),  # N x 256 x 13 x 13
            act(),
            nn.MaxPool2d(kernel_size=3, stride=2),  # N x 256 x 6 x 6
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = fc_head(256 * 6 * 6, num_classes, dropout, act, dropout_first=True)
        init_weights(self, init)


# the lecture's AlexNet table, row by row (torchvision's extra AdaptiveAvgPool2d has no slide row)
LECTURE_NAMES = {"features.0": "conv1", "features.2": "pool1", "features.3": "conv2", "features.5": "pool2",
                 "features.6": "conv3", "features.8": "conv4", "features.10": "conv5", "features.12": "pool5",
                 "": "flatten", "classifier.1": "fc6", "classifier.4": "fc7", "classifier.6": "fc8"}


@register_model(
    family="alexnet",
    paper="ImageNet Classification with Deep Convolutional Neural Networks (lecture/torchvision layout)",
    year=2012,
    url="https://papers.nips.cc/paper/4824",
    default_input=(3, 227, 227),
    min_input=(3, 63, 63),
    published={
        "params": Published(61_100_840, "torchvision AlexNet_Weights.IMAGENET1K_V1 num_params"),
        "macs": Published(0.7e9, LECTURE, "slide prints 0.7 GFLOP (multiply-adds) at 227x227"),
        "top5_err": Published(20.934, "torchvision AlexNet_Weights.IMAGENET1K_V1 (acc@5 79.066)"),
        "top1_err": Published(43.478, "torchvision AlexNet_Weights.IMAGENET1K_V1 (acc@1 56.522)"),
        "ilsvrc_top5_err": Published(16.4, "lecture (ILSVRC 2012 winner)", "an average of five CNNs"),
    },
    torchvision_name="alexnet",
    lecture_names=LECTURE_NAMES,
)
def alexnet(**kwargs) -> AlexNet:
    """The lecture's AlexNet: torchvision layout, 227x227 input."""
    return AlexNet(**kwargs)


# Paper's LRN hyper-parameters (Sec. 3.3): k=2, n=5, alpha=1e-4, beta=0.75.
LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 2.0
PAPER = "Krizhevsky et al. 2012, Sec. 3.5"
# ILSVRC-2012 validation, single network (also quoted in Zeiler & Fergus 2014, Table 2)
ONE_NET = "Krizhevsky et al. 2012, Table 2 (ILSVRC-2012 val, 1 CNN)"


def paper_lrn() -> nn.LocalResponseNorm:
    """The paper's LRN; PyTorch divides alpha by size, so pass alpha * size (see module docstring)."""
    return nn.LocalResponseNorm(LRN_SIZE, alpha=LRN_ALPHA * LRN_SIZE, beta=LRN_BETA, k=LRN_K)


class AlexNet2012(PlainCNN):
    """The 2012 paper's AlexNet: two-GPU split as ``groups=2``, LRN, overlapping pooling."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        dropout: float = 0.5,
        act_layer: Callable[[], nn.Module] | None = None,
        init: str = "kaiming",
    ) -> None:
        super().__init__()
        act = act_layer or (lambda: nn.ReLU(inplace=True))
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 96, kernel_size=11, stride=4),  # N x 96 x 55 x 55
            act(),
            paper_lrn(),
            nn.MaxPool2d(kernel_size=3, stride=2),  # N x 96 x 27 x 27
            nn.Conv2d(96, 256, kernel_size=5, padding=2, groups=2),  # N x 256 x 27 x 27
            act(),
            paper_lrn(),
            nn.MaxPool2d(kernel_size=3, stride=2),  # N x 256 x 13 x 13
            nn.Conv2d(256, 384, kernel_size=3, padding=1),  # N x 384 x 13 x 13 (crosses GPUs)
            act(),
            nn.Conv2d(384, 384, kernel_size=3, padding=1, groups=2),  # N x 384 x 13 x 13
            act(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1, groups=2),  # N x 256 x 13 x 13
            act(),
            nn.MaxPool2d(kernel_size=3, stride=2),  # N x 256 x 6 x 6
        )
        # Identity at 227x227; lets smaller inputs reach the fixed-size fc6.
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = fc_head(256 * 6 * 6, num_classes, dropout, act, dropout_first=True)
        init_weights(self, init)


@register_model(
    family="alexnet",
    paper="ImageNet Classification with Deep Convolutional Neural Networks",
    year=2012,
    url="https://papers.nips.cc/paper/4824",
    default_input=(3, 227, 227),
    min_input=(3, 67, 67),
    published={
        "params": Published(
            60_965_224, f"{PAPER} layer shapes (reference_numbers.md 7.2)",
            "exact count for the paper's layers with groups=2; the abstract rounds to '60 million'",
        ),
        "macs": Published(
            None, PAPER, "the paper prints no operation count; recomputed: 724,406,816 MACs at 227x227",
        ),
        "top5_err": Published(18.2, f"{ONE_NET}", "one CNN; the 16.4 entry averaged five"),
        "top1_err": Published(40.7, f"{ONE_NET}", "one CNN"),
        "ilsvrc_top5_err": Published(16.4, "lecture (ILSVRC 2012 winner)", "an average of five CNNs"),
    },
    notes="groups=2 stands for the paper's two-GPU split; LRN alpha follows the paper's formula",
)
def alexnet_2012(**kwargs) -> AlexNet2012:
    """The paper's AlexNet (96-256-384-384-256, groups=2, LRN), 227x227 input."""
    return AlexNet2012(**kwargs)
