"""nn.Embedding and F.embedding: the lookup's shape and bytes, its saved indices, both oracles (no
price: FlopCounterMode 0, fvcore unsupported), validated in eval and train; and a small captioner
(a conv encoder, an embedding of tokens made inside forward, an LSTM decoder) through the commands."""
import json
import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archstat
from _validated import validated

logging.getLogger("fvcore").setLevel(logging.ERROR)


class Lookup(nn.Module):
    """Tokens computed from the input (an activation, so saved as an input row), looked up twice."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4, padding_idx=0)
        self.table = nn.Parameter(torch.randn(10, 3))
        self.lin = nn.Linear(7, 2)

    def forward(self, x):  # N x 6
        idx = (x.abs() * 3).to(torch.int64).clamp(0, 9)
        y = torch.cat([self.emb(idx), F.embedding(idx, self.table)], 2)  # N x 6 x 7
        return self.lin(y).flatten(1)


class Captioner(nn.Module):
    """Image -> conv features; caption tokens (a buffer: one model input for now) -> embeddings,
    each step's plus the image's; an LSTM over the steps; vocabulary logits per step."""

    def __init__(self, vocab: int = 12, dim: int = 8, steps: int = 5) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                     nn.Flatten(), nn.Linear(8, dim))
        self.embed = nn.Embedding(vocab, dim)
        self.decoder = nn.LSTM(dim, dim, batch_first=True)
        self.head = nn.Linear(dim, vocab)
        torch.manual_seed(0)
        self.register_buffer("tokens", torch.randint(0, vocab, (1, steps)))

    def forward(self, image):  # N x 3 x 8 x 8
        feature = self.encoder(image).unsqueeze(1)  # N x 1 x dim
        words = self.embed(self.tokens) + feature  # 1 x T x dim + N x 1 x dim: the image joins every step
        out = self.decoder(words)[0]  # indexed, not unpacked: fx traces it
        return self.head(out)  # N x T x vocab


def build_captioner() -> nn.Module:
    torch.manual_seed(0)
    return Captioner()


def test_embedding_row_by_hand():
    df = archstat.analyze(Lookup(), (6,), batch=2, mode="train", convention="fvcore")
    row = df[df.op == "Embedding"].iloc[0]
    assert row.out_shape == [6, 4] and row.act_bytes == 2 * 6 * 4 * 4 and row.params == 40 and row.macs == 0
    assert not row.oracle_supported if "oracle_supported" in df else True
    assert df[df.op == "embedding"].iloc[0].params == 30


@pytest.mark.parametrize("module", [nn.Embedding(10, 4, max_norm=1.0), nn.Embedding(10, 4, sparse=True)])
def test_variants_not_modelled_are_flagged(module):
    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = module

        def forward(self, x):
            return self.emb(x.to(torch.int64).clamp(0, 9))

    df = archstat.analyze(Wrap(), (6,), batch=2)
    assert df.attrs["partial"] and not df[df.op == "Embedding"].iloc[0].supported


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("build, shape", [(Lookup, (6,)), (build_captioner, (3, 8, 8))])
def test_validates_fully_costed(build, shape, mode):
    df = validated(build(), shape, mode)
    assert df.attrs["engine"] == "fx"


@pytest.mark.parametrize("training", [False, True])
def test_captioner_table(training, capsys):
    from archstat.cli import main

    argv = ["table", f"{__name__}:build_captioner", "--input", "3x8x8", "--format", "json"]
    assert main(argv + ["--training"] * training) == 0
    table = json.loads(capsys.readouterr().out)
    ops = {r["op"] for r in table["layers"]}
    assert {"Embedding", "LSTM"} <= ops and all(r["supported"] for r in table["layers"])


def test_captioner_validate_train_and_compare(capsys):
    from archstat.cli import main

    cap = f"{__name__}:build_captioner"
    assert main(["validate", cap, "--input", "3x8x8", "--mode", "train", "--batch", "2", "--quiet"]) == 0
    assert "AGREE: every check passed" in capsys.readouterr().out
    assert main(["compare", cap, cap, "--input", "3x8x8", "--format", "json"]) == 0
    models = json.loads(capsys.readouterr().out)["models"]
    assert all("unsupported" not in str(m.get("notes")) for m in models), models
