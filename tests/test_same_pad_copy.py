"""The padded input copy of an asymmetric ``padding="same"`` conv (transient memory), against the
tensors PyTorch really makes: a dispatch mode records the output of every ``constant_pad_nd`` the
conv runs.  ``same`` pads ``d*(k-1)`` per dim; where that is odd PyTorch pads a copy first."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from archstat import analyze


class PadCopies(TorchDispatchMode):
    """Bytes of every tensor written by an aten pad op (``constant_pad_nd``, ``reflection_pad*``,
    ``replication_pad*``; the circular pad is a ``new_empty`` filled by slices) while the mode is on."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if "pad" in func.overloadpacket.__name__ or func.overloadpacket == torch.ops.aten.new_empty:
            self.bytes += out.numel() * out.element_size()
        return out


CASES = [  # (module, per-sample input): odd and even d*(k-1) in each dim, 1-d to 3-d, float64
    (nn.Conv2d(2, 3, (4, 3), padding="same"), (2, 9, 7)),
    (nn.Conv2d(2, 3, (4, 2), padding="same"), (2, 9, 7)),
    (nn.Conv2d(2, 3, 4, padding="same", dilation=2), (2, 9, 7)),
    (nn.Conv2d(2, 3, (3, 5), padding="same", dilation=(1, 3)), (2, 9, 7)),
    (nn.Conv2d(2, 3, (2, 3), padding="same", dilation=(3, 1)), (2, 9, 7)),
    (nn.Conv1d(3, 2, 6, padding="same").double(), (3, 11)),
    (nn.Conv3d(1, 2, (2, 3, 4), padding="same"), (1, 5, 6, 7)),
    (nn.Conv2d(2, 3, 4, padding=1), (2, 9, 7)),
]


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_same_pad_copy_matches_pytorch(case: int, batch: int):
    conv, shape = CASES[case]
    dtype = next(conv.parameters()).dtype
    x = torch.randn(batch, *shape, dtype=dtype)
    with torch.no_grad(), PadCopies() as mode:
        conv(x)
    df = analyze(nn.Sequential(conv), shape, batch=batch, dtype=dtype)
    assert df["work"].iloc[0]["transient_bytes"] == mode.bytes


PADDED_FIRST = [  # padding_mode reflect / replicate / circular: PyTorch pads a copy by the whole padding first
    (nn.Conv2d(2, 3, (4, 3), padding="same", padding_mode="reflect"), (2, 9, 7)),
    (nn.Conv2d(2, 3, 3, padding="same", dilation=(2, 1), padding_mode="replicate"), (2, 9, 7)),
    (nn.Conv1d(2, 3, 5, padding="same", padding_mode="circular"), (2, 11)),
    (nn.Conv2d(2, 3, 3, padding="valid", padding_mode="reflect"), (2, 9, 7)),
    (nn.Conv2d(2, 3, 3, padding=(2, 1), padding_mode="replicate"), (2, 9, 7)),
]


@pytest.mark.parametrize("case", range(len(PADDED_FIRST)))
def test_padding_mode_copy_matches_pytorch(case: int):
    """The copy: the tensors PyTorch's pad ops write (``reflection_pad2d``, ``replication_pad2d``,
    the circular pad), padding 0 ("valid") included, since F.pad still copies."""
    conv, shape = PADDED_FIRST[case]
    with torch.no_grad(), PadCopies() as mode:
        conv(torch.randn(2, *shape))
    df = analyze(nn.Sequential(conv), shape, batch=2)
    assert mode.bytes > 0 and df["work"].iloc[0]["transient_bytes"] == mode.bytes


@pytest.mark.parametrize("size,c", [(7, 3), (9, 2), (6, 4)])
def test_local_response_norm_padded_square_matches_pytorch(size: int, c: int):
    """LRN pads the squared input by ``size - 1`` channels; with ``size > C + 1`` that copy,
    ``(C + size - 1) / C`` input sizes, is the larger of its temporaries, so it is the row's transient."""
    lrn, shape = nn.LocalResponseNorm(size), (c, 5, 6)
    with torch.no_grad(), PadCopies() as mode:
        lrn(torch.randn(2, *shape))
    df = analyze(nn.Sequential(lrn), shape, batch=2)
    assert mode.bytes == 2 * (c + size - 1) * 5 * 6 * 4  # the oracle saw the padded copy
    assert df["work"].iloc[0]["transient_bytes"] == mode.bytes
