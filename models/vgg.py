"""VGG (Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition").

Configurations A, B, D, E of the paper's Table 1 as ``vgg11``, ``vgg13``, ``vgg16``, ``vgg19``,
with torchvision's layout (``features`` / ``avgpool`` = AdaptiveAvgPool2d((7, 7)) / ``classifier``)
and state_dict keys, so torchvision checkpoints load with ``strict=True``.  Every conv is 3x3/1
pad 1 and every pool 2x2/2, so a stage of n convs at C channels costs n * 9 C^2 H W MACs, and two
3x3 convs see a 5x5 field for 18 C^2 parameters against 25 C^2 (the lecture's argument).

Parameters equal the paper's Table 2 (printed in millions: 133 / 133 / 138 / 144):
A 132,863,336; B 133,047,848; D 138,357,544; E 143,667,240.  The ``_bn`` variants (torchvision's,
not the paper's) add a BatchNorm after every conv: +2 parameters per channel.
MACs at 224x224: 7,609,090,048 / 11,308,466,176 / 15,470,264,320 / 19,632,062,464
(torchvision's ``_ops`` 7.609 / 11.308 / 15.47 / 19.632).

``vgg16_lecture`` is the VGG-16 of the lecture's "AlexNet vs VGG-16" slide.  Its totals
(48.6 MB, 138M params, 13.6 GFLOP) and per-stage bars are reproduced exactly only by a VGG-16 whose
third stage has two convs instead of three: 137,767,464 params, 13,620,576,256 MACs
(per stage 1936 / 2775 / 2775 / 4624 / 1387 M, fc 124 M; reference_numbers.md prints 13,620,830,208,
253,952 more than its own stage sums), 49,784 KB of conv outputs.  The real VGG-16 gives 138,357,544 params and 15,470,264,320 MACs.
Build any other variant with ``VGG(cfg=[...])``.

Smallest input: 32x32 (five 2x2/2 pools need 2^5 pixels; ``avgpool`` then upsamples 1x1 to 7x7).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence, Union

from torch import nn

from archstat.models._heads import PlainCNN, fc_head
from archstat.models.init import init_weights
from archstat.models._registry import Published, register_model

Cfg = Sequence[Union[int, str]]

# Table 1 of the paper as torchvision spells it: ints are 3x3 conv widths, "M" a 2x2/2 max pool.
CFGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
    # the lecture slide's VGG-16: D with two convs in stage 3
    "D_lecture": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


def make_layers(
    cfg: Cfg,
    batch_norm: bool = False,
    in_channels: int = 3,
    act_layer: Callable[[], nn.Module] | None = None,
) -> nn.Sequential:
    """torchvision's ``make_layers``: conv [-> BN] -> act per int, max pool per "M"."""
    act = act_layer or (lambda: nn.ReLU(inplace=True))
    layers: list[nn.Module] = []
    c = in_channels
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))  # N x c x H/2 x W/2
            continue
        v = int(v)
        layers.append(nn.Conv2d(c, v, kernel_size=3, padding=1))  # N x v x H x W
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(act())
        c = v
    return nn.Sequential(*layers)


class VGG(PlainCNN):
    """VGG built from a configuration list (or a key of ``CFGS``)."""

    def __init__(
        self,
        cfg: Cfg | str = "D",
        batch_norm: bool = False,
        num_classes: int = 1000,
        in_channels: int = 3,
        dropout: float = 0.5,
        act_layer: Callable[[], nn.Module] | None = None,
        init: str = "kaiming",
    ) -> None:
        super().__init__()
        cfg = CFGS[cfg] if isinstance(cfg, str) else list(cfg)
        act = act_layer or (lambda: nn.ReLU(inplace=True))
        last = [int(v) for v in cfg if v != "M"][-1]
        self.features = make_layers(cfg, batch_norm, in_channels, act)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))  # identity at 224x224
        self.classifier = fc_head(last * 7 * 7, num_classes, dropout, act, dropout_first=False)
        init_weights(self, init)


