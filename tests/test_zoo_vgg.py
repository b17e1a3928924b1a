"""VGG: Table 2 parameter counts, torchvision key layout and MACs, the lecture's short VGG-16."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from _zoo_utils import analyze_macs, count_macs, fails_at, forward_backward, layout, n_params
from torchvision_layout import VGG_NAMES, read_layout, vgg_layout

from archstat.models import get_model, model_info
from archstat.models.vgg import VGG

# Simonyan & Zisserman Table 2, exact counts (reference_numbers.md 3)
TABLE2 = {"vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240}
# torchvision num_params of the BatchNorm variants (reference_numbers.md 5)
TV_BN = {"vgg11_bn": 132_868_840, "vgg13_bn": 133_053_736, "vgg16_bn": 138_365_992,
         "vgg19_bn": 143_678_248}
# torchvision _ops, GMAC at 224x224, printed to 3 decimals
TV_GMAC = {"vgg11": 7.609, "vgg13": 11.308, "vgg16": 15.47, "vgg19": 19.632}
ALL = [*TABLE2, *TV_BN]


@pytest.mark.parametrize("name", ALL)
def test_params_equal_published(name: str) -> None:
    expected = {**TABLE2, **TV_BN}[name]
    assert n_params(get_model(name, device="meta")) == expected
    assert model_info(name).published["params"].value == expected


@pytest.mark.parametrize("name", ALL)
def test_torchvision_state_dict_layout(name: str) -> None:
    """Keys and shapes equal torchvision's, as derived from its source (tests/torchvision_layout)."""
    expected = vgg_layout(VGG_NAMES[name.removesuffix("_bn")], batch_norm=name.endswith("_bn"))
    assert read_layout(name) == expected
    assert layout(get_model(name, device="meta")) == expected
    assert model_info(name).torchvision_name == name


@pytest.mark.parametrize("name", ALL)
def test_macs_match_torchvision_ops(name: str) -> None:
    gmac = TV_GMAC[name.removesuffix("_bn")]
    model = get_model(name, device="meta")
    macs = analyze_macs(model, (3, 224, 224))
    assert macs == count_macs(model, (3, 224, 224))
    assert abs(macs / 1e9 - gmac) < 0.0005  # torchvision prints 3 decimals


def _stage_stats(model: nn.Module) -> tuple[list[int], list[int]]:
    """Conv MACs and conv output elements per stage (a stage ends at each max pool)."""
    macs, elems = [0], [0]

    def conv_hook(m: nn.Conv2d, i: tuple[torch.Tensor], o: torch.Tensor) -> None:
        macs[-1] += o[0].numel() * m.in_channels * 9
        elems[-1] += o[0].numel()

    def pool_hook(*_: object) -> None:
        macs.append(0)
        elems.append(0)

    for m in model.features:
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(conv_hook)
        elif isinstance(m, nn.MaxPool2d):
            m.register_forward_hook(pool_hook)
    count_macs(model, (3, 224, 224))
    return macs[:-1], elems[:-1]


def test_lecture_vgg16_reproduces_slide() -> None:
    """Slide: 138M params, 13.6 GFLOP, 48.6 MB; bars 1936/2775/2775/4624/1387 MFLOP and
    25088/12544/6272/4704/1176 KB.  Only a VGG-16 with 2 convs in stage 3 gives these."""
    m = get_model("vgg16_lecture", device="meta")
    assert n_params(m) == 137_767_464 and round(n_params(m) / 1e6) == 138
    macs = analyze_macs(m, (3, 224, 224))
    assert macs == 13_620_576_256 and round(macs / 1e9, 1) == 13.6
    stage_macs, stage_elems = _stage_stats(m)
    assert [round(x / 1e6) for x in stage_macs] == [1936, 2775, 2775, 4624, 1387]
    assert [e * 4 // 1024 for e in stage_elems] == [25088, 12544, 6272, 4704, 1176]
    assert round(sum(stage_elems) * 4 / 1024 / 1024, 1) == 48.6  # conv outputs, fp32
    # the real VGG-16 does not reproduce the slide
    real_macs, real_elems = _stage_stats(get_model("vgg16", device="meta"))
    assert round(sum(real_macs) / 1e9, 1) != 13.6 and round(sum(real_elems) / 2**18, 1) != 48.6


def test_vgg_from_cfg_data() -> None:
    m = VGG(cfg=[8, "M", 16, "M"], batch_norm=True, num_classes=3)
    assert m.classifier[0].in_features == 16 * 7 * 7
    assert forward_backward(m, (3, 8, 8)).shape == (2, 3)


@pytest.mark.parametrize("name", [*ALL, "vgg16_lecture"])
def test_min_input(name: str) -> None:
    c, h, w = model_info(name).min_input
    m = get_model(name, device="meta")
    assert not fails_at(m, (c, h, w)) and fails_at(m, (c, h - 1, w - 1))


@pytest.mark.parametrize("name", [
    "vgg11", "vgg11_bn",
    *[pytest.param(n, marks=pytest.mark.slow) for n in [*ALL[1:4], *ALL[5:], "vgg16_lecture"]],
])
def test_trains_at_min_input(name: str) -> None:
    m = get_model(name, num_classes=10, act_layer=nn.ELU, dropout=0.25, in_channels=1)
    assert forward_backward(m, (1, *model_info(name).min_input[1:])).shape == (2, 10)
    assert all(d.p == 0.25 for d in m.modules() if isinstance(d, nn.Dropout))
    assert not any(isinstance(a, nn.ReLU) for a in m.modules())
