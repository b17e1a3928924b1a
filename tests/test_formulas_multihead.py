"""nn.MultiheadAttention: the call decides (need_weights, masks, key is query), so the formula reads
the call's arguments.  Rows worked out by hand, and validate (real run, live and saved bytes, both
oracles) in eval and train for the variants PyTorch runs differently."""
import logging

import pytest
import torch
from torch import nn

import archstat
from _validated import validated

logging.getLogger("fvcore").setLevel(logging.ERROR)


class Attend(nn.Module):
    """A linear, then attention called the way ``call`` says: self / cross / kv, with its keywords."""

    def __init__(self, call: str = "self", heads: int = 4, batch_first: bool = True, kdim: int | None = None,
                 dropout: float = 0.0, need_weights: bool = True, average: bool = True, masks: str = "",
                 length: int = 6) -> None:
        super().__init__()
        self.call, self.need, self.average, self.masks = call, need_weights, average, masks
        self.batch_first = batch_first
        self.lin = nn.Linear(16, 16)
        self.mha = nn.MultiheadAttention(16, heads, batch_first=batch_first, kdim=kdim, vdim=kdim, dropout=dropout)
        self.kv = nn.Linear(16, kdim or 16)
        torch.manual_seed(1)
        self.register_buffer("attn_mask", None if "attn" not in masks else
                             ~torch.eye(length, dtype=torch.bool) & (torch.rand(length, length) > 0.6)
                             if "bool" in masks else torch.randn(length, length))

    def forward(self, x):  # N x L x 16 (batch_first) or L x N x 16
        x = self.lin(x)
        kw = {"need_weights": self.need, "average_attn_weights": self.average}
        if self.attn_mask is not None:
            kw["attn_mask"] = self.attn_mask
        if "pad" in self.masks:  # pad some keys: a boolean activation
            keys = x if self.batch_first else x.transpose(0, 1)
            kw["key_padding_mask"] = keys[..., 0] > 0.5
        y = self.kv(x)
        if self.call == "self":
            out, weights = self.mha(x, x, x, **kw)
        elif self.call == "kv":
            out, weights = self.mha(x, y, y, **kw)
        else:
            out, weights = self.mha(x, y, y * 2, **kw)
        out = (out if self.batch_first else out.transpose(0, 1)).flatten(1)  # N x L*16
        return out if not self.need else out * weights.flatten(1).sum(1, keepdim=True)  # the weights used too


CASES = {  # name -> (builder, input per sample)
    "self": (lambda: Attend(), (6, 16)),
    "self_no_weights": (lambda: Attend(need_weights=False), (6, 16)),
    "self_heads_weights": (lambda: Attend(average=False), (6, 16)),
    "seq_first": (lambda: Attend(batch_first=False), (2, 16)),
    "cross_kv": (lambda: Attend(call="kv"), (6, 16)),
    "cross_kv_no_weights": (lambda: Attend(call="kv", need_weights=False), (6, 16)),
    "kdim": (lambda: Attend(call="qkv", kdim=8), (6, 16)),
    "odd_heads": (lambda: Attend(heads=1), (6, 16)),
    "dropout": (lambda: Attend(dropout=0.2), (6, 16)),
    "bool_mask": (lambda: Attend(masks="attn bool"), (6, 16)),
    "float_mask": (lambda: Attend(masks="attn"), (6, 16)),
    "padding": (lambda: Attend(masks="pad"), (6, 16)),
    "padding_no_weights": (lambda: Attend(masks="pad", need_weights=False), (6, 16)),
}


def test_self_attention_row_by_hand():
    df = archstat.analyze(Attend(), (6, 16), batch=2, mode="train")
    row = df[df.op == "MultiheadAttention"].iloc[0]
    # B=2, L=S=6, E=16: in_proj 12*16*48 + scores and context 2 * 2*6*6*16 + out_proj 12*16*16
    assert row.supported and row.kind == "attention" and row.out_shape == [6, 16]
    assert row.macs == 12 * 16 * 48 + 2 * (2 * 6 * 6 * 16) + 12 * 16 * 16
    assert row.flops_flopcounter == 2 * row.macs  # mm, bmm, bmm, addmm
    assert row.flops_fvcore == row.macs and row.params == 4 * 16 * 16 + 4 * 16


def test_the_call_decides_need_weights_and_masks():
    """need_weights=False, given at call time, reaches the formula: no bmm's, no weights output."""
    with_weights = archstat.analyze(Attend(), (6, 16), batch=2, mode="train", convention="flopcounter")
    without = archstat.analyze(Attend(need_weights=False), (6, 16), batch=2, mode="train", convention="flopcounter")
    a = with_weights[with_weights.op == "MultiheadAttention"].iloc[0]
    b = without[without.op == "MultiheadAttention"].iloc[0]
    assert a.flops - b.flops == 2 * 2 * (2 * 6 * 6 * 16)  # the two bmm's; the flash kernel counts 0
    assert a.act_bytes - b.act_bytes == 2 * 6 * 6 * 4  # the averaged weights, N x L x S
    masked = archstat.analyze(Attend(masks="pad"), (6, 16), batch=2, mode="train", convention="fvcore")
    assert masked[masked.op == "MultiheadAttention"].iloc[0].flops == a.flops // 2 - 2 * 6 * 6 * 16  # baddbmm: no handle


