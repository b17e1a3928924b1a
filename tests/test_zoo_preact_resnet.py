"""Pre-activation ResNet (Identity Mappings): true identity blocks, counts derived from resnetN."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from _zoo_utils import analyze_macs, fails_at, forward_backward, n_params, one_thread
from torchvision_layout import RESNET_CFGS, resnet_layout

from archstat.models import get_model, model_info
from archstat.models.preact_resnet import PreActBasicBlock, PreActBottleneck

DEPTHS = ["18", "34", "50", "101", "152"]


def _expected_params(depth: str) -> int:
    """resnetN's conv + fc weights (same shapes; torchvision's layout) plus 2 per BN channel under
    the pre-activation placement: stem BN, one BN before every conv except layer1.0's first,
    none in the projections, and a final BN on the last block's output."""
    name = f"resnet{depth}"
    weights = sum(torch.Size(s).numel() for k, s in resnet_layout(name)
                  if (".conv" in k or k.startswith(("conv1", "fc")) or "downsample.0" in k))
    kind, layers = RESNET_CFGS[name]
    e = 1 if kind == "basic" else 4
    bn, inplanes = 64, 64  # stem
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
        for b in range(blocks):
            pre = 0 if (stage == 1 and b == 0) else inplanes
            bn += pre + (planes if kind == "basic" else 2 * planes)
            inplanes = planes * e
    return weights + 2 * (bn + 512 * e)


@pytest.mark.parametrize("depth", DEPTHS)
def test_params_and_macs(depth: str) -> None:
    m = get_model(f"preact_resnet{depth}", device="meta")
    assert n_params(m) == _expected_params(depth)
    assert model_info(f"preact_resnet{depth}").published["params"].value is None
    # conv/fc shapes equal resnetN's, so the MACs do too, for both stride placements
    for variant in ("v1.5", "v1"):
        ours = analyze_macs(get_model(f"preact_resnet{depth}", device="meta", variant=variant),
                          (3, 224, 224))
        ref = analyze_macs(get_model(f"resnet{depth}", device="meta", variant=variant), (3, 224, 224))
        assert ours == ref


def test_block_layout_is_preactivation() -> None:
    m = get_model("preact_resnet50", device="meta")
    assert m.layer1[0].bn1 is None  # follows the stem's BN-ReLU
    b = m.layer2[0]
    assert b.bn1.num_features == 256 and isinstance(b.downsample[0], nn.Conv2d)
    assert len(b.downsample) == 1  # projection: a plain 1x1 conv, no BN
    assert m.final_bn.num_features == 2048


@pytest.mark.parametrize("name, channels", [("preact_resnet18", 128), ("preact_resnet50", 512)])
def test_zero_init_gives_true_identity(name: str, channels: int) -> None:
    """With the last conv zeroed the block is exactly x -> x, negative values included: the
    identity the original block (ReLU after the sum) cannot represent."""
    torch.manual_seed(0)
    m = get_model(name).eval()
    x = torch.randn(2, channels, 8, 8)
    with torch.no_grad(), one_thread():
        torch.testing.assert_close(m.layer2[1](x), x)
        orig = get_model(name.removeprefix("preact_")).eval()
        assert torch.equal(orig.layer2[1](x), torch.relu(x))  # the original block clips x < 0
    blocks = [b for b in m.modules() if isinstance(b, (PreActBasicBlock, PreActBottleneck))]
    last = [b.conv2 if isinstance(b, PreActBasicBlock) else b.conv3 for b in blocks]
    assert all(torch.count_nonzero(c.weight) == 0 for c in last)


@pytest.mark.parametrize("name", [
    "preact_resnet18", "preact_resnet50",
    *[pytest.param(f"preact_resnet{d}", marks=pytest.mark.slow) for d in ("34", "101", "152")],
])
def test_trains_small(name: str) -> None:
    m = get_model(name, num_classes=10, act_layer=nn.Hardswish)
    assert forward_backward(m, (3, 32, 32)).shape == (2, 10)
    assert forward_backward(m, model_info(name).min_input).shape == (2, 10)
    assert fails_at(get_model(name, device="meta"), (3, 32, 32), batch=1)
