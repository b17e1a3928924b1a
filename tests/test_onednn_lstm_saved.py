"""oneDNN's fused float32 LSTM (``aten::mkldnn_rnn_layer``) in training: the workspace formula and
everything else autograd keeps, against ``saved_tensors_hooks`` on a real ``nn.LSTM`` call.

The formula (archstat/formulas/onednn_rnn.py) is oneDNN v3.12's ``set_workspace_sizes`` and
``set_offsets``; the measured side knows nothing of it: it collects the uint8 tensors the calls
save, and the distinct storages of all saved tensors that are not parameters."""
from __future__ import annotations

import random

import pytest
import torch
from torch import nn
from torch.utils._pytree import tree_leaves

from archstat.formulas import CallInputs
from archstat.formulas.onednn_rnn import lstm_workspace_bytes
from archstat.formulas.recurrent import recurrent_module
from archstat.spec import TensorSpec


def measured(m: nn.LSTM, args: list) -> tuple[list[int], dict[int, tuple[str, int]]]:
    """The workspaces' sizes in call order, and every non-parameter storage saved: ("in", bytes)
    for one of the call's arguments, ("new", bytes) for one the call made."""
    params = {p.untyped_storage().data_ptr() for p in m.parameters()}
    given = {a.untyped_storage().data_ptr() for a in tree_leaves(args)}
    workspaces: list[int] = []
    storages: dict[int, tuple[str, int]] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.dtype == torch.uint8:
            workspaces.append(t.numel())
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            storages[ptr] = ("in" if ptr in given else "new", t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        m(*args)
    return workspaces, storages


def estimated(m: nn.LSTM, args: list) -> list[tuple[str, int]]:
    """The formula's saved items, each as ("in" (an argument) or "new", bytes): one per storage."""
    specs = [TensorSpec.of(a) if isinstance(a, torch.Tensor) else tuple(map(TensorSpec.of, a)) for a in args]
    inputs = CallInputs(tree_leaves(specs), tuple(specs), {})
    cost = recurrent_module(m, inputs)
    assert cost.hparams["kernel"] == "mkldnn"
    sizes = []
    for item in cost.work["saved"]:
        if item[0] == "in":
            sizes.append(("in", int(inputs[item[1]].nbytes)))
        elif item[0] == "out":  # one of the outputs the call returns: a storage it made
            sizes.append(("new", int(tree_leaves(cost.out)[item[1]].nbytes)))
        else:
            sizes.append(("new", int(item[1]) * item[2].itemsize))
    return sizes


def lstm_call(t: int, b: int, i: int, h: int, layers: int = 1, bi: bool = False, bf: bool = False,
              init: str = "", bias: bool = True, seed: int = 0) -> tuple[nn.LSTM, list]:
    """A float32 nn.LSTM and its call's arguments; ``init``: "" (zeros made inside), "given" or
    "strided" (given as non-contiguous views, which the kernel copies)."""
    torch.manual_seed(seed)
    m = nn.LSTM(i, h, num_layers=layers, bidirectional=bi, batch_first=bf, bias=bias)
    x = torch.randn((b, t, i) if bf else (t, b, i), requires_grad=True)
    states = (2 if bi else 1) * layers
    if not init:
        return m, [x]
    if init == "strided":
        hx = tuple(torch.randn(b, states, h).transpose(0, 1) for _ in range(2))
    else:
        hx = tuple(torch.randn(states, b, h) for _ in range(2))
    return m, [x, hx]


def check(*shape, **kw) -> None:
    m, args = lstm_call(*shape, **kw)
    workspaces, storages = measured(m, args)
    t, b, i, h = shape
    layers, d = kw.get("layers", 1), 2 if kw.get("bi") else 1
    expected = [lstm_workspace_bytes(t, b, i if layer == 0 else d * h, h) for layer in range(layers) for _ in range(d)]
    assert workspaces == expected, (shape, kw)
    items = estimated(m, args)
    assert sorted(items) == sorted(storages.values()), (shape, kw, items, storages)


def test_workspace_by_hand():
    """(T, B, I, H) = (5, 2, 8, 16): gates 5*2*64*4 = 2560 B, h_t 5*2*16*4 = 640 B, and five state
    buffers of 2*6*2 rows of 16 floats (1536 B each): seven parts, each under a page: 7 * 4096."""
    assert lstm_workspace_bytes(5, 2, 8, 16) == 7 * 4096
    # H = 64, T*B = 4: the gates' row 4H = 256 floats is 1 KiB, padded by 16 floats against 4K
    # aliasing: 4*272*4 = 4352 B, two pages (unpadded, 4096 B, one); h_t 4*64*4 = 1024 B and the
    # five state buffers (2*3*2 rows of 64 floats, 3072 B) one page each
    assert lstm_workspace_bytes(2, 2, 64, 64) == (2 + 1 + 5) * 4096
    with pytest.raises(NotImplementedError):
        lstm_workspace_bytes(5, 2, 8, 16, torch.bfloat16)


@pytest.mark.parametrize("shape,kw", [
    ((5, 2, 8, 16), {}),
    ((7, 3, 13, 20), {"bf": True}),  # batch_first: the kernel's time-major copy of the input is saved
    ((1, 1, 1, 1), {"init": "given"}),
    ((4, 2, 5, 64), {"layers": 2, "bi": True}),  # 4H = 256: the padded leading dimension
    ((3, 5, 30, 9), {"layers": 3, "init": "strided", "bias": False}),  # copies of the states; zero biases
    ((2, 3, 300, 7), {"bi": True, "bf": True, "init": "given"}),
])
def test_saved_matches_hooks(shape, kw):
    check(*shape, **kw)


@pytest.mark.slow
def test_saved_matches_hooks_sweep():
    """T 1..40, B 1..9, I and H 1..300 (odd ones included), 1-3 layers, both directions,
    batch_first, initial states made, given or strided, with and without biases."""
    rng = random.Random(14)
    for _ in range(150):
        shape = (rng.randint(1, 40), rng.randint(1, 9), rng.randint(1, 300), rng.randint(1, 300))
        kw = {"layers": rng.randint(1, 3), "bi": rng.random() < 0.5, "bf": rng.random() < 0.5,
              "init": rng.choice(["", "given", "strided"]), "bias": rng.random() < 0.8, "seed": rng.randint(0, 99)}
        check(*shape, **kw)
