"""Hypothesis strategies for random small token/sequence models (issue 14).

A stem makes a (N, L, D) sequence: an ``nn.Embedding`` on int64 tokens, or a conv stem (a
patchifying Conv2d on an image, flattened to tokens, ViT's pattern).  Blocks then act on
(N, L, D), some with a residual: ``nn.MultiheadAttention`` (batch_first or not, need_weights,
cross attention, a 2-d bool or float ``attn_mask``, a ``key_padding_mask``), an SDPA block
(causal, masks), einsum mixing (over channels, or attention written as two einsums; over tokens is
written down, not drawn),
``nn.LSTM``/``GRU``/``RNN`` (layers, bidirectional, batch_first, an LSTM projection), LayerNorm,
GELU, and parameter arithmetic (a weight times a scale, weight standardisation, a low-rank
``A @ B`` weight).  The head pools the tokens into a Linear, or (with an embedding stem) reads out
through the embedding's own weight (tied weights).  Sometimes a second input: a boolean padding
mask (fed to attention as ``key_padding_mask``, or zeroing masked positions) or, with a conv stem,
a token tensor whose embedding is added.

Not drawn, because archstat flags them unsupported (a flag, not a number to check):
MultiheadAttention with ``add_bias_kv``, ``add_zero_attn``, ``is_causal``, ``bias=False``, a 3-d
mask, or dropout in training with ``need_weights=False``; SDPA with dropout or different head sizes
(the unfused math kernel); recurrent dropout between layers in training; einsums with a
summed-away or no contracted index, or one of size 1 (mixing over one token);
in eval, F.linear with a computed weight on a non-contiguous x (transient bytes overestimated): it
reads ``x.contiguous()`` too.
MultiheadAttention with one head is not given a padding mask (its live bytes are high).
A cross attention that is not batch_first reads a contiguous query (on a transposed view its saved
bytes are low); SDPA is not drawn with one token and one head (the transpose back swaps two
size-1 dims).
A residual adds to a contiguous ``x`` (an elementwise result's layout is always contiguous for
archstat, TensorIterator's follows the first operand).
A padding mask always keeps position 0, so no attention row is fully masked (NaN, not a cost).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch import nn

from archstat.engine.inputs import InputSpec

VOCAB = 11


class Residual(nn.Module):
    """``x + body(x)`` for a (N, L, D) body that keeps the shape.  ``x`` is made contiguous first:
    archstat gives an elementwise result a contiguous layout, where torch's TensorIterator follows the
    first operand's (a transposed ``x``; test_add_follows_first_operand_layout)."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x, mask=None):
        x = x.contiguous()
        return x + self.body(x, mask)


