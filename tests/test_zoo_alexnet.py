"""AlexNet family: the 2012 paper's network (groups=2, LRN) and the torchvision layout's keys."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from _zoo_utils import analyze_macs, count_macs, fails_at, forward_backward, layout, n_params, one_thread
from torchvision_layout import alexnet_layout, read_layout

from archstat.models import get_model, model_info

# reference_numbers.md 7.2 (COMPUTED from the paper's layer shapes, groups=2, 227x227)
PAPER_PARAMS = {"conv1": 34_944, "conv2": 307_456, "conv3": 885_120, "conv4": 663_936,
                "conv5": 442_624, "fc6": 37_752_832, "fc7": 16_781_312, "fc8": 4_097_000}
PAPER_MACS = 724_406_816
PAPER_SHAPES = [(96, 55, 55), (256, 27, 27), (384, 13, 13), (384, 13, 13), (256, 13, 13)]


def test_alexnet_2012_params_exact() -> None:
    m = get_model("alexnet_2012", device="meta")
    assert n_params(m) == 60_965_224 == model_info("alexnet_2012").published["params"].value
    weighted = [x for x in m.modules() if isinstance(x, (nn.Conv2d, nn.Linear))]
    assert [n_params(x) for x in weighted] == list(PAPER_PARAMS.values())
    # the two-GPU split: conv2, conv4 and conv5 only see their own half
    assert [c.groups for c in weighted if isinstance(c, nn.Conv2d)] == [1, 2, 1, 2, 2]


def test_alexnet_2012_shapes_and_macs() -> None:
    m = get_model("alexnet_2012", device="meta")
    shapes: list[tuple[int, ...]] = []
    for c in (x for x in m.features if isinstance(x, nn.Conv2d)):
        c.register_forward_hook(lambda mod, i, o: shapes.append(tuple(o.shape[1:])))
    assert count_macs(m, (3, 227, 227)) == PAPER_MACS == analyze_macs(m, (3, 227, 227))
    assert shapes == PAPER_SHAPES


def test_alexnet_2012_lrn_matches_paper_formula() -> None:
    """b_c = a_c / (k + 1e-4 * sum over 5 neighbouring maps of a^2)^0.75, k = 2."""
    lrn = next(x for x in get_model("alexnet_2012", device="meta").features
               if isinstance(x, nn.LocalResponseNorm))
    lrn = nn.LocalResponseNorm(lrn.size, lrn.alpha, lrn.beta, lrn.k)
    a = torch.rand(1, 7, 2, 2, dtype=torch.float64) * 30
    c = 3
    expected = a[0, c] / (2.0 + 1e-4 * (a[0, c - 2:c + 3] ** 2).sum(0)) ** 0.75
    torch.testing.assert_close(lrn(a)[0, c], expected)


def test_alexnet_2012_trains_at_min_input() -> None:
    info = model_info("alexnet_2012")
    c, h, w = info.min_input
    m = get_model("alexnet_2012", num_classes=10, act_layer=nn.GELU, dropout=0.2)
    assert forward_backward(m, (c, h, w)).shape == (2, 10)
    assert fails_at(get_model("alexnet_2012", device="meta"), (c, h - 1, w - 1))


def test_alexnet_2012_options() -> None:
    m = get_model("alexnet_2012", device="meta", in_channels=1, num_classes=7, dropout=0.3,
                  act_layer=nn.SiLU)
    assert m.features[0].in_channels == 1 and m.classifier[-1].out_features == 7
    assert sum(isinstance(x, nn.SiLU) for x in m.modules()) == 7
    assert all(d.p == 0.3 for d in m.modules() if isinstance(d, nn.Dropout))


def test_alexnet_torchvision_keys() -> None:
    """Our ``alexnet`` state_dict = torchvision's, derived from its source (tests/torchvision_layout)."""
    assert read_layout("alexnet") == alexnet_layout()
    assert layout(get_model("alexnet", device="meta")) == alexnet_layout()


@pytest.mark.parametrize("name", ["alexnet", "alexnet_2012"])
def test_initial_loss_near_log_classes(name: str) -> None:
    """The small final layer makes the untrained loss ~ ln(num_classes) (the lecture's sanity check)."""
    torch.manual_seed(0)
    m = get_model(name, num_classes=10).eval()
    with torch.no_grad(), one_thread():
        loss = nn.functional.cross_entropy(m(torch.randn(4, *model_info(name).min_input)),
                                           torch.arange(4))
    assert abs(loss.item() - torch.log(torch.tensor(10.0)).item()) < 0.1