def test_inference_takes_the_fused_kernel():
    row = archstat.analyze(Attend(), (6, 16), batch=2, convention="flopcounter").query("op == 'MultiheadAttention'").iloc[0]
    assert row.hparams["kernel"] == "native_mha" and row.flops == 0  # FlopCounterMode: no formula for it


class Branchy(nn.Module):
    """fx cannot trace it (a branch on a tensor's value is not the point: a Python loop over a
    tensor's length is), so the meta engine runs it: the call's keywords must reach the formula there too."""

    def __init__(self) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(16, 4, batch_first=True)

    def forward(self, x):
        for _ in range(len(x)):  # len() of a proxy: fx fails
            pass
        return self.mha(x, x, x, need_weights=False)[0]


def test_meta_engine_passes_the_call():
    df = archstat.analyze(Branchy().train(), (6, 16), batch=2, mode="train")
    row = df[df.op == "MultiheadAttention"].iloc[0]
    assert df.attrs["engine"] != "fx" and row.supported and not row.hparams["need_weights"]


@pytest.mark.parametrize("module, call", [
    (nn.MultiheadAttention(16, 4, batch_first=True, add_bias_kv=True), {}),
    (nn.MultiheadAttention(16, 4, batch_first=True, add_zero_attn=True), {}),
    (nn.MultiheadAttention(16, 4, batch_first=True, dropout=0.1).train(), {"need_weights": False}),
])
def test_variants_not_modelled_are_flagged(module, call):
    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = module

        def forward(self, x):
            return self.mha(x, x, x, **call)[0]

    df = archstat.analyze(Wrap().train(module.training), (6, 16), mode="train" if module.training else "eval")
    assert df.attrs["partial"] and not df[df.op == "MultiheadAttention"].iloc[0].supported


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_multihead_attention_validates(name, mode):
    build, shape = CASES[name]
    torch.manual_seed(0)
    df = validated(build(), shape, mode)


class TinyViT(nn.Module):
    """Patches (a strided conv), a class token, position embedding, two pre-norm encoder blocks
    (nn.MultiheadAttention with need_weights=False, as torchvision's ViT calls it), a head."""

    def __init__(self, dim: int = 16, depth: int = 2, classes: int = 10) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, stride=4)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, 17, dim))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(2 * depth))
        self.attn = nn.ModuleList(nn.MultiheadAttention(dim, 4, batch_first=True) for _ in range(depth))
        self.mlp = nn.ModuleList(nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
                                 for _ in range(depth))
        self.head = nn.Linear(dim, classes)

    def forward(self, x):  # N x 3 x 16 x 16
        x = self.patch(x).flatten(2).transpose(1, 2)  # N x 16 x dim
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        for i, (attn, mlp) in enumerate(zip(self.attn, self.mlp)):
            h = self.norms[2 * i](x)
            x = x + attn(h, h, h, need_weights=False)[0]
            x = x + mlp(self.norms[2 * i + 1](x))
        return self.head(x[:, 0])


def build_tiny_vit() -> nn.Module:
    torch.manual_seed(0)
    return TinyViT()


@pytest.mark.parametrize("argv", [
    ["table", f"{__name__}:build_tiny_vit", "--input", "3x16x16", "--format", "json"],
    ["table", f"{__name__}:build_tiny_vit", "--input", "3x16x16", "--training", "--format", "json"],
])
def test_tiny_vit_tables_fully_costed(argv, capsys):
    import json

    from archstat.cli import main

    assert main(argv) == 0
    table = json.loads(capsys.readouterr().out)
    rows = [r for r in table["layers"] if r["op"] == "MultiheadAttention"]
    assert len(rows) == 2 and all(r["supported"] for r in table["layers"])


def test_tiny_vit_validate_train_and_compare(capsys):
    import json

    from archstat.cli import main

    vit = f"{__name__}:build_tiny_vit"
    assert main(["validate", vit, "--input", "3x16x16", "--mode", "train", "--batch", "2", "--quiet"]) == 0
    assert "AGREE: every check passed" in capsys.readouterr().out
    assert main(["compare", vit, vit, "--input", "3x16x16", "--format", "json"]) == 0
    models = json.loads(capsys.readouterr().out)["models"]
    # fully costed: no "partial: unsupported ..." note, and the training memory is known
    assert all("partial" not in str(m.get("notes")) and m["train_bytes_1"] for m in models), models


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_tiny_vit_fully_costed(mode):
    df = validated(build_tiny_vit(), (3, 16, 16), mode)