class Plain(nn.Module):
    """A shape-keeping or width-changing module that ignores the mask."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x, mask=None):
        return self.inner(x)


class MHA(nn.Module):
    """nn.MultiheadAttention on (N, L, D): self or cross attention (a second projection is the
    memory), batch_first or (L, N, D), with or without weights, masks."""

    def __init__(self, d: int, heads: int, batch_first: bool, need_weights: bool, cross: bool,
                 attn_mask: Optional[torch.Tensor], padding: bool, dropout: float, average: bool) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=batch_first)
        self.memory = nn.Linear(d, d) if cross else None
        self.need_weights, self.padding, self.average = need_weights, padding, average
        self.register_buffer("attn_mask", attn_mask)

    def forward(self, x, mask=None):
        q = x if self.batch_first else x.transpose(0, 1)
        if self.memory is not None and not self.batch_first:  # see test_mha_cross_time_major_view_saved
            q = q.contiguous()
        kv = q if self.memory is None else self.memory(q)
        # True where padded; `mask == 0`, as `~mask` (operator.invert) has no formula: flagged
        pad = (mask == 0) if (self.padding and mask is not None) else None
        out, _ = self.mha(q, kv, kv, key_padding_mask=pad, need_weights=self.need_weights,
                          attn_mask=self.attn_mask, average_attn_weights=self.average)
        return out if self.batch_first else out.transpose(0, 1)

    @property
    def batch_first(self) -> bool:
        return self.mha.batch_first


class SDPA(nn.Module):
    """A packed qkv projection, heads, ``F.scaled_dot_product_attention``, the output projection."""

    def __init__(self, d: int, heads: int, causal: bool, attn_mask: Optional[torch.Tensor], padding: bool) -> None:
        super().__init__()
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.heads, self.causal, self.padding = heads, causal, padding
        self.register_buffer("attn_mask", attn_mask)

    def forward(self, x, mask=None):
        n, length, d = x.size(0), x.size(1), self.out.in_features  # fx traces size() calls, not unpacking
        qkv = self.qkv(x).view(n, length, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = self.attn_mask
        if self.padding and mask is not None:  # (N, 1, 1, L): each query sees the kept keys
            attn = mask[:, None, None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn, is_causal=self.causal and attn is None)
        return self.out(y.transpose(1, 2).reshape(n, length, d))


class EinsumMix(nn.Module):
    """Mixing written as einsum: over channels (``bld,de->ble``), over tokens (``bld,lm->bmd``,
    MLP-Mixer), or attention as two einsums (``bld,bmd->blm`` then ``blm,bmd->bld``)."""

    def __init__(self, d: int, length: int, how: str, contiguous: bool = False) -> None:
        super().__init__()
        self.how, self.contiguous = how, contiguous
        size = (d, d) if how == "channels" else (length, length)
        self.w = nn.Parameter(torch.randn(size) / size[0] ** 0.5) if how != "attention" else None

    def forward(self, x, mask=None):
        if self.contiguous:
            x = x.contiguous()
        if self.how == "channels":
            return torch.einsum("bld,de->ble", x, self.w)
        if self.how == "tokens":
            return torch.einsum("bld,lm->bmd", x, self.w)
        scores = torch.einsum("bld,bmd->blm", x, x).softmax(-1)
        return torch.einsum("blm,bmd->bld", scores, x)


class Recurrent(nn.Module):
    """nn.LSTM / GRU / RNN on (N, L, D), batch_first or (L, N, D); the output sequence only."""

    def __init__(self, rnn: nn.RNNBase) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, x, mask=None):
        seq = x if self.rnn.batch_first else x.transpose(0, 1)
        out = self.rnn(seq)[0]
        return out if self.rnn.batch_first else out.transpose(0, 1)


class ParamLinear(nn.Module):
    """A linear layer whose weight is computed from parameters: ``weight * scale``, weight
    standardisation ``(w - mean) / sqrt(var + eps)`` per output row, or low-rank ``A @ B``."""

    def __init__(self, d_in: int, d_out: int, how: str, rank: int, contiguous: bool = False) -> None:
        super().__init__()
        self.how, self.contiguous = how, contiguous
        if how == "lowrank":
            self.a = nn.Parameter(torch.randn(d_out, rank) / rank ** 0.5)
            self.b = nn.Parameter(torch.randn(rank, d_in) / d_in ** 0.5)
        else:
            self.weight = nn.Parameter(torch.randn(d_out, d_in) / d_in ** 0.5)
            self.scale = nn.Parameter(torch.rand(d_out, 1) + 0.5) if how == "scale" else None
        self.bias = nn.Parameter(torch.zeros(d_out))

    def forward(self, x, mask=None):
        if self.how == "lowrank":
            w = self.a @ self.b
        elif self.how == "scale":
            w = self.weight * self.scale
        else:
            mean = self.weight.mean(1, keepdim=True)
            w = (self.weight - mean) / torch.sqrt(((self.weight - mean) ** 2).mean(1, keepdim=True) + 1e-5)
        return F.linear(x.contiguous() if self.contiguous else x, w, self.bias)


class Masking(nn.Module):
    """Zero the masked positions (``where``), when a mask is given."""

    def forward(self, x, mask=None):
        return x if mask is None else torch.where(mask.unsqueeze(-1), x, torch.zeros_like(x))


class SeqNet(nn.Module):
    """stem -> blocks -> head; the second input (a padding mask or extra tokens) is optional."""

    def __init__(self, stem: nn.Module, blocks: list[nn.Module], head: nn.Module, second: str,
                 extra: Optional[nn.Module]) -> None:
        super().__init__()
        self.stem, self.blocks, self.head = stem, nn.ModuleList(blocks), head
        self.second, self.extra = second, extra

    def forward(self, x, second=None):
        h = self.stem(x)
        if isinstance(self.stem, nn.Conv2d):  # (N, D, H, W) -> (N, H*W, D) tokens
            h = h.flatten(2).transpose(1, 2)
        mask = second if self.second == "mask" else None
        if self.second == "tokens":
            h = h.contiguous() + self.extra(second)  # contiguous: see Residual
        for block in self.blocks:
            h = block(h, mask)
        return self.head(h)


class PoolHead(nn.Module):
    def __init__(self, d: int, classes: int, norm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d) if norm else nn.Identity()
        self.fc = nn.Linear(d, classes)

    def forward(self, h):
        return self.fc(self.norm(h).mean(1))


class TiedHead(nn.Module):
    """Logits over the vocabulary through the embedding's own weight (tied weights)."""

    def __init__(self, embedding: nn.Embedding) -> None:
        super().__init__()
        self.embedding = embedding  # the same module: one parameter, two uses

    def forward(self, h):
        return F.linear(h, self.embedding.weight)


