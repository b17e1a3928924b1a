"""Gather-style indexing (Swin's relative position bias, gather, index_select): rows by hand and
validate in eval and train."""
import logging

import pytest
import torch
from torch import nn

import archstat
from _validated import validated

logging.getLogger("fvcore").setLevel(logging.ERROR)


class RelativeBias(nn.Module):
    """Swin's relative position bias: a learnt table indexed by a buffer, added to the scores."""

    def __init__(self, window: int = 3, heads: int = 2) -> None:
        super().__init__()
        n = window * window
        self.table = nn.Parameter(torch.randn((2 * window - 1) ** 2, heads))
        self.register_buffer("index", torch.randint(0, (2 * window - 1) ** 2, (n * n,)))
        self.n, self.heads = n, heads
        self.proj = nn.Linear(n, n)

    def forward(self, x):  # x: N x heads x n x n scores
        bias = self.table[self.index].view(self.n, self.n, -1).permute(2, 0, 1).contiguous()
        return self.proj(x + bias.unsqueeze(0))


class Picks(nn.Module):
    """index_select of channels, a gather along the last dim and x[:, idx] by buffers."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 6)
        self.register_buffer("channels", torch.tensor([0, 2, 3]))
        self.register_buffer("order", torch.randint(0, 6, (1, 4, 6)))

    def forward(self, x):  # N x 4 x 6
        h = self.lin(x)
        a = torch.index_select(h, 2, self.channels)  # N x 4 x 3
        b = torch.gather(h, 2, self.order.repeat(x.shape[0], 1, 1))  # N x 4 x 6, an int64 activation index
        c = h[:, self.channels]  # N x 3 x 6
        return a.sum() + b.sum() + c.sum()


def test_index_rows_by_hand():
    df = archstat.analyze(Picks(), (4, 6), batch=2)
    rows = {op: df[df.op == op].iloc[0] for op in ("index_select", "gather", "getitem")}
    assert rows["index_select"].out_shape == [4, 3] and rows["gather"].out_shape == [4, 6]
    assert rows["getitem"].out_shape == [3, 6] and rows["getitem"].act_bytes == 2 * 3 * 6 * 4
    bias = archstat.analyze(RelativeBias(), (2, 9, 9), batch=2)
    table = bias[bias.op == "getitem"].iloc[0]
    assert not table.batched and table.out_shape == [81, 2] and table.supported  # parameters alone: whole
    assert not bias.attrs["partial"]


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("build, shape", [(RelativeBias, (2, 9, 9)), (Picks, (4, 6))])
def test_indexing_validates(build, shape, mode):
    torch.manual_seed(0)
    df = validated(build(), shape, mode)
