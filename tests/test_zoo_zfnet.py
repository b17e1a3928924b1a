"""ZFNet: Fig. 3 shapes and counts (reference_numbers.md 7.1) and the lecture's widened variant."""
from __future__ import annotations

import pytest
from torch import nn

from _zoo_utils import analyze_macs, count_macs, fails_at, forward_backward, n_params

from archstat.models import get_model, model_info

# reference_numbers.md 7.1 (COMPUTED for Fig. 3, 1000 classes, with bias)
FIG3_LAYER_PARAMS = [14_208, 614_656, 885_120, 1_327_488, 884_992, 37_752_832, 16_781_312, 4_097_000]
FIG3_MACS = 1_168_032_896
# Fig. 3: conv1 110x110, pool1 55x55, conv2 26x26, pool2 13x13, conv3-5 13x13, pool5 6x6
FIG3_SIZES = {"Conv2d": [110, 26, 13, 13, 13], "MaxPool2d": [55, 13, 6]}


@pytest.mark.parametrize("name, params", [("zfnet_paper", 62_357_608), ("zfnet", 107_627_624)])
def test_params(name: str, params: int) -> None:
    m = get_model(name, device="meta")
    assert n_params(m) == params
    # no table prints either count: the registry says so instead of inventing one
    pub = model_info(name).published["params"]
    assert pub.value is None and pub.note


def test_fig3_layers_shapes_and_macs() -> None:
    m = get_model("zfnet_paper", device="meta")
    weighted = [x for x in m.modules() if isinstance(x, (nn.Conv2d, nn.Linear))]
    assert [n_params(x) for x in weighted] == FIG3_LAYER_PARAMS
    sizes: dict[str, list[int]] = {"Conv2d": [], "MaxPool2d": []}
    for mod in m.features:
        if type(mod).__name__ in sizes:
            mod.register_forward_hook(lambda mo, i, o: sizes[type(mo).__name__].append(o.shape[-1]))
    assert count_macs(m, (3, 224, 224)) == FIG3_MACS == analyze_macs(m, (3, 224, 224))
    assert sizes == FIG3_SIZES


def test_widened_conv3_to_5() -> None:
    convs = [x for x in get_model("zfnet", device="meta").features if isinstance(x, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 256, 512, 1024, 512]
    assert [(c.kernel_size, c.stride) for c in convs[:2]] == [((7, 7), (2, 2)), ((5, 5), (2, 2))]


@pytest.mark.parametrize("name", ["zfnet", "zfnet_paper"])
def test_min_input(name: str) -> None:
    c, h, w = model_info(name).min_input
    assert fails_at(get_model(name, device="meta"), (c, h - 1, w - 1))
    assert not fails_at(get_model(name, device="meta"), (c, h, w))


def test_trains_at_min_input_with_options() -> None:
    m = get_model("zfnet_paper", num_classes=10, in_channels=1, act_layer=nn.LeakyReLU, dropout=0.1)
    assert forward_backward(m, (1, *model_info("zfnet_paper").min_input[1:])).shape == (2, 10)
    assert sum(isinstance(x, nn.LeakyReLU) for x in m.modules()) == 7
