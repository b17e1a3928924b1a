"""F.scaled_dot_product_attention on the CPU flash kernel: rows worked out by hand, and validate
(real run, saved tensors, both oracles) in eval and train.  Calls that run the math kernel are
flagged, not guessed."""
import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archstat
from _validated import validated

logging.getLogger("fvcore").setLevel(logging.ERROR)


class SelfAttention(nn.Module):
    """A transformer block's attention: qkv projection, heads, SDPA, output projection."""

    def __init__(self, d: int = 16, heads: int = 4, causal: bool = False, mask: str = "", dropout: float = 0.0,
                 length: int = 6, contiguous: bool = False) -> None:
        super().__init__()
        self.heads, self.causal, self.dropout, self.contiguous = heads, causal, dropout, contiguous
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.register_buffer("mask", None if not mask else
                             (torch.rand(length, length) > 0.3) | torch.eye(length, dtype=torch.bool) if mask == "bool"
                             else torch.randn(length, length))

    def forward(self, x):
        n, length, d = x.shape
        q, k, v = self.qkv(x).reshape(n, length, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if self.contiguous:  # (B, H, L, E) in memory order: the kernel's output follows q's layout
            q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask, is_causal=self.causal,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(n, length, d))


CASES = {  # name -> (module, input per sample)
    "plain": (lambda: SelfAttention(), (6, 16)),
    "causal": (lambda: SelfAttention(causal=True), (6, 16)),
    "float_mask": (lambda: SelfAttention(mask="float"), (6, 16)),
    "bool_mask": (lambda: SelfAttention(mask="bool"), (6, 16)),
    "contiguous_heads": (lambda: SelfAttention(contiguous=True), (6, 16)),  # then transpose + reshape copies
}


def test_attention_row_by_hand():
    df = archstat.analyze(SelfAttention(), (6, 16), batch=2)
    row = df[df.op == "scaled_dot_product_attention"].iloc[0]
    # B=2, H=4, L=S=6, E=Ev=4: 2*4*6*6*(4+4) MACs; out per sample 4x6x4
    assert row.supported and row.kind == "attention" and row.out_shape == [4, 6, 4]
    assert row.macs == 2 * 4 * 6 * 6 * 8 and row.flops == row.macs  # lecture: the MACs
    assert row.flops_flopcounter == 0  # FlopCounterMode has no formula for the CPU flash kernel
    assert row.flops_fvcore == 0 and row.hparams["kernel"] == "flash_cpu"
    assert row.work["transient_bytes"] == 2 * 4 * 6 * 4  # the float32 log-sum-exp


def test_the_math_kernel_is_flagged():
    model = SelfAttention(dropout=0.1).train()
    df = archstat.analyze(model, (6, 16), mode="train")
    assert not df[df.op == "scaled_dot_product_attention"].iloc[0].supported and df.attrs["partial"]


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_attention_validates(name, mode):
    build, shape = CASES[name]
    torch.manual_seed(0)
    df = validated(build(), shape, mode)
