"""`archstat table alexnet` reproduces the lecture's AlexNet table, checked against the published
numbers in shared/published (the slide's exact values; its typos are tested as typos)."""
import json

import pytest

import archstat
from archstat.models import get_model
from archstat.reporting import published


@pytest.fixture(scope="module")
def table():
    df = archstat.analyze(get_model("alexnet", device="meta"), (3, 227, 227))
    main = df[df.kind.isin(["conv", "pool", "linear", "view"])].reset_index(drop=True)
    labels = ["conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5", "flatten", "fc6", "fc7", "fc8"]
    assert len(main) == len(labels)
    return dict(zip(labels, main.to_dict("records"))), df


# (layer, out shape, memory bytes, params with bias, lecture flop) -- the seed's worked examples
EXACT = [
    ("conv1", [64, 56, 56], 784 * 1024, 23_296, 72_855_552),
    ("pool1", [64, 27, 27], 182.25 * 1024, 0, 419_904),
    ("conv2", [192, 27, 27], 546.75 * 1024, 307_392, 223_948_800),
    ("pool2", [192, 13, 13], 126.75 * 1024, 0, 292_032),
    ("conv3", [384, 13, 13], 253.5 * 1024, 663_936, 112_140_288),
    ("conv4", [256, 13, 13], 169 * 1024, 884_992, 149_520_384),  # the slide prints 145 M: a typo
    ("conv5", [256, 13, 13], 169 * 1024, 590_080, 99_680_256),
    ("pool5", [256, 6, 6], 36 * 1024, 0, 82_944),
    ("flatten", [9216], 36 * 1024, 0, 0),
    ("fc6", [4096], 16 * 1024, 9216 * 4096 + 4096, 37_748_736),  # 37,752,832, not the seed's 37,725,832
    ("fc7", [4096], 16 * 1024, 16_781_312, 16_777_216),
    ("fc8", [1000], 4000, 4_097_000, 4_096_000),
]


@pytest.mark.parametrize("layer, shape, memory, params, flop", EXACT, ids=[e[0] for e in EXACT])
def test_lecture_rows(table, layer, shape, memory, params, flop):
    row = table[0][layer]
    assert row["out_shape"] == shape
    assert row["act_bytes"] == memory
    assert row["params"] == params
    assert row["flops"] == flop


def test_against_published_slide_rounding(table):
    """Each slide cell equals our exact value rounded as the slide rounds it, except known typos."""
    text = json.dumps(published.load())  # the packaged record (archstat/data/published.json)
    assert "37,725,832" in text  # the typo exists in the published record...
    rows = table[0]
    assert rows["fc6"]["params"] != 37_725_832  # ...and we do not reproduce it
    slide = {"conv1": (784, 23, 73), "conv2": (547, 307, 224), "conv3": (254, 664, 112), "conv5": (169, 590, 100)}
    for layer, (kb, kparams, mflop) in slide.items():
        r = rows[layer]
        assert round(r["act_bytes"] / 1024) == kb
        assert round(r["params"] / 1000) == kparams
        assert round(r["flops"] / 1e6) == mflop
    assert round(rows["conv4"]["flops"] / 1e6) == 150  # slide: 145 (typo)


def test_totals(table):
    df = table[1]
    assert df.attrs["total"]["params"] == 61_100_840
    conv_fc = df[df.kind.isin(["conv", "linear"])]
    assert conv_fc.act_bytes.sum() / 1024 == pytest.approx(1958.16, abs=0.01)  # the slide's 1.9 MB
    assert round(df.attrs["total"]["flops"] / 1e9, 1) == 0.7