TABLE2 = "Simonyan & Zisserman 2015, Table 2"
OLD_DOCS = "torchvision docs (pre-0.13), 1-crop 224x224"
_TV_OPS = "torchvision {}_Weights.IMAGENET1K_V1 _ops (GMAC at 224x224)"
_ILSVRC = Published(7.3, "lecture (ILSVRC 2014, VGG)", "the submitted entry was an ensemble")


@dataclass(frozen=True)
class VGGNumbers:
    """What the literature prints for one VGG (torchvision's weights card, the paper's Table 2)."""

    params: int  # torchvision num_params, equal to Table 2's exact count for the plain nets
    gmacs: float  # torchvision's _ops: GMAC at 224x224 (BatchNorm not counted)
    top1_err: float  # percent, 1-crop 224x224
    top5_err: float


NUMBERS: dict[str, VGGNumbers] = {
    "vgg11": VGGNumbers(params=132_863_336, gmacs=7.609, top1_err=30.98, top5_err=11.37),
    "vgg11_bn": VGGNumbers(params=132_868_840, gmacs=7.609, top1_err=29.62, top5_err=10.19),
    "vgg13": VGGNumbers(params=133_047_848, gmacs=11.308, top1_err=30.07, top5_err=10.75),
    "vgg13_bn": VGGNumbers(params=133_053_736, gmacs=11.308, top1_err=28.45, top5_err=9.63),
    "vgg16": VGGNumbers(params=138_357_544, gmacs=15.47, top1_err=28.41, top5_err=9.62),
    "vgg16_bn": VGGNumbers(params=138_365_992, gmacs=15.47, top1_err=26.63, top5_err=8.50),
    "vgg19": VGGNumbers(params=143_667_240, gmacs=19.632, top1_err=27.62, top5_err=9.12),
    "vgg19_bn": VGGNumbers(params=143_678_248, gmacs=19.632, top1_err=25.76, top5_err=8.15),
}


def _published(name: str) -> dict[str, Published]:
    n = NUMBERS[name]
    tv = name.upper()  # torchvision's weights enums: VGG11_Weights, VGG11_BN_Weights, ...
    if name.endswith("_bn"):
        p = Published(n.params, f"torchvision {tv}_Weights.IMAGENET1K_V1 num_params",
                      "the paper has no BatchNorm variant; BN adds 2 params per conv channel")
    else:
        p = Published(n.params, f"{TABLE2} (prints {round(n.params / 1e6)} M); exact: torchvision num_params")
    out = {
        "params": p,
        "macs": Published(n.gmacs * 1e9, _TV_OPS.format(tv), "BatchNorm is not counted"),
        "top1_err": Published(n.top1_err, OLD_DOCS),
        "top5_err": Published(n.top5_err, OLD_DOCS),
    }
    if name in ("vgg16", "vgg19"):
        out["ilsvrc_top5_err"] = _ILSVRC
    return out


def lecture_names(cfg: Cfg, batch_norm: bool = False) -> dict[str, str]:
    """The lecture's (and Caffe's) VGG row names from a config: conv1_1, conv1_2, pool1, ..., fc6-fc8."""
    names, index, stage, conv = {}, 0, 1, 1
    for v in cfg:
        if v == "M":
            names[f"features.{index}"] = f"pool{stage}"
            stage, conv, index = stage + 1, 1, index + 1
            continue
        names[f"features.{index}"] = f"conv{stage}_{conv}"
        conv, index = conv + 1, index + (3 if batch_norm else 2)
    return {**names, "": "flatten", "classifier.0": "fc6", "classifier.3": "fc7", "classifier.6": "fc8"}


def _vgg_model(builder: Callable[..., VGG]) -> Callable[..., VGG]:
    """Register a builder under its own name with the family's metadata and its published numbers."""
    return register_model(
        family="vgg", paper="Very Deep Convolutional Networks for Large-Scale Image Recognition",
        year=2015, url="https://arxiv.org/abs/1409.1556", default_input=(3, 224, 224),
        min_input=(3, 32, 32), published=_published(builder.__name__), torchvision_name=builder.__name__,
        lecture_names=lecture_names(CFGS[CFG_OF[builder.__name__.removesuffix("_bn")]],
                                    builder.__name__.endswith("_bn")),
    )(builder)


CFG_OF = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}


