"""Table 1 of Szegedy et al. 2014, "Going deeper with convolutions", as data.

The channel columns configure both GoogLeNet models (``googlenet`` and torchvision's
``googlenet_bn`` use the same numbers).  The printed ``params`` (thousands of *weights*, no
biases, in units of 1024: 3a = 163,328 / 1024 = 159.5 -> "159K") and ``ops`` (millions of
multiply-adds of the convolutions/linear layer at 224x224) are kept as printed, so tests can
compare the model against them row by row.

Where the printed numbers disagree with the table's own channel counts, ``RECOMPUTED`` holds
what the channel counts give (our arithmetic, also in ``../shared/published``):

=========  ==============  ================  ==========  ===========
row        printed params  recomputed        printed ops recomputed
=========  ==============  ================  ==========  ===========
conv1      2.7K            9.19K (9,408)     34M         118.01M
inc. 4a    364K            366.75K           73M         73.6M (ok)
inc. 4c    463K            497.5K            100M        99.9M (ok)
inc. 4d    580K            590.5K            119M        118.5M (ok)
inc. 4e    840K            847K              170M        170.0M (ok)
inc. 5a    1072K           1018K             54M         51.1M
inc. 5b    1388K           1409K             71M         70.7M (ok)
=========  ==============  ================  ==========  ===========

conv1: 7*7*3*64 = 9,408 weights at 112x112 outputs = 118,013,952 MACs; the printed 34M is
2.7K x 112 x 112, so the two printed conv1 cells agree with each other but not with a 7x7x3x64
convolution.  Rows that agree within the table's 1-unit rounding: conv2 (112K / 360M),
3a (159K vs 159.5K), 3b (380K vs 379K), 4b (437K vs 438K), linear (1000K / 1M); every ops cell
except conv1 and 5a agrees.  Column sums: 6,797.7K params, 1,502M ops (paper text: "1.5 billion
multiply-adds"); the channel counts give 6,826.4K (6,990,272 weights) and 1,582.7M.
"""
from __future__ import annotations

from typing import NamedTuple


class InceptionCfg(NamedTuple):
    """One Inception module: input channels and the six branch widths of Table 1."""

    in_channels: int
    ch1x1: int
    ch3x3red: int
    ch3x3: int
    ch5x5red: int
    ch5x5: int
    pool_proj: int

    @property
    def out_channels(self) -> int:
        return self.ch1x1 + self.ch3x3 + self.ch5x5 + self.pool_proj


# Module name -> configuration, in network order (names as in torchvision's GoogLeNet).
INCEPTION_CFGS: dict[str, InceptionCfg] = {
    "inception3a": InceptionCfg(192, 64, 96, 128, 16, 32, 32),
    "inception3b": InceptionCfg(256, 128, 128, 192, 32, 96, 64),
    "inception4a": InceptionCfg(480, 192, 96, 208, 16, 48, 64),
    "inception4b": InceptionCfg(512, 160, 112, 224, 24, 64, 64),
    "inception4c": InceptionCfg(512, 128, 128, 256, 24, 64, 64),
    "inception4d": InceptionCfg(512, 112, 144, 288, 32, 64, 64),
    "inception4e": InceptionCfg(528, 256, 160, 320, 32, 128, 128),
    "inception5a": InceptionCfg(832, 256, 160, 320, 32, 128, 128),
    "inception5b": InceptionCfg(832, 384, 192, 384, 48, 128, 128),
}


class Table1Row(NamedTuple):
    """A Table 1 row with a parameter/ops entry: the model modules it covers and the printed cells."""

    row: str
    modules: tuple[str, ...]
    params_k: float  # printed, thousands (1024) of weights
    ops_m: float  # printed, millions of multiply-adds


TABLE1: tuple[Table1Row, ...] = (
    Table1Row("convolution 7x7/2", ("conv1",), 2.7, 34),
    Table1Row("convolution 3x3/1", ("conv2", "conv3"), 112, 360),
    Table1Row("inception (3a)", ("inception3a",), 159, 128),
    Table1Row("inception (3b)", ("inception3b",), 380, 304),
    Table1Row("inception (4a)", ("inception4a",), 364, 73),
    Table1Row("inception (4b)", ("inception4b",), 437, 88),
    Table1Row("inception (4c)", ("inception4c",), 463, 100),
    Table1Row("inception (4d)", ("inception4d",), 580, 119),
    Table1Row("inception (4e)", ("inception4e",), 840, 170),
    Table1Row("inception (5a)", ("inception5a",), 1072, 54),
    Table1Row("inception (5b)", ("inception5b",), 1388, 71),
    Table1Row("linear", ("fc",), 1000, 1),
)

# Rows whose printed cell disagrees with the table's own channel counts, with the value those
# counts give (params in K = 1024 weights, ops in M multiply-adds at 224x224).
RECOMPUTED_PARAMS_K: dict[str, float] = {
    "convolution 7x7/2": 9.1875,
    "inception (4a)": 366.75,
    "inception (4c)": 497.5,
    "inception (4d)": 590.5,
    "inception (4e)": 847.0,
    "inception (5a)": 1018.0,
    "inception (5b)": 1409.0,
}
RECOMPUTED_OPS_M: dict[str, float] = {
    "convolution 7x7/2": 118.013952,
    "inception (5a)": 51.1,
}

TABLE1_PARAMS_SUM_K = 6797.7  # sum of the printed params column
TABLE1_OPS_SUM_M = 1502  # sum of the printed ops column
