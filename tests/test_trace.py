"""The tracer: functional ops are rows, shared modules count once, the user's module is untouched."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archstat


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.bn(self.conv(x))
        y += x  # in-place add, recorded as add
        return F.relu(y)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.block = Block()
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = self.stem(x)
        x = self.block(x)
        x = self.block(x)  # called twice: two rows, params once
        a = F.adaptive_avg_pool2d(x, 1)
        b = torch.mean(x, dim=(2, 3), keepdim=True)
        x = torch.cat([a, b], 1)
        x = x.view(x.size(0), -1)
        return self.head(x)


def test_functional_ops_are_rows_with_owner_names():
    df = archstat.analyze(Net(), (3, 8, 8))
    ops = list(zip(df.name, df.op, df.call))
    assert ("block", "add", 0) in ops and ("block", "add", 1) in ops
    assert ("block", "relu", 1) in ops
    assert ("block.conv", "Conv2d", 1) in ops
    assert ("", "adaptive_avg_pool2d", 0) in ops and ("", "mean", 0) in ops and ("", "cat", 0) in ops
    assert ("", "view", 0) in ops
    assert df.set_index(["name", "op", "call"]).index.is_unique
    cat = df[df.op == "cat"].iloc[0]
    assert cat.in_shapes == [[4, 1, 1], [4, 1, 1]] and cat.out_shape == [8, 1, 1]


def test_shared_module_params_count_once():
    model = Net()
    df = archstat.analyze(model, (3, 8, 8))
    assert df.attrs["total"]["params"] == sum(p.numel() for p in model.parameters())
    second = df[(df.name == "block.conv") & (df.call == 1)].iloc[0]
    assert second.params == 0 and second.macs > 0


def test_sources_link_the_graph():
    df = archstat.analyze(Net(), (3, 8, 8))
    add0 = df[(df.op == "add") & (df.call == 0)].iloc[0]
    producers = {df.iloc[i]["name"] + "/" + df.iloc[i]["op"] for i in add0.sources}
    assert producers == {"block.bn/BatchNorm2d", "stem/Conv2d"}


def test_user_module_is_not_mutated():
    model = Net().train()
    model.block.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    archstat.analyze(model, (3, 8, 8), mode="eval")
    archstat.analyze(model, (3, 8, 8), mode="train")
    assert [m.training for m in model.modules()] == flags
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_meta_model_allocates_nothing():
    with torch.device("meta"):
        model = Net()
    df = archstat.analyze(model, (3, 8, 8))
    assert df.attrs["total"]["params"] == sum(p.numel() for p in model.parameters())


def test_mode_changes_bn_and_dropout():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5))
    ev = archstat.analyze(model, (3, 6, 6), convention="fvcore")
    tr = archstat.analyze(model, (3, 6, 6), convention="fvcore", mode="train")
    n = 4 * 4 * 4
    assert ev.flops[1] == 2 * n and tr.flops[1] == 5 * n  # fvcore's eval and training BN prices
    assert ev.act_bytes[2] == 0 and tr.act_bytes[2] == 4 * n  # eval dropout returns its input


class Unknown(nn.Module):
    def forward(self, x):
        return torch.special.erf(x) + 1


def test_unsupported_op_is_flagged_not_zero():
    df = archstat.analyze(nn.Sequential(nn.Conv2d(3, 4, 3), Unknown()), (3, 6, 6))
    row = df[df.op.str.contains("erf")].iloc[0]
    assert not row.supported and row.out_shape == [4, 4, 4]
    assert df.attrs["partial"] and any("erf" in u for u in df.attrs["unsupported"])


class DataDependent(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x
        return -x


def test_value_dependent_model_is_a_clear_error():
    with pytest.raises(archstat.ArchstatError, match=r"cannot trace DataDependent.*meta-device run at op Tensor.__bool__ \(a Python branch"):
        archstat.analyze(DataDependent(), (3, 4, 4))


def test_upto_cuts_after_a_subtree():
    df = archstat.analyze(Net(), (3, 8, 8), upto="block")
    assert df.iloc[-1]["name"] == "block" and df.iloc[-1].op == "relu" and df.iloc[-1].call == 1


class ShapeBranch(nn.Module):
    """fx cannot trace `if x.shape[-1] > 4` (a Proxy has no truth value); a meta-device run can."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        y = self.conv(x)
        if y.shape[-1] > 4:
            y = F.max_pool2d(y, 2)
        y = torch.flatten(F.adaptive_avg_pool2d(y, 1), 1) + 1
        return self.fc(y[:, :8])


def test_meta_fallback_matches_pytorch_and_leaves_model_alone():
    model = ShapeBranch()
    df = archstat.analyze(model, (3, 12, 12))
    assert df.attrs["engine"] == "meta"
    assert list(df.op) == ["Conv2d", "max_pool2d", "adaptive_avg_pool2d", "flatten", "add", "getitem", "Linear"]
    assert df.attrs["total"]["params"] == sum(p.numel() for p in model.parameters())
    assert df.macs[0] == 8 * 10 * 10 * 27 and df.out_shape[1] == [8, 5, 5]
    assert list(df.sources) == [[-1], [0], [1], [2], [3], [4], [5]]
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    with pytest.raises(archstat.ArchstatError, match="symbolic mode needs fx"):
        archstat.analyze(model, (3, 12, 12), symbolic=True)


def test_tensor_slicing_is_a_view_with_the_right_shape():
    class Slice(nn.Module):
        def forward(self, x):
            return x[:, :2, 1:, None][..., 0]

    df = archstat.analyze(Slice(), (3, 8, 8))
    assert list(df.out_shape) == [[2, 7, 1, 8], [2, 7, 1]]
    assert list(df.out_shape) == [list(t.shape[1:]) for t in (torch.zeros(1, 3, 8, 8)[:, :2, 1:, None],
                                                               torch.zeros(1, 3, 8, 8)[:, :2, 1:, None][..., 0])]
