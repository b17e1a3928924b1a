"""Hypothesis strategies for random small CNNs: sequential, residual (+), concatenation and
channel-shuffle blocks.

Layers: conv (grouped, depthwise, dilated, strided, rectangular, padding "same"), transposed conv
(grouped, dilated, strided, output padding), max/avg/adaptive
pooling, BatchNorm, the lecture's activations (sigmoid, tanh, ReLU, Leaky ReLU, PReLU, ELU, SELU,
GELU, some in place), dropout, flatten and linear.  Shapes are tracked with real (tiny) tensors
while drawing, so every drawn network runs.  In-place activations only follow ops that do not
save their output for backward, and never touch a tensor another branch still reads.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch import nn

ACTIVATIONS = {
    "relu": lambda: nn.ReLU(), "relu_": lambda: nn.ReLU(inplace=True), "leaky": lambda: nn.LeakyReLU(0.1),
    "sigmoid": lambda: nn.Sigmoid(), "tanh": lambda: nn.Tanh(), "elu": lambda: nn.ELU(), "selu": lambda: nn.SELU(),
    "gelu": lambda: nn.GELU(), "prelu": lambda: nn.PReLU(),
    # in place, these keep a copy of their input for backward (MobileNet, EfficientNet)
    "relu6_": lambda: nn.ReLU6(inplace=True), "silu_": lambda: nn.SiLU(inplace=True),
    "hardswish_": lambda: nn.Hardswish(inplace=True),
}
INPLACE = ("relu_", "relu6_", "silu_", "hardswish_")
FRESH = (nn.Conv2d, nn.BatchNorm2d, nn.Linear, nn.BatchNorm1d)  # outputs nobody saved: in-place is safe


class Residual(nn.Module):
    """``body(x) + shortcut(x)``, with ``+`` or in-place ``+=`` and a functional ReLU after it."""

    def __init__(self, body: nn.Module, proj: nn.Module | None, inplace_add: bool, relu_after: bool) -> None:
        super().__init__()
        self.body, self.proj = body, proj
        self.inplace_add, self.relu_after = inplace_add, relu_after

    def forward(self, x):
        y = self.body(x)
        s = x if self.proj is None else self.proj(x)
        if self.inplace_add:
            y += s
        else:
            y = y + s
        return F.relu(y) if self.relu_after else y


class Concat(nn.Module):
    def __init__(self, branches: list[nn.Module]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x):
        return torch.cat([b(x) for b in self.branches], 1)


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: view as (groups, c/groups), swap the two, merge back.  The swap
    leaves a non-contiguous view; merging copies (``contiguous().view``, ``reshape``, ``flatten``)."""

    def __init__(self, groups: int, how: str) -> None:
        super().__init__()
        self.groups, self.how = groups, how

    def forward(self, x):
        n, c, h, w = x.shape
        y = x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2)
        if self.how == "contiguous":
            return y.contiguous().view(n, c, h, w)
        if self.how == "reshape":
            return y.reshape(n, c, h, w)
        return y.flatten(1, 2)


class Net(nn.Module):
    def __init__(self, blocks: list[nn.Module], head: nn.Module) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.head = head

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def _shape(module: nn.Module, shape: tuple) -> tuple | None:
    try:
        with torch.no_grad():
            out = module.eval()(torch.zeros(2, *shape))
    except (RuntimeError, ValueError):
        return None
    return tuple(out.shape[1:]) if min(out.shape) > 0 else None