@_vgg_model
def vgg11(**kwargs: Any) -> VGG:
    """VGG-11, configuration A: 8 convs + 3 fc; 7.61 G MACs, 132.9 M params.

    https://arxiv.org/abs/1409.1556; ``kwargs`` go to :class:`VGG`.
    """
    return VGG("A", batch_norm=False, **kwargs)


@_vgg_model
def vgg11_bn(**kwargs: Any) -> VGG:
    """VGG-11 (configuration A) with BatchNorm after every conv (torchvision's, not the paper's).

    BatchNorm adds 2 parameters per conv channel; MACs leave it out, as torchvision's `_ops` do.
    """
    return VGG("A", batch_norm=True, **kwargs)


@_vgg_model
def vgg13(**kwargs: Any) -> VGG:
    """VGG-13, configuration B: A with a second conv in stages 1 and 2; 11.31 G MACs, 133.0 M params.

    https://arxiv.org/abs/1409.1556; ``kwargs`` go to :class:`VGG`.
    """
    return VGG("B", batch_norm=False, **kwargs)


@_vgg_model
def vgg13_bn(**kwargs: Any) -> VGG:
    """VGG-13 (configuration B) with BatchNorm after every conv (torchvision's, not the paper's).

    BatchNorm adds 2 parameters per conv channel; MACs leave it out, as torchvision's `_ops` do.
    """
    return VGG("B", batch_norm=True, **kwargs)


@_vgg_model
def vgg16(**kwargs: Any) -> VGG:
    """VGG-16, configuration D: three convs in stages 3 to 5; 15.47 G MACs, 138.4 M params.

    https://arxiv.org/abs/1409.1556; ``kwargs`` go to :class:`VGG`.
    """
    return VGG("D", batch_norm=False, **kwargs)


@_vgg_model
def vgg16_bn(**kwargs: Any) -> VGG:
    """VGG-16 (configuration D) with BatchNorm after every conv (torchvision's, not the paper's).

    BatchNorm adds 2 parameters per conv channel; MACs leave it out, as torchvision's `_ops` do.
    """
    return VGG("D", batch_norm=True, **kwargs)


@_vgg_model
def vgg19(**kwargs: Any) -> VGG:
    """VGG-19, configuration E: four convs in stages 3 to 5; 19.63 G MACs, 143.7 M params.

    https://arxiv.org/abs/1409.1556; ``kwargs`` go to :class:`VGG`.
    """
    return VGG("E", batch_norm=False, **kwargs)


@_vgg_model
def vgg19_bn(**kwargs: Any) -> VGG:
    """VGG-19 (configuration E) with BatchNorm after every conv (torchvision's, not the paper's).

    BatchNorm adds 2 parameters per conv channel; MACs leave it out, as torchvision's `_ops` do.
    """
    return VGG("E", batch_norm=True, **kwargs)


LECTURE = "EECS 498-007 Lecture 8 (AlexNet vs VGG-16 slide)"


@register_model(
    family="vgg",
    paper="Very Deep Convolutional Networks for Large-Scale Image Recognition (lecture slide's VGG-16)",
    year=2015,
    url="https://arxiv.org/abs/1409.1556",
    default_input=(3, 224, 224),
    min_input=(3, 32, 32),
    published={
        "params": Published(138e6, LECTURE, "slide's 138M; this net has 137,767,464 (rounds to 138M)"),
        "macs": Published(13.6e9, LECTURE, "slide's 13.6 GFLOP (multiply-adds); exact 13,620,576,256"),
        "top1_err": Published(None, LECTURE, "no error is published for this variant"),
        "top5_err": Published(
            None, LECTURE, "the 9.62 printed next to it belongs to torchvision's full VGG-16"),
    },
    notes="VGG-16 with two convs in stage 3: reproduces the slide's 48.6 MB / 13.6 GFLOP",
    lecture_names=lecture_names(CFGS["D_lecture"]),
)
def vgg16_lecture(**kwargs) -> VGG:
    """The lecture slide's VGG-16 (stage 3 has two convs): its 13.6 GFLOP and 48.6 MB."""
    return VGG("D_lecture", **kwargs)
