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

from typing import Callable, Sequence, Union

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

# name -> (cfg, batch_norm, params, torchvision GMAC, top-1 err, top-5 err); params: torchvision
# num_params, equal to Table 2's exact count for the plain nets.
_SPECS: dict[str, tuple[str, bool, int, float, float, float]] = {
    "vgg11": ("A", False, 132_863_336, 7.609, 30.98, 11.37),
    "vgg11_bn": ("A", True, 132_868_840, 7.609, 29.62, 10.19),
    "vgg13": ("B", False, 133_047_848, 11.308, 30.07, 10.75),
    "vgg13_bn": ("B", True, 133_053_736, 11.308, 28.45, 9.63),
    "vgg16": ("D", False, 138_357_544, 15.47, 28.41, 9.62),
    "vgg16_bn": ("D", True, 138_365_992, 15.47, 26.63, 8.50),
    "vgg19": ("E", False, 143_667_240, 19.632, 27.62, 9.12),
    "vgg19_bn": ("E", True, 143_678_248, 19.632, 25.76, 8.15),
}


def _published(name: str) -> dict[str, Published]:
    cfg, bn, params, gmac, top1, top5 = _SPECS[name]
    tv = name.upper()  # torchvision's weights enums: VGG11_Weights, VGG11_BN_Weights, ...
    if bn:
        p = Published(params, f"torchvision {tv}_Weights.IMAGENET1K_V1 num_params",
                      "the paper has no BatchNorm variant; BN adds 2 params per conv channel")
    else:
        p = Published(params, f"{TABLE2} (prints {round(params / 1e6)} M); exact: torchvision num_params")
    out = {
        "params": p,
        "macs": Published(gmac * 1e9, _TV_OPS.format(tv), "BatchNorm is not counted"),
        "top1_err": Published(top1, OLD_DOCS),
        "top5_err": Published(top5, OLD_DOCS),
    }
    if name in ("vgg16", "vgg19"):
        out["ilsvrc_top5_err"] = _ILSVRC
    return out


def _register(name: str, doc: str) -> Callable[..., VGG]:
    cfg, bn = _SPECS[name][:2]

    def builder(**kwargs) -> VGG:
        return VGG(cfg, batch_norm=bn, **kwargs)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = doc
    return register_model(
        family="vgg", paper="Very Deep Convolutional Networks for Large-Scale Image Recognition",
        year=2015, url="https://arxiv.org/abs/1409.1556", default_input=(3, 224, 224),
        min_input=(3, 32, 32), published=_published(name), torchvision_name=name,
    )(builder)


vgg11 = _register("vgg11", "VGG-11, configuration A.")
vgg11_bn = _register("vgg11_bn", "VGG-11 (A) with BatchNorm after every conv.")
vgg13 = _register("vgg13", "VGG-13, configuration B.")
vgg13_bn = _register("vgg13_bn", "VGG-13 (B) with BatchNorm after every conv.")
vgg16 = _register("vgg16", "VGG-16, configuration D.")
vgg16_bn = _register("vgg16_bn", "VGG-16 (D) with BatchNorm after every conv.")
vgg19 = _register("vgg19", "VGG-19, configuration E.")
vgg19_bn = _register("vgg19_bn", "VGG-19 (E) with BatchNorm after every conv.")

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
)
def vgg16_lecture(**kwargs) -> VGG:
    """The lecture slide's VGG-16 (stage 3 has two convs): its 13.6 GFLOP and 48.6 MB."""
    return VGG("D_lecture", **kwargs)