@st.composite
def conv(draw, c: int, keep_size: bool = False):
    kind = draw(st.sampled_from(["plain", "plain", "grouped", "depthwise"]))
    if kind == "depthwise":
        groups, c_out = c, c * draw(st.integers(1, 2))
    elif kind == "grouped" and c > 1:
        groups = draw(st.sampled_from([g for g in range(2, c + 1) if c % g == 0]))
        c_out = groups * draw(st.integers(1, 2))
    else:
        groups, c_out = 1, draw(st.integers(1, 6))
    if keep_size:  # odd kernel, stride 1, padding that keeps H and W
        k = draw(st.sampled_from([1, 3, 5]))
        d = draw(st.integers(1, 2))
        return nn.Conv2d(c, c_out, k, 1, d * (k // 2), d, groups, draw(st.booleans()))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    if stride == (1, 1) and draw(st.booleans()):
        padding = "same"
    else:
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    return nn.Conv2d(c, c_out, (kh, kw), stride, padding, dilation, groups, draw(st.booleans()))


@st.composite
def conv_transpose(draw, c: int):
    """A transposed conv: grouped, dilated, strided, with output padding below the stride or dilation."""
    groups = draw(st.sampled_from([g for g in range(1, c + 1) if c % g == 0]))
    c_out = groups * draw(st.integers(1, 2))
    k, s, d = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    p = draw(st.integers(0, d * (k - 1) // 2))
    out_pad = draw(st.integers(0, max(s, d) - 1))
    return nn.ConvTranspose2d(c, c_out, k, s, p, out_pad, groups, draw(st.booleans()), d)


@st.composite
def layer(draw, c: int, after_fresh: bool, keep_size: bool = False, transposed: bool = True):
    kinds = ["conv", "conv", "pool", "bn", "act", "act", "dropout", "pad"] + (["tconv"] if transposed else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "conv":
        return draw(conv(c, keep_size))
    if kind == "tconv" and not keep_size:
        return draw(conv_transpose(c))
    if kind == "pad" and not keep_size:  # asymmetric, a negative side crops
        pads = tuple(draw(st.integers(-1, 2)) for _ in range(4))
        return draw(st.sampled_from([nn.ZeroPad2d(pads), nn.ConstantPad2d(pads, 0.5)]))
    if kind == "pool":
        if keep_size:
            return draw(st.sampled_from([nn.MaxPool2d(3, 1, 1), nn.AvgPool2d(3, 1, 1)]))
        k = draw(st.integers(1, 3))
        p = draw(st.integers(0, k // 2))
        choices = [nn.MaxPool2d(k, draw(st.integers(1, 2)), p, ceil_mode=draw(st.booleans())),
                   nn.AvgPool2d(k, draw(st.integers(1, 2)), p, ceil_mode=draw(st.booleans())),
                   nn.AdaptiveAvgPool2d(draw(st.integers(1, 3))), nn.AdaptiveMaxPool2d(draw(st.integers(1, 3)))]
        return draw(st.sampled_from(choices))
    if kind == "bn":
        return nn.BatchNorm2d(c, affine=draw(st.booleans()))
    if kind == "dropout":
        return draw(st.sampled_from([nn.Dropout(0.3), nn.Dropout2d(0.2)]))
    names = [n for n in ACTIVATIONS if after_fresh or n not in INPLACE]
    return ACTIVATIONS[draw(st.sampled_from(names))]()


@st.composite
def block(draw, shape: tuple, transposed: bool = True) -> tuple[nn.Module, tuple]:
    kind = draw(st.sampled_from(["seq", "seq", "residual", "concat", "shuffle"]))
    c = shape[0]
    if kind == "shuffle":
        divisors = [g for g in range(2, c + 1) if c % g == 0]
        if not divisors:
            return nn.Identity(), shape
        how = draw(st.sampled_from(["contiguous", "reshape", "flatten"]))
        return ChannelShuffle(draw(st.sampled_from(divisors)), how), shape
    if kind == "residual":
        body = [draw(conv(c, keep_size=True))]
        extra, _ = draw(_chain_from(body, shape, 2, keep_size=True))
        body += extra
        out = _shape(nn.Sequential(*body), shape)
        if out is None:
            return nn.Identity(), shape
        proj = None
        if out[0] != c or draw(st.booleans()):
            proj = nn.Conv2d(c, out[0], 1, bias=False)
        # `y += s` may only overwrite an output nobody saved for backward (a conv's, a BN's)
        inplace = isinstance(body[-1], FRESH) and draw(st.booleans())
        res = Residual(nn.Sequential(*body), proj, inplace_add=inplace, relu_after=draw(st.booleans()))
        return res, out
    if kind == "concat":
        branches = []
        for _ in range(draw(st.integers(2, 3))):
            first = draw(st.one_of(conv(c, keep_size=True), st.just(nn.MaxPool2d(3, 1, 1))))
            rest, _ = draw(_chain_from([first], shape, 1, keep_size=True))
            branches.append(nn.Sequential(first, *rest))
        cat = Concat(branches)
        out = _shape(cat, shape)
        return (cat, out) if out is not None else (nn.Identity(), shape)
    layers, out = draw(_chain_from([], shape, draw(st.integers(1, 3)), keep_size=False, transposed=transposed))
    return nn.Sequential(*layers), out


@st.composite
def _chain_from(draw, start: list, shape: tuple, n: int, keep_size: bool,
                transposed: bool = True) -> tuple[list, tuple]:
    """Append up to ``n`` valid layers after ``start`` (which already runs on ``shape``)."""
    layers: list[nn.Module] = []
    cur = _shape(nn.Sequential(*start), shape) if start else shape
    fresh = bool(start) and isinstance(start[-1], FRESH)
    for _ in range(n):
        cand = draw(layer(cur[0], fresh, keep_size, transposed))
        out = _shape(cand, cur)
        if out is None or (keep_size and out[1:] != cur[1:]):
            continue
        layers.append(cand)
        cur, fresh = out, isinstance(cand, FRESH)
    return layers, cur


@st.composite
def head(draw, shape: tuple) -> nn.Module:
    kind = draw(st.sampled_from(["linear", "mlp", "pool_linear", "none"]))
    flat = 1
    for s in shape:
        flat *= s
    if kind == "none":
        return nn.Identity()
    if kind == "pool_linear":
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(shape[0], draw(st.integers(1, 5))))
    if kind == "linear":
        return nn.Sequential(nn.Flatten(), nn.Linear(flat, draw(st.integers(1, 5)), bias=draw(st.booleans())))
    hidden = draw(st.integers(2, 8))
    act = ACTIVATIONS[draw(st.sampled_from(sorted(ACTIVATIONS)))]()
    return nn.Sequential(nn.Flatten(), nn.Linear(flat, hidden), nn.BatchNorm1d(hidden), act, nn.Dropout(0.5),
                         nn.Linear(hidden, 3))


@st.composite
def random_cnn(draw, max_blocks: int = 4, transposed: bool = True) -> tuple[nn.Module, tuple]:
    """A random network and its per-sample input shape (C, H, W); ``transposed=False`` leaves out
    transposed convs (whose fields the receptive-field check does not walk back through)."""
    shape = (draw(st.integers(1, 4)), draw(st.integers(5, 14)), draw(st.integers(5, 14)))
    start = shape
    blocks = []
    for _ in range(draw(st.integers(1, max_blocks))):
        b, shape = draw(block(shape, transposed))
        blocks.append(b)
    net = Net(blocks, draw(head(shape)))
    torch.manual_seed(draw(st.integers(0, 2**16)))
    for m in net.modules():  # non-trivial BN statistics and affine parameters
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            if m.affine:
                nn.init.uniform_(m.weight, 0.5, 1.5)
                nn.init.uniform_(m.bias, -0.5, 0.5)
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    return net, start