def _mask2d(draw, length: int, kind: str, blocked: bool = False) -> Optional[torch.Tensor]:
    """A 2-d (L, L) attention mask, the diagonal kept: float (added), or boolean, True where a query
    may attend (SDPA's meaning) or, with ``blocked``, where it may not (MultiheadAttention's)."""
    if kind == "none":
        return None
    keep = torch.tensor(draw(st.lists(st.booleans(), min_size=length * length, max_size=length * length)))
    keep = keep.view(length, length) | torch.eye(length, dtype=torch.bool)
    keep[:, 0] = True  # key 0 too, which a padding mask never hides: no fully masked row with both
    if kind == "bool":
        return ~keep if blocked else keep
    return torch.zeros(length, length).masked_fill(~keep, float("-inf"))


@st.composite
def seq_block(draw, d: int, length: int, train: bool, has_mask: bool) -> tuple[nn.Module, int]:
    """One block on (N, L, d); returns it and the new width."""
    kind = draw(st.sampled_from(["mha", "mha", "sdpa", "einsum", "rnn", "rnn", "param", "norm", "act"]))
    residual = draw(st.booleans())
    heads = draw(st.sampled_from([h for h in (1, 2, 4) if d % h == 0]))
    if kind == "mha":
        need = draw(st.booleans())
        # training dropout is modelled only where PyTorch takes the bmm path (need_weights=True)
        dropout = draw(st.sampled_from([0.0, 0.2])) if (need or not train) else 0.0
        # one head with a padding mask: test_mha_one_head_padding_mask_live
        padding = has_mask and heads > 1 and draw(st.booleans())
        body = MHA(d, heads, draw(st.booleans()), need, draw(st.booleans()),
                   _mask2d(draw, length, draw(st.sampled_from(["none", "none", "bool", "float"])), blocked=True),
                   padding, dropout, draw(st.booleans()))
    elif kind == "sdpa" and (length > 1 or heads > 1):  # see test_transpose_of_size_one_dims
        padding = has_mask and draw(st.booleans())
        causal = not padding and draw(st.booleans())
        mask = None if (padding or causal) else _mask2d(draw, length, draw(st.sampled_from(["none", "bool", "float"])))
        body = SDPA(d, heads, causal, mask, padding)
    elif kind == "einsum" and length > 1 and d > 1:  # a contraction over size 1 is a `mul` (flagged)
        # token mixing and a non-contiguous x make torch copy an operand for its bmm, and the result a
        # permuted view (test_einsum_operand_copy, test_einsum_result_layout): drawn since modelled
        body = EinsumMix(d, length, draw(st.sampled_from(["channels", "tokens", "attention"])),
                         contiguous=draw(st.booleans()))
    elif kind == "rnn":
        cls = draw(st.sampled_from([nn.LSTM, nn.GRU, nn.RNN]))
        layers, bidir = draw(st.integers(1, 2)), draw(st.booleans())
        hidden = draw(st.integers(2, 6))
        extra = {}
        if cls is nn.RNN:
            extra["nonlinearity"] = draw(st.sampled_from(["tanh", "relu"]))
        # an LSTM with a projection runs the aten cell loop; without, oneDNN's fused kernel (float32)
        proj = draw(st.integers(1, hidden - 1)) if cls is nn.LSTM and draw(st.booleans()) else 0
        if proj:
            extra["proj_size"] = proj
        dropout = 0.3 if (layers > 1 and not train and draw(st.booleans())) else 0.0
        rnn = cls(d, hidden, layers, batch_first=draw(st.booleans()), bidirectional=bidir, dropout=dropout, **extra)
        width = (1 + bidir) * (proj or hidden)
        if residual and width == d:
            return Residual(Recurrent(rnn)), d
        return Recurrent(rnn), width
    elif kind == "param":
        how = draw(st.sampled_from(["scale", "ws", "lowrank"]))
        d_out = d if residual else draw(st.integers(2, 8))
        # F.linear with a computed weight on a non-contiguous x: the transient bytes are overestimated
        # when out < in (test_linear_computed_weight_transient): in eval, it reads x.contiguous()
        layer = ParamLinear(d, d_out, how, draw(st.integers(1, 3)), contiguous=not train)
        return (Residual(layer), d) if residual else (layer, d_out)
    elif kind in ("norm", "einsum", "sdpa"):
        return Plain(nn.LayerNorm(d, elementwise_affine=draw(st.booleans()))), d
    else:
        act = draw(st.sampled_from([nn.GELU(), nn.ReLU(), nn.Tanh(), nn.Dropout(0.2)]))
        return Plain(act), d
    return (Residual(body) if residual else body), d


