"""ZFNet (Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014).

The lecture calls ZFNet "a bigger AlexNet": conv1 becomes 7x7 stride 2 (AlexNet: 11x11 stride 4)
and conv3/4/5 widen from 384/384/256 to 512/1024/512.  The paper's Fig. 3 network keeps
384/384/256; the 512/1024/512 widths are its Table 2/3 variant "(b)".  Both are here:

- ``zfnet``: Fig. 3 with conv3/4/5 = 512/1024/512, as the lecture states.  107,627,624 params,
  no paper table prints that count (published ``None``).
- ``zfnet_paper``: Fig. 3 as drawn.  62,357,608 params, 1,168,032,896 MACs at 224x224.

Choices the paper leaves open (it states sizes, not paddings):

- conv1 7x7/2 with padding 1: floor((224 + 2 - 7)/2) + 1 = 110, the figure's 110x110.
- The 3x3/2 max pools round up (``ceil_mode=True``, as cuda-convnet, on which the paper's
  implementation was based (Sec. 3), and Caffe size pooled maps):
  ceil((110 - 3)/2) + 1 = 55 and ceil((26 - 3)/2) + 1 = 13, the figure's 55 and 13 (rounding down
  would give 54 and 12).  pool5: 13 -> 6 either way.
- conv2 5x5/2 without padding: floor((55 - 5)/2) + 1 = 26; conv3-5 3x3/1 padding 1 keep 13x13.
- "Contrast normalized across feature maps" after pool1 and pool2 (Fig. 3; Sec. 2 points to
  Krizhevsky et al. for the details): modelled as the AlexNet paper's LRN (n=5, k=2,
  alpha=1e-4, beta=0.75).  The ZF paper gives no constants.  Order as in the caption:
  conv -> ReLU -> pool -> normalisation (AlexNet normalises before pooling).
- Dense connections throughout (Sec. 3: the paper replaces AlexNet's two-GPU sparse connections).
- Dropout 0.5 on fc6 and fc7 (Sec. 3).  The paper's renormalisation of conv filters whose RMS
  exceeds 0.1 is a training-time rule, not part of the module.
- ``AdaptiveAvgPool2d((6, 6))`` before fc6 is the identity at 224x224 and lets smaller inputs run.

Smallest input: 47x47 for both.  With rounded-up pooling a window only has to start inside the
map, so pool5 turns a 2x2 map into 1x1: 47 -> conv1 22 -> pool1 11 -> conv2 4 -> pool2 2 -> pool5 1.
At 46: conv1 21 -> pool1 10 -> conv2 3 -> pool2 1, and pool5 has no 3x3 window left.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from archstat.models._heads import PlainCNN, fc_head
from archstat.models.init import init_weights
from archstat.models._registry import Published, register_model
from archstat.models.alexnet import paper_lrn

ZF_PAPER = "Zeiler & Fergus 2014"
ZF_TABLE2 = f"{ZF_PAPER}, Table 2 (ImageNet 2012 val, 1 convnet)"

# conv1..conv5 filter counts, as data
CFGS: dict[str, tuple[int, int, int, int, int]] = {
    "fig3": (96, 256, 384, 384, 256),  # the paper's Fig. 3
    "lecture": (96, 256, 512, 1024, 512),  # Fig. 3 with Table 3's widened layers 3,4,5
}


class ZFNet(PlainCNN):
    """ZFNet with the zoo's common options; ``widths`` are the five conv layers' filter counts."""

    def __init__(
        self,
        widths: tuple[int, int, int, int, int] = CFGS["lecture"],
        num_classes: int = 1000,
        in_channels: int = 3,
        dropout: float = 0.5,
        act_layer: Callable[[], nn.Module] | None = None,
        init: str = "kaiming",
    ) -> None:
        super().__init__()
        act = act_layer or (lambda: nn.ReLU(inplace=True))
        c1, c2, c3, c4, c5 = widths
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel_size=7, stride=2, padding=1),  # N x c1 x 110 x 110
            act(),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),  # N x c1 x 55 x 55
            paper_lrn(),
            nn.Conv2d(c1, c2, kernel_size=5, stride=2),  # N x c2 x 26 x 26
            act(),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),  # N x c2 x 13 x 13
            paper_lrn(),
            nn.Conv2d(c2, c3, kernel_size=3, padding=1),  # N x c3 x 13 x 13
            act(),
            nn.Conv2d(c3, c4, kernel_size=3, padding=1),  # N x c4 x 13 x 13
            act(),
            nn.Conv2d(c4, c5, kernel_size=3, padding=1),  # N x c5 x 13 x 13
            act(),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),  # N x c5 x 6 x 6
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = fc_head(c5 * 6 * 6, num_classes, dropout, act, dropout_first=True)
        init_weights(self, init)


_COMMON = dict(
    family="zfnet",
    paper="Visualizing and Understanding Convolutional Networks",
    year=2014,
    url="https://arxiv.org/abs/1311.2901",
    default_input=(3, 224, 224),
    min_input=(3, 47, 47),
)
_ILSVRC = Published(
    11.7, "lecture (ILSVRC 2013 winner)",
    "the winning 2013 entry (Clarifai, an ensemble); the paper's own best ensemble: 14.8 test top-5",
)


@register_model(
    **_COMMON,
    published={
        "params": Published(
            None, ZF_PAPER, "no paper table prints the widened variant's count; computed: 107,627,624",
        ),
        "macs": Published(None, ZF_PAPER, "the paper prints no operation count"),
        "top5_err": Published(16.0, ZF_TABLE2, "variant (b): layers 3,4,5 with 512,1024,512 maps"),
        "top1_err": Published(37.5, ZF_TABLE2, "variant (b): layers 3,4,5 with 512,1024,512 maps"),
        "ilsvrc_top5_err": _ILSVRC,
    },
    notes="lecture's 'bigger AlexNet': Fig. 3 with conv3/4/5 = 512/1024/512",
)
def zfnet(**kwargs) -> ZFNet:
    """The lecture's ZFNet: Fig. 3 with conv3/4/5 widened to 512/1024/512."""
    return ZFNet(CFGS["lecture"], **kwargs)


@register_model(
    **_COMMON,
    published={
        "params": Published(
            None, ZF_PAPER, "the paper prints no parameter count; computed: 62,357,608",
        ),
        "macs": Published(
            None, ZF_PAPER, "the paper prints no operation count; computed: 1,168,032,896 at 224x224",
        ),
        "top5_err": Published(16.5, ZF_TABLE2, "1 convnet as per Fig. 3"),
        "top1_err": Published(38.4, ZF_TABLE2, "1 convnet as per Fig. 3"),
        "ilsvrc_top5_err": _ILSVRC,
    },
    notes="Fig. 3 as drawn: conv3/4/5 = 384/384/256",
)
def zfnet_paper(**kwargs) -> ZFNet:
    """The ZF paper's Fig. 3 network (conv3/4/5 = 384/384/256)."""
    return ZFNet(CFGS["fig3"], **kwargs)