@st.composite
def random_sequence_net(draw, train: bool = False, batch: int = 2, max_blocks: int = 3) -> tuple[nn.Module, list, dict]:
    """A random token/sequence model and its inputs: ``(net, inputs, kwargs)`` for
    ``validate(net, inputs=inputs, kwargs=kwargs, batch=batch)``.  ``train``: leave out what archstat flags
    unsupported in training only (see the module docstring)."""
    d = draw(st.sampled_from([4, 6, 8]))
    stem_kind = draw(st.sampled_from(["embedding", "conv"]))
    if stem_kind == "embedding":
        length = draw(st.integers(2, 7))
        stem = nn.Embedding(VOCAB, d, padding_idx=draw(st.sampled_from([None, 0])))
        inputs: list = [InputSpec((length,), torch.int64, VOCAB)]
    else:
        c, p = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        gh, gw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        length = gh * gw
        stem = nn.Conv2d(c, d, p, p)  # non-overlapping patches
        inputs = [InputSpec((c, gh * p, gw * p))]
    second = draw(st.sampled_from(["none", "none", "mask"] + (["tokens"] if stem_kind == "conv" else [])))
    extra = None
    if second == "tokens":
        extra = nn.Embedding(VOCAB, d)
        inputs.append(InputSpec((length,), torch.int64, VOCAB))
    kwargs: dict = {}
    if second == "mask":  # a (batch, L) example tensor; position 0 always kept: no fully masked row
        bits = draw(st.lists(st.booleans(), min_size=batch * length, max_size=batch * length))
        mask = torch.tensor(bits).view(batch, length)
        mask[:, 0] = True
        kwargs["second"] = mask
    blocks = []
    for _ in range(draw(st.integers(1, max_blocks))):
        b, d_new = draw(seq_block(d, length, train, second == "mask"))
        blocks.append(b)
        d = d_new
    if second == "mask" and draw(st.booleans()):
        blocks.append(Masking())
    if stem_kind == "embedding" and d == stem.embedding_dim and draw(st.booleans()):
        head: nn.Module = TiedHead(stem)
    else:
        head = PoolHead(d, draw(st.integers(1, 4)), draw(st.booleans()))
    net = SeqNet(stem, blocks, head, second, extra)
    torch.manual_seed(draw(st.integers(0, 2**16)))
    return net, inputs, kwargs
