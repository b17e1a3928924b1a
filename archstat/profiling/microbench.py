"""Synthetic micro-benchmarks for the per-family time model: a seeded random grid, never a model's layers.

Each benchmark is one small module built here from random hyper-parameters (``random.Random(SEED)``):
channel counts drawn log-uniformly and rounded to a multiple of 8, spatial sizes log-uniform, batch
from {1, 2, 4, 8, 16}.  Nothing is taken from the zoo, so a model's predicted times are out of
sample; ``bench/roofline_accuracy.py`` counts how many grid points happen to coincide with one of the
model's layers (``signature``).  Each module is described by ``analyze()`` like any model, priced by
``op_families.work``/``features``, and timed with ``flushed_times`` on the CPU (caches emptied, then
the input the previous op would have written re-written) or ``timing.time_calls`` (convs, and every
family on a GPU); each point is the *median* call, as a model's per-layer times are medians of passes.
On the CPU convs and concats (``IN_A_PASS``) are timed a second way too, as a pass calls them
(``as_in_a_pass``: input re-written, the private caches refilled, the last-level cache kept), and the
time model reads that one.

Grid (``quick`` shrinks every count and size, for tests): 112 convolutions (kernel 1x1 and 3x3 for
three quarters of them, then 5x5, 7x7, 1x7, 7x1, 11x11; 3 input channels for a tenth, stems; output
planes up to 224x224 but at most 4e6 elements per image, as CNNs trade channels for resolution)
and 32 more where that draw is sparse and the fit worst (stems and 1x1 channel reductions,
``targeted_conv_configs``),
32 depthwise convolutions (3x3, 5x5), 36 linears (M = 1..64 rows, a third of them 1), and per memory family 20 sizes
from a few hundred bytes to 32 MB (in-place activations ~100 MB), the smallest of which gives the
family's per-call floor (max pools twice: on inputs with and without a BatchNorm before, ``pool_input``;
LRN every other size at batch 8; adaptive pools keep of their 20 draws the smallest, a global pool, and
those onto a 7x7 grid, 5 in all, with 16 onto a 6x6 or 7x7 grid besides, ``adaptive_head_cases``, and 16
global pools as a CNN's head calls them, ``global_head_cases``), and the two families that launch no kernel,
a view and a Dropout in eval, back to back and flushed (``no_kernel_point``).  The memory benchmarks of
64 KiB or less, which set each family's floor, are also timed after flushes of 256 MiB and to DRAM
(``cold_level_times``): a family's cold start against the traffic since its last call.  On the CPU each benchmark
also measures what it leaves the op after it (``successor_penalty``: an ``nn.ReLU``; after convs also,
from the pass state, a BatchNorm and the ReLU after it, ``chain_penalties``).  One pass took about 2 minutes
on 2 CPU cores on 2026-12-01 (GRID_VERSION 17); ``combine`` merges several.
"""
from __future__ import annotations

import math
import random
import statistics
import time
from typing import Any, Callable, Iterable, Optional

import torch
from torch import nn

from archstat.engine.analyze import analyze
from archstat.profiling import fresh_pages
from archstat.profiling.cpu_caches import last_level_cache_bytes
from archstat.profiling.host_pace import PACE, between, read_pace
from archstat.profiling.op_families import (AFTER_BN, AFTER_BN_RELU, AFTER_BN_WARM, COLD_LEVELS, EVICTED, MEMORY_FAMILIES,
                                            NO_KERNEL, NORMALIZED, family, features, output_bytes, work)
from archstat.progress import bar
from archstat.profiling.timing import stats, time_calls

SEED = 20240613
GRID_PART = "grid_part"  # a benchmark's tag when it belongs to a part of the grid judged apart (``global_head``)
GRID_VERSION = 23  # the BatchNorm probe after convs also with its code warm (23); the small memory benchmarks also timed after flushes of 256 MiB and to DRAM, their cold start against the traffic since a call (22); linears timed after a flush of twice the last-level cache (21; 20 flushed so for every family, tried and left); global pools over a CNN head's planes in place of the random draw's (19; 18 measured both, tagged apart); the ReLU probe after convs dropped (18); concats also timed as in a pass, convs probed by a ReLU from the pass state (recorded) (17); every point records the machine's pace while timed (16; 15 was a grid tried and reverted); 32 convs where the random draw is sparse, stems and channel reductions (14; 13 was a probe tried and not kept); adaptive pools onto a grid, windows 1x1-4x4 (12); the successor probes call an nn.ReLU module, views and identity modules timed flushed too (11); convs also timed with the private caches refilled (9), their BatchNorm and ReLU probes from that state (10); a BatchNorm successor probe after convs (6; built before the timing, 7; and the ReLU after it, 8); part of the cache key: measured under fresh_pages.steady_heap (5); LRN at batch 1 and 8, max pools over ReLU-network-like inputs
KERNELS = [((1, 1), 0.38), ((3, 3), 0.38), ((5, 5), 0.05), ((7, 7), 0.05), ((1, 7), 0.05), ((7, 1), 0.05),
           ((11, 11), 0.04)]  # 1x1 and 3x3 dominate CNNs' layers and their time: most of the grid goes there
MAX_PLANE = 4e6  # output elements per image: 64 channels at 224x224 is 3.2e6; CNNs trade channels for resolution
MAX_FLOPS = 6e9  # per call: keeps each conv benchmark under ~40 ms on 2 CPU cores
MAX_BYTES = 1e8  # per call, bytes moved
MAX_OUT_BYTES = 32 * 2 ** 20 - 1  # outputs below glibc's 32 MiB mmap ceiling: the fresh-page cost is measured apart


class Apply(nn.Module):
    """A module around one functional op, so that ``analyze()`` sees the same row a model would."""

    def __init__(self, fn: Callable[..., torch.Tensor], parts: int = 1) -> None:
        super().__init__()
        self.fn, self.parts = fn, parts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(*self.operands(x))

    def operands(self, x: torch.Tensor) -> tuple:
        """The op's arguments: ``x``, or its ``parts`` (contiguous copies, as a model's branches are)."""
        if self.parts > 1:
            return ([c.contiguous() for c in torch.chunk(x, self.parts, dim=1)],)
        return (x,)


class Pair(Apply):
    """The residual add: two distinct tensors of one shape."""

    def __init__(self) -> None:
        super().__init__(torch.add, parts=1)

    def operands(self, x: torch.Tensor) -> tuple:
        a, b = torch.chunk(x, 2, dim=1)
        return a.contiguous(), b.contiguous()


def _logu(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def _ch(rng: random.Random, lo: int, hi: int) -> int:
    return max(16, int(round(_logu(rng, lo, hi) / 16)) * 16)


def conv_configs(rng: random.Random, n: int, depthwise: bool, quick: bool, big: int = 1) -> list[dict]:
    """Random conv configs whose FLOPs per call stay under ``big * MAX_FLOPS`` (rejection sampling);
    ``big`` (16 on CUDA) also multiplies the bytes cap and the batch sizes."""
    out, kernels, weights = [], [k for k, _ in KERNELS], [w for _, w in KERNELS]
    while len(out) < n:
        k = (rng.choice([(3, 3)] * 4 + [(5, 5)]) if depthwise else rng.choices(kernels, weights)[0])
        c_in = _ch(rng, 16, 1024) if depthwise else (3 if rng.random() < 0.1 else _ch(rng, 16, 2048))
        c_out = c_in if depthwise else _ch(rng, 16, 2048)
        size = int(round(_logu(rng, 4, 224 if not quick else 16)))
        stride = 2 if rng.random() < (0.25 if k != (11, 11) else 0) else (4 if k == (11, 11) else 1)
        cfg = {"kernel": k, "c_in": c_in, "c_out": c_out, "size": size, "stride": stride, "batch": _batch(rng, big),
               "groups": c_in if depthwise else 1}
        if within_caps(cfg, quick, big):
            out.append(cfg)
    return out


def _batch(rng: random.Random, big: int) -> int:
    """A conv benchmark's batch: 1, 2, 4, 8 or 16, times ``big`` (16 on CUDA) seven times in ten."""
    return rng.choice([1, 2, 4, 8, 16]) * (1 if rng.random() < 0.3 else big)


def within_caps(cfg: dict[str, Any], quick: bool, big: int = 1) -> bool:
    """Does a conv config stay under the grid's caps: output plane ``MAX_PLANE``, FLOPs ``big * MAX_FLOPS``,
    bytes moved ``big * MAX_BYTES`` (each 64x less when ``quick``), output below ``MAX_OUT_BYTES`` on a
    CPU, and at least 0.2 MFLOP (smaller convs sit on the per-call floor)?"""
    (kh, kw), c_in, c_out, size, stride, batch = (cfg["kernel"], cfg["c_in"], cfg["c_out"], cfg["size"], cfg["stride"],
                                                  cfg["batch"])
    flops = 2 * batch * c_out * size * size * (c_in // cfg["groups"]) * kh * kw
    nbytes = 4 * batch * (c_in * (size * stride) ** 2 + c_out * size * size)
    out_ok = big > 1 or 4 * batch * c_out * size * size <= MAX_OUT_BYTES
    shrink = 64 if quick else 1
    return (c_out * size * size <= MAX_PLANE and flops <= MAX_FLOPS * big / shrink and out_ok
            and nbytes <= MAX_BYTES * big / shrink and (quick or flops >= 2e5))


def targeted_conv_configs(n: int, quick: bool, big: int = 1) -> list[dict]:
    """``n`` more conv configs where the random grid's own fit is worst: stems (3 input channels, a
    3x3, 5x5, 7x7 or 11x11 kernel, mostly strided, 16-128 output channels) and channel reductions
    (1x1 from 128-1024 channels to 16-64), in turn.  Drawn from a stream of their own: the rest of
    the grid stays as it was.

    Why: over the 112 random convs the leave-one-out error of the rate fit (``bench/rate_fit_loo.py``)
    was a median 10% for most convs but 28% for the 13 stems and 30% for the 8 reductions (a
    calibration of 20:44 UTC): the random draw puts few points there (a stem's output channels are
    drawn up to 2048, as no CNN's stem has them), and both run far from their neighbours' rate (a 1x1
    conv from 480 to 16 channels on 14x14 took 94 us at 32 GFLOP/s, to 128 channels 205 us at 117:
    most of its time goes over the input, whatever the output channels)."""
    rng = random.Random(SEED + 2)
    out: list[dict] = []
    while len(out) < n:
        stem = len(out) % 2 == 0
        if stem:
            k = rng.choices([(3, 3), (5, 5), (7, 7), (11, 11)], [0.5, 0.1, 0.3, 0.1])[0]
            c_in, c_out = 3, _ch(rng, 16, 128)
            stride = 4 if k == (11, 11) else (2 if rng.random() < 0.7 else 1)
            size = int(round(_logu(rng, 28 if not quick else 4, 160 if not quick else 16)))
        else:
            k, c_in, c_out = (1, 1), _ch(rng, 128, 1024), _ch(rng, 16, 64)
            stride = 2 if rng.random() < 0.2 else 1
            size = int(round(_logu(rng, 7, 56 if not quick else 8)))
        cfg = {"kernel": k, "c_in": c_in, "c_out": c_out, "size": size, "stride": stride, "batch": _batch(rng, big),
               "groups": 1}
        if within_caps(cfg, quick, big):
            out.append(cfg)
    return out


def conv_case(cfg: dict) -> tuple[nn.Module, tuple, int]:
    (kh, kw), s = cfg["kernel"], cfg["stride"]
    mod = nn.Conv2d(cfg["c_in"], cfg["c_out"], (kh, kw), s, (kh // 2, kw // 2), groups=cfg["groups"], bias=False)
    in_size = cfg["size"] * s  # output size ~ size
    return mod, (cfg["c_in"], in_size, in_size), cfg["batch"]


def linear_cases(rng: random.Random, n: int, quick: bool, big: int = 1) -> list[tuple[nn.Module, tuple, int]]:
    cases = []
    while len(cases) < n:
        m = rng.choice([1, 1, 1, 2, 4, 8, 16, 32, 64]) * (1 if rng.random() < 0.5 else big)
        k, o = _ch(rng, 64, 8192 if not quick else 256), _ch(rng, 64, 8192 if not quick else 256)
        if k * o * 4 <= 160e6:
            cases.append((nn.Linear(k, o), (k,), m))
    return cases


MEMORY_OPS: dict[str, Callable[[], nn.Module]] = {
    "activation": lambda: nn.ReLU(inplace=True),
    "elementwise": Pair,
    "batch_norm": lambda: nn.BatchNorm2d(1),  # channels set per case below
    "pool_max": lambda: nn.MaxPool2d(3, 2, 1),
    "pool_avg": lambda: nn.AvgPool2d(3, 1, 1),
    "adaptive_pool": lambda: nn.AdaptiveAvgPool2d(1),
    "concat": lambda: Apply(lambda xs: torch.cat(xs, 1), parts=4),  # a model's branches: contiguous tensors
    "copy": lambda: Apply(torch.clone),
    "lrn": lambda: nn.LocalResponseNorm(5),
}


def memory_cases(rng: random.Random, fam: str, n: int, quick: bool, big: int = 1) -> list[tuple[nn.Module, tuple, int]]:
    """``n`` tensors from ~256 B to 32 MB (activations ~100 MB; quick: ~1 MB), log-spaced; channels
    log-uniform in 16..2048 (fewer for the smallest tensors), so that the curve averages over plane
    sizes as CNNs mix them.  Adaptive pools keep only the draws onto a 7x7 grid and the smallest
    (global, the family's floor): ``global_head_cases`` gives global pooling its planes."""
    cases = []
    # elements: outputs stay below glibc's 32 MiB mmap ceiling (fresh pages are charged apart), except
    # the in-place activation's, which allocates nothing: VGG's ReLUs stream 100 MB, far beyond any cache
    top = (8e6 if fam != "activation" else 2.6e7) * big if not quick else 2.5e5 * big
    for i in range(n):
        elems = 64 * (top / 64) ** (i / max(n - 1, 1))
        c = 4 if i == 0 else min(_ch(rng, 16, 2048), max(4, int(elems) // 4 // 4 * 4))
        side = max(2, int(round(math.sqrt(elems / c))))
        mod = MEMORY_OPS[fam]()
        if fam == "batch_norm":
            mod = nn.BatchNorm2d(c).eval()
        if fam == "pool_max":  # ResNet's stem, VGG's, and the stride-1 pools of Inception's branches
            mod = rng.choice([nn.MaxPool2d(3, 2, 1), nn.MaxPool2d(2, 2), nn.MaxPool2d(3, 1, 1)])
        if fam == "pool_avg" and rng.random() < 0.4:
            mod = nn.AvgPool2d(3, 2, 1)
        if fam == "adaptive_pool" and side >= 7 and rng.random() < 0.4:  # a 7x7 head (VGG) besides global pooling
            mod = nn.AdaptiveAvgPool2d(7)
        elif fam == "adaptive_pool" and i > 0:  # global pooling over this draw's planes: left out (the smallest,
            # the family's floor, kept), global_head_cases' planes price it; drawn all the same, so that
            # the families after this one keep their draws (GRID_VERSION 19, ``global_head_cases``)
            continue
        batch = 1
        if fam == "lrn" and i % 2 and c >= 32:  # torch's LRN splits its work over the batch: one thread
            # at batch 1 (13.7 ns per element here), both at batch 8 (7.5): every other size at batch 8
            c, batch = c // 8, 8
        cases.append((mod, (c, side, side), batch))
    return cases


def adaptive_head_cases(n: int, quick: bool, big: int = 1) -> list[tuple[nn.Module, tuple, int]]:
    """``n`` adaptive average pools onto a grid, as VGG's 7x7 head and AlexNet's 6x6 one: output 6x6 or
    7x7, windows 1x1 to 4x4 in turn (so each window has a curve of its own in the time model), channels
    log-uniform in 16..1024, batch 1 or 8.  Drawn from a stream of their own: the rest of the grid stays
    as it was.

    Why apart from global pooling: global pooling sums each plane in one vectorised pass (50-95 GB/s
    here), while pooling onto a grid works out each output's window bounds (integer divisions) and sums
    a few elements: VGG-16's 7x7 -> 7x7 head took 770 us at batch 8 (3.8 ns per output) and 150-160 at
    batch 1, priced 90 and 29 from the global pools' bandwidth, in every run."""
    rng = random.Random(SEED + 1)
    cases = []
    for i in range(n):
        window, out = 1 + i % 4, rng.choice([6, 7])
        c = _ch(rng, 16, 1024 if not quick else 64)
        cases.append((nn.AdaptiveAvgPool2d(out), (c, out * window, out * window), rng.choice([1, 8]) * big))
    return cases


def global_head_cases(n: int, quick: bool, big: int = 1) -> list[tuple[nn.Module, tuple, int]]:
    """``n`` global average pools as a CNN's head calls them: planes of 7x7, 8x8, 10x10 or 14x14 (the
    last feature map of a 224-299 pixel input), channels drawn log-uniformly in 256-2048, batch from
    {1, 2, 4, 8, 16} (quick: 16-64 channels on 4x4-7x7).  The seeded draw of 16 gives 288-1136 channels
    at batch 2-16, 0.2-25 MB: global pooling's per-plane cost, read at sizes from a batch-1 head of
    MobileNet to a batch-16 one of ResNet-50.  Drawn from a stream of their own (the rest of the grid stays
    as it was) and tagged ``GRID_PART`` ``global_head``; the random draw's global pools left the grid for
    them (GRID_VERSION 19), the smallest apart, which gives the family its floor and cold start.

    Why: the random draw's global pools (``memory_cases``) make a few large planes from few channels
    (16 x 519x519) or many planes of 2x2, so their curve said 30-64 GB/s at 3 MB, where a head's
    thousands of 7x7 planes, each summed apart, run at 5-34 GB/s (2048x7x7 at batch 8: 95 us back to
    back, 642 flushed; 32x56x56, the same bytes, 183 and 347; a throw-away script): every benchmark
    model's global pool read -35% to -60% in every run of 2026-12-01 and -14% to -58% on 2026-12-02.
    Judged on the 00:55 UTC run of 2026-12-02, which measured both (``roofline_offline.py
    --drop-grid-part``): the global pools' median signed error nearer zero on 8 of 10 rows (-2% to
    -46% against -18% to -57%; vgg16's 7x7 head unmoved), the same 31 of 40 targets, the mean of the
    ten medians 17.63% -> 17.55%.  They still read low: what a pass leaves a head is not a flush."""
    rng = random.Random(SEED + 4)
    cases = []
    for _ in range(n):
        side = rng.choice([7, 8, 10, 14] if not quick else [4, 7])
        c = _ch(rng, 256, 2048) if not quick else _ch(rng, 16, 64)
        mod = nn.AdaptiveAvgPool2d(1)
        setattr(mod, GRID_PART, "global_head")
        cases.append((mod, (c, side, side), rng.choice([1, 2, 4, 8, 16]) * big))
    return cases


def pool_input(x: torch.Tensor, normalized: bool = False) -> torch.Tensor:
    """A max pool's benchmark input shaped like a ReLU network's: ``relu(x + 3 * o_c)``, ``x`` and
    the per-channel offsets ``o_c`` standard normal; ``relu(x)`` after a BatchNorm (``normalized``).

    The CPU max pool branches on every comparison, so its time depends on the data.  Without
    normalisation each channel of a ReLU network carries an offset of its own (a conv over positive
    inputs sums its weights times their mean; a bias) that is large next to the spread within the
    channel, so most channels are nearly all zero or nearly never zero: per-channel zero shares at the
    quartiles 0.01-0.04 / 0.48-0.58 / 0.96-0.99 on GoogLeNet's pool inputs, where white noise or its
    ReLU gives 0.5 everywhere.  The branches then predict: GoogLeNet's 3x3 pools ran 20-25% faster on
    their real inputs than on white noise (7.7 against 9.9 ms for 512x14x14 at batch 8, measured
    interleaved), and within 2-5% of this input (quartiles 0.01-0.04 / 0.46-0.55 / 0.97-0.98; offsets
    of 1x or 2x the spread were 5-20% slower).  A BatchNorm (at initialisation: no shift) centres
    every channel, so ResNet's and Inception-v3's pools see half zeros in every channel: ``relu(x)``."""
    with torch.inference_mode():
        if normalized:
            return torch.relu(x)
        g = torch.Generator(device="cpu").manual_seed(SEED)
        offset = torch.randn(1, x.shape[1], *([1] * (x.dim() - 2)), generator=g).to(device=x.device, dtype=x.dtype)
        return torch.relu(x + 3.0 * offset)


_BUFFERS: dict[str, torch.Tensor] = {}  # the flushes' and the eviction's buffers, allocated once each
# memory families also timed as a pass calls them (``as_in_a_pass``), which the time model reads instead of
# flushed: a concat's branches were all written within its block, and sit in the last-level cache.  GoogLeNet's
# and Inception-v3's concats of 0.8-24 MB moved 11-25 GB/s in a pass where the flushed benchmarks said 8-15
# (priced +19..+82% in every run of 2026-12-01); timed with only the private caches refilled, 11-21 GB/s
IN_A_PASS = ("concat",)
TO_DRAM = ("linear",)  # families flushed from every cache, the L3 too (``flush_to_dram``): their weights, read once a pass
PRODUCED = ("linear", "activation", "batch_norm", "pool_max", "pool_avg", "adaptive_pool", "lrn", "elementwise")


def flushed_times(call: Callable[[], Any], repeat: int, produce: Optional[Callable[[], Any]] = None,
                  flush: Optional[Callable[[], None]] = None) -> list[float]:
    """Seconds per call, a flush before each (``flush``, by default ``flush_caches``: a 64 MiB buffer
    written in between; ``flush_to_dram`` for the linears), then ``produce()`` (untimed) writing the
    operand that, in a model, the previous op has just written.

    A loop that repeats one op on one tensor keeps everything in cache; in a forward pass the weights
    and the older operands are cold (a residual add's shortcut, a concat's branches), while the input
    of most ops was written by the op just before it, and is in cache as far as it fits.  Measured
    hot, a linear layer streamed its 8-15 MB of weights at 40-50 GB/s from cache where a model's
    classifier reads them cold at 12-17 GB/s (predicted 2-3x too fast); flushing everything, in-place
    ReLUs were predicted 15-100% too slow at batch 1 (e.g. resnet50: +93%).
    """
    return prepared_times(call, repeat, clear_then(flush or flush_caches, produce))


def prepared_times(call: Callable[[], Any], repeat: int, prepare: Callable[[], Any]) -> list[float]:
    """Seconds per call, ``prepare()`` (untimed) before each, after one untimed call (its first-call
    costs: allocations, oneDNN's primitive creation)."""
    call()
    out = []
    for _ in range(repeat):
        prepare()
        t0 = time.perf_counter()
        call()
        out.append(time.perf_counter() - t0)
    return out


EVICT_BYTES = 8 * 2 ** 20  # 4x the private L2s of the 2-core hosts we calibrate on, a quarter of their LLC


def as_in_a_pass(produce: Optional[Callable[[], Any]]) -> Callable[[], None]:
    """The state an op finds in a forward pass, as a ``prepare`` step (``prepared_times``,
    ``chain_penalties``): the private caches refilled by other data (``evict_private_caches``: L2
    displaced, the last-level cache kept), then ``produce()`` writing the op's input as the op before
    it would.

    Why: back to back, a conv finds its weights and its output buffer in L2; in a forward pass the
    ops between two calls of the same conv (a whole pass) and the BatchNorm and ReLU just before it
    have displaced them, while a model that fits the last-level cache still finds them there.
    MobileNet's convs at batch 1 took 20-90 us more in the pass than back to back (a depthwise 3x3
    over 512x14x14: 102 us back to back, 127 after 16 MB written); flushed from every cache, the
    convs of the benchmark models read 30-40% too slow (``time_case``).  The BatchNorm and ReLU probes
    after a conv start from the same state: from warm caches they overpriced inception_v3's batch
    norms after its 1x1 branch convs by 50-80%.
    """
    return clear_then(evict_private_caches, produce)


def clear_then(clear: Callable[[], None], produce: Optional[Callable[[], Any]]) -> Callable[[], None]:
    """A ``prepare`` step: ``clear()`` the caches (a flush, an eviction), then ``produce()`` the op's
    input as the op before it would (nothing when None)."""
    def prepare() -> None:
        clear()
        if produce is not None:
            produce()
    return prepare


def evict_private_caches() -> None:
    """Write an ``EVICT_BYTES`` buffer (see ``as_in_a_pass``)."""
    write_buffer("evict", EVICT_BYTES)


def write_buffer(name: str, nbytes: int) -> None:
    """Write ``nbytes`` of float32 ones to the buffer ``name`` (allocated on first use).

    Allocated and written in inference mode, whatever the caller's mode: a buffer first created
    inside ``time_case``'s inference mode is an inference tensor, which PyTorch refuses to update
    in place outside it."""
    with torch.inference_mode():
        if name not in _BUFFERS:
            _BUFFERS[name] = torch.empty(nbytes // 4, dtype=torch.float32)
        _BUFFERS[name].fill_(1.0)


def signature(row: dict, batch: int) -> tuple:
    """What identifies a layer's config: (family, kernel, stride, in_shapes, out_shape, batch)."""
    kern = tuple(row.get("kernel") or ()) if isinstance(row.get("kernel"), list) else row.get("kernel")
    stride = tuple(row.get("stride") or ()) if isinstance(row.get("stride"), list) else row.get("stride")
    return (family(row), kern, stride, str(row.get("in_shapes")), str(row.get("out_shape")), batch)


def time_case(mod: nn.Module, shape: tuple, batch: int, device: torch.device, dtype: torch.dtype,
              channels_last: bool, itemsize: int, quick: bool = False) -> Optional[dict[str, Any]]:
    """Price one benchmark with ``analyze()`` and time it; None if ``analyze`` finds no row of its own.

    The module is wrapped in a Sequential, so that a torch.nn layer is a leaf call as in a model.
    ``quick`` (the tests' grid): the cold levels timed once each instead of ``COLD_LEVEL_REPEAT`` times."""
    mod = nn.Sequential(mod).eval()
    rows = [r for r in analyze(mod, shape, batch=batch, dtype=dtype).to_dict("records")
            if family(r) not in NO_KERNEL and r.get("supported")]
    if not rows:
        return None
    row = rows[-1]
    mod = mod.to(device=device, dtype=dtype)
    x = torch.randn(batch, *shape, device=device, dtype=dtype)
    fam = family(row)
    normalized = getattr(mod[0], NORMALIZED, False)
    if fam == "pool_max":
        x = pool_input(x, normalized)
    if channels_last and x.dim() == 4:
        mod, x = mod.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    # time the call a model's generated code makes: the layer itself, or the function on ready operands
    inner = mod[0]
    with torch.inference_mode():
        args = inner.operands(x) if isinstance(inner, Apply) else (x,)
        fn = inner.fn if isinstance(inner, Apply) else inner
        call = lambda: fn(*args)  # noqa: E731
        first = args[0] if isinstance(args[0], torch.Tensor) else None
        rewrite = (lambda: first.mul_(1.0)) if first is not None else None  # noqa: E731
        produce = rewrite if fam in PRODUCED else None  # the op before writes the input
        flops, nbytes = work(row, batch, itemsize)
        flushed = device.type == "cpu" and fam not in ("conv", "conv_dw")
        if flushed:
            times = flushed_times(call, repeat=7, produce=produce, flush=flush_to_dram if fam in TO_DRAM else None)
        else:  # convs: back to back (their weights are small next to their work; flushed, they were
            # predicted 30-40% too slow), as on a GPU, whose caches are small next to its layers; on the
            # CPU the model reads their pass-state time below (EVICTED) instead
            times = time_calls(call, device, warmup=2, repeat=15, budget_s=0.12)
        point = {"family": fam, "flops": flops, "bytes": nbytes, "features": features(row, batch),
                 "time_s": stats(times)["median"], "signature": list(signature(row, batch))}
        if normalized:
            point[NORMALIZED] = True
        if getattr(mod[0], GRID_PART, None):
            point[GRID_PART] = getattr(mod[0], GRID_PART)
        if device.type == "cpu":
            if flushed:  # the same call with code and data warm: the family's warm floor (smallest case), its
                # cold start, and the back-to-back curves of ops whose operands sit in the private caches
                point["hot_s"] = stats(time_calls(call, device, warmup=2, repeat=15, budget_s=0.03))["median"]
            # what the op itself leaves behind, not the flush: its operand re-written, no flush
            point["after_s"] = successor_penalty(call, produce)
            if fam in ("conv", "conv_dw"):
                # the conv as a pass calls it: input just written, weights and output buffer out of L2
                in_a_pass = as_in_a_pass(rewrite)
                point[EVICTED] = stats(prepared_times(call, repeat=7, prepare=in_a_pass))["median"]
                # and what it leaves the BatchNorm and the ReLU after most convs, from the same state
                point[AFTER_BN], point[AFTER_BN_RELU] = chain_penalties(call, [batch_norm_probe, relu_probe], in_a_pass)
                # and with the BatchNorm's code warm (it ran one conv ago, as in a network of conv-BN-ReLU blocks)
                point[AFTER_BN_WARM] = chain_penalties(call, [batch_norm_probe], in_a_pass, warm=True)[0]
            elif fam in IN_A_PASS:
                # operands a block wrote (a concat's branches): out of L2, in the last-level cache
                point[EVICTED] = stats(prepared_times(call, repeat=7, prepare=as_in_a_pass(produce)))["median"]
            if flushed and fam not in TO_DRAM and nbytes <= COLD_LEVEL_CASE_BYTES:
                # the small benchmarks, which set the family's floor, after larger flushes too: its cold start
                # after a model's pass worth of other traffic (``cold_level_times``)
                point[COLD_LEVELS] = cold_level_times(call, produce, 1 if quick else COLD_LEVEL_REPEAT)
            point["out_bytes"] = output_bytes(row, batch, itemsize)
    return point


def batch_norm_probe(out: torch.Tensor) -> Callable[[torch.Tensor], Any]:
    """An eval-mode BatchNorm for tensors like ``out`` (a conv's output), as the probe of
    ``successor_penalty``: built once, before any timing, so that building it never runs between the
    conv and the timed call."""
    return nn.BatchNorm2d(out.shape[1]).eval().to(device=out.device, dtype=out.dtype)


FLUSH_BYTES = 64 * 2 ** 20  # twice the 32 MiB last-level cache of the hosts the model was built on
DRAM_FLUSH_MAX_BYTES = 2 ** 30  # the most a flush to DRAM writes: at ~25 GB/s, 43 ms per flush


def flush_caches() -> None:
    """Write ``FLUSH_BYTES``, which empties the private caches and an L3 of 32 MiB or less (the hosts the
    model was built on; see ``flushed_times``).

    Fixed, not sized from the host's cache, for every family but the linears (``flush_to_dram``): on a
    host with a 480 MiB L3 it leaves a benchmark's data in the L3, as a pass leaves an op's code and
    its recent operands; a flush of twice the L3 for every family (GRID_VERSION 20, tried on
    2026-12-02) priced the classifiers and VGG-16's large ReLUs right but every cold start and residual
    shortcut too slow: over two paired runs each the mean of the ten medians read 15.65% against 13.6%
    with 64 MiB (docs/measured.md)."""
    write_buffer("flush", FLUSH_BYTES)


def dram_flush_bytes(llc_bytes: Optional[int] = None) -> int:
    """Bytes ``flush_to_dram`` writes: twice the last-level cache (``cpu_caches``; ``llc_bytes`` when
    given), at least ``FLUSH_BYTES`` and at most ``DRAM_FLUSH_MAX_BYTES``."""
    llc = last_level_cache_bytes() if llc_bytes is None else llc_bytes
    return int(min(max(2 * llc, FLUSH_BYTES), DRAM_FLUSH_MAX_BYTES))


def flush_to_dram() -> None:
    """Empty every CPU cache, the last level too up to a 512 MiB L3: write ``dram_flush_bytes()``.

    The linears' flush (GRID_VERSION 21).  A linear reads its weights once per forward pass, and a
    pass streams hundreds of MB to GB through the caches between two reads, so in a model they come
    from DRAM; ``flush_caches``' 64 MiB does not empty a 480 MiB L3 (an 8 MB linear came back in 590
    us after it, 855 after 256 MiB, 932 after 1 GiB), and priced so every model's classifier read -18%
    to -59% on such a host.  The other families keep ``flush_caches``: their operands and code sit in
    such an L3 in a pass, and a flush of twice the L3 for every family (GRID_VERSION 20) priced their
    cold starts and residual shortcuts too slow (docs/measured.md).  On a host whose L3 is 32 MiB or
    less both flushes write 64 MiB.  A matmul of two activations is a linear too (``op_families``), and
    is priced from these benchmarks, though recent ops wrote its operands: CNNs have few, attention
    blocks many, and those may read slow.  The buffer (up to 1 GiB) is sized once, when it is made (sysfs
    read once, not before each flush), and dropped at the end of ``run_grid``."""
    held = _BUFFERS.get("dram_flush")
    write_buffer("dram_flush", held.numel() * 4 if held is not None else dram_flush_bytes())


COLD_LEVEL_BYTES = 256 * 2 ** 20  # the flush between ``FLUSH_BYTES`` and a flush to DRAM (``cold_levels``)
COLD_LEVEL_CASE_BYTES = 64 * 2 ** 10  # the memory benchmarks timed at the cold levels: the smallest, the floor's
COLD_LEVEL_REPEAT = 5


def cold_levels(dram_bytes: Optional[int] = None) -> list[int]:
    """The flush sizes ``cold_level_times`` times after: ``COLD_LEVEL_BYTES`` and ``dram_flush_bytes()``
    (``dram_bytes`` when given), those above ``FLUSH_BYTES`` (on a host with an L3 of 32 MiB or less the
    flush to DRAM is the base one)."""
    dram = dram_flush_bytes() if dram_bytes is None else dram_bytes
    return sorted({n for n in (COLD_LEVEL_BYTES, dram) if n > FLUSH_BYTES})


def cold_level_times(call: Callable[[], Any], produce: Optional[Callable[[], Any]],
                     repeat: int = COLD_LEVEL_REPEAT) -> list[list[float]]:
    """``[[flush bytes, seconds], ...]``: the call (a small memory benchmark) timed after each flush of
    ``cold_levels()`` (the one of ``dram_flush_bytes()`` by ``flush_to_dram``), ``produce()`` writing its
    input in between, the median of ``repeat`` calls per level.

    Why: a family's cold start (its code, PyTorch's dispatch state for it) grows with the traffic since its
    last call well past ``flush_caches``' 64 MiB on a host with a large L3.  Over a 7x7 plane of 1024
    channels at batch 1 (2026-12-02, 480 MiB L3), after flushes of 64, 128, 256, 512 and 1024 MiB: a global
    average pool took 55, 97, 122, 128 and 146 us (13 back to back), a BatchNorm 53, 97, 124, 136 and 165
    (19), an in-place ReLU 20, 35, 45, 57 and 57 (5).  A model's global pool runs once a pass, a whole
    pass of traffic (114-2566 MB for the benchmark models) after its last call: priced at the 64 MiB
    level it read -67% to -76% in every model of a run of that day (the time model's ``cold_at``)."""
    dram = dram_flush_bytes()  # sysfs read once
    out = []
    for nbytes in cold_levels(dram):
        flush = flush_to_dram if nbytes == dram else (lambda n=nbytes: write_buffer("cold_level", n))
        out.append([float(nbytes), stats(flushed_times(call, repeat, produce, flush))["median"]])
    return out


def successor_penalty(call: Callable[[], Any], prepare: Optional[Callable[[], Any]] = None, repeat: int = 5,
                      probe: Optional[Callable[[torch.Tensor], Callable[[torch.Tensor], Any]]] = None) -> float:
    """Seconds an op costs the op after it: a probe op over the op's output timed right after the op
    (``prepare()`` untimed before each: the write of its input by the op before it), minus the same
    probe timed back to back.  ``max(0, median(after) - median(hot))``.  The probe is an in-place ReLU
    unless ``probe`` is given: a factory called once with the op's first output, before any timing,
    that returns the function applied to each output (``batch_norm_probe``: a BatchNorm).

    Why: a large op leaves the caches full of its own data.  The next op finds its code, PyTorch's
    dispatch state and (when the op writes past the caches) its input in DRAM: a ReLU over 16 KB ran in
    2 us back to back and in 45-75 us right after a linear layer that streamed 411 MB of weights; a
    copy of 64 MiB before it cost the same, a copy of 16 MiB almost nothing.  The successor pays this,
    whatever its family, so it is measured per op here and charged to the next row (``TimeModel``).
    """
    return chain_penalties(call, [probe or relu_probe], prepare, repeat)[0]


def relu_probe(out: torch.Tensor) -> Callable[[torch.Tensor], Any]:
    """An in-place ReLU module, the default probe of ``successor_penalty`` (the smallest kernel there is).

    A module, as models call their ReLUs: the module call's code is part of what the op after a large
    one finds cold.  After a linear layer that streamed 411 MB, ``nn.ReLU`` over its 131 KB output paid
    89 us more than back to back where ``torch.relu_`` paid 48, and VGG-16's ReLUs there took 70-109 us
    (predicted 14-20 from the function); after a 512 -> 512 3x3 conv over 8 x 14x14, 94-105 against
    48-66, where VGG-16's three such ReLUs took 115-140 us (predicted 45-60)."""
    return nn.ReLU(inplace=True)


def chain_penalties(call: Callable[[], Any], stages: list[Callable[[torch.Tensor], Callable[[torch.Tensor], Any]]],
                    prepare: Optional[Callable[[], Any]] = None, repeat: int = 5, warm: bool = False) -> list[float]:
    """``successor_penalty`` for a chain of probes: stage ``k`` runs on stage ``k-1``'s output (stage 0
    on the op's), and each is timed right after the one before, minus itself back to back on the same
    input.  One penalty per stage, ``max(0, median(after) - median(hot))``; ``[0.0] * len(stages)``
    when the op's output is not a floating-point tensor.  Each stage factory is called once, on the
    first output, before any timing; the function it returns gives the next stage's input (an
    in-place op returns its operand).

    Why a chain: after a conv, the BatchNorm is not the only op that pays.  A conv 192 -> 64 (1x1) over
    8 x 35x35 left the BatchNorm after it 173 us (77-103 back to back) and the in-place ReLU after that
    39 us (24 back to back): what a conv leaves fades over more than one op, and the ReLU's share is
    not what a BatchNorm benchmark (no conv before it) leaves its ReLU.

    ``warm``: after ``prepare()``, the stages run once on a spare tensor shaped like the op's output
    before the op is called: their code warm, as in a network whose convs each carry a BatchNorm, where
    the last BatchNorm ran one conv ago (``TimeModel.conv_leaves_s``, ``AFTER_BN_WARM``)."""
    out = call()
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        return [0.0] * len(stages)
    spare = out.clone() if warm else None
    runs = []
    for make in stages:  # built here: nothing between the op and the timed stages below
        runs.append(make(out))
        out = runs[-1](out)
    after: list[list[float]] = [[] for _ in stages]
    for _ in range(repeat):
        if prepare is not None:
            prepare()
        if spare is not None:
            warmed = spare
            for run in runs:
                warmed = run(warmed)
        out = call()
        for k, run in enumerate(runs):
            t0 = time.perf_counter()
            nxt = run(out)
            after[k].append(time.perf_counter() - t0)
            out = nxt
    penalties = []
    out = call()
    for k, run in enumerate(runs):  # each stage back to back on its own input
        hot = time_calls(lambda: run(out), torch.device("cpu"), warmup=2, repeat=15, budget_s=0.02)
        penalties.append(max(0.0, stats(after[k])["median"] - stats(hot)["median"]))
        out = run(out)
    return penalties


PACE_EVERY = 16  # benchmarks between two readings of the machine's pace (about 2 s of a pass on 2 CPU cores)
PASSES = 2  # CPU: the grid is timed twice, one pass after the other; each point keeps the faster


def run_grid(device: torch.device, dtype: torch.dtype, channels_last: bool, quick: bool = False,
             quiet: Optional[bool] = None, passes: int = PASSES) -> list[dict[str, Any]]:
    """Time the whole synthetic grid; one point per benchmark (see the module docstring).

    ``passes`` times over, each point the pass that ran faster (``combine``): on a shared machine a
    burst of other work slows some seconds of a pass, and a second pass half a minute later rarely
    hits the same benchmarks (two single-pass calibrations of the same grid differed by 10-40% on a
    tenth of their convs, and one saw fresh pages 4x as dear)."""
    rng = random.Random(SEED)
    tiny = {"kernel": (1, 1), "c_in": 8, "c_out": 8, "size": 1, "stride": 1, "batch": 1, "groups": 1}
    big = 16 if device.type == "cuda" else 1  # a GPU's layers are larger before they leave the launch floor
    n_conv, n_targeted, n_dw, n_linear, n_memory = (12, 2, 5, 4, 4) if quick else (112, 32, 32, 36, 20)
    cases = [conv_case(c) for c in [tiny] + conv_configs(rng, n_conv, False, quick, big)]  # tiny: the floor
    cases += [conv_case(c) for c in targeted_conv_configs(n_targeted, quick, big)]
    cases += [conv_case(c) for c in [{**tiny, "kernel": (3, 3), "groups": 8}]
              + conv_configs(rng, n_dw, True, quick, big)]
    cases += [(nn.Linear(8, 8), (8,), 1)] + linear_cases(rng, n_linear, quick, big)
    for fam in MEMORY_FAMILIES:
        cases += memory_cases(rng, fam, n_memory, quick, big)
    for mod, shape, batch in memory_cases(rng, "pool_max", n_memory, quick, big):  # again, after a BatchNorm
        setattr(mod, NORMALIZED, True)
        cases.append((mod, shape, batch))
    cases += adaptive_head_cases(4 if quick else 16, quick, big)
    cases += global_head_cases(4 if quick else 16, quick, big)
    itemsize = torch.empty((), dtype=dtype).element_size()
    runs: list[list[dict[str, Any]]] = []
    # one pass on a GPU: a lent card runs nothing else, and its time is budgeted (bench/gpu_run.sh)
    passes = 1 if quick or device.type == "cuda" else max(1, passes)
    with fresh_pages.steady_heap(device):  # measured as the model is (fresh_pages: glibc's thresholds pinned)
        for k in range(passes):
            runs.append(time_grid(cases, device, dtype, channels_last, quick, quiet, itemsize,
                                  label=f"calibrating the time model on {len(cases)} synthetic ops"
                                  + (f", pass {k + 1}/{passes}" if passes > 1 else "")))
    for name in ("dram_flush", "cold_level"):  # up to 1 GiB each: not held through the profile that follows
        _BUFFERS.pop(name, None)
    return combine(runs)


def time_grid(cases: list, device: torch.device, dtype: torch.dtype, channels_last: bool, quick: bool,
              quiet: Optional[bool], itemsize: int, label: str) -> list[dict[str, Any]]:
    """One pass over the grid's ``cases``: the fresh-page cost, then one point per benchmark."""
    pace = read_pace(device, dtype)  # the machine's pace, read every PACE_EVERY benchmarks (host_pace)
    page_cost = fresh_pages.measure(device) if not quick else 0.0  # seconds per byte
    points = [{"family": "fresh_pages", "flops": 0.0, "bytes": 1.0, "features": [],
               "signature": ["fresh_pages"], "time_s": page_cost}]
    block: list[dict[str, Any]] = points[:]  # the points since the last pace reading
    for k, (mod, shape, batch) in enumerate(bar(cases, label, quiet)):
        point = time_case(mod, shape, batch, device, dtype, channels_last, itemsize, quick)
        if point is not None:
            points.append(point)
            block.append(point)
        if (k + 1) % PACE_EVERY == 0 or k + 1 == len(cases):
            pace = stamp(block, pace, read_pace(device, dtype))
            block = []
    x = torch.randn(1, 4, 2, 2, device=device, dtype=dtype)
    for fam, fn in NO_KERNEL_CASES.items():
        points.append(no_kernel_point(fam, fn, x))
    stamp(points[-len(NO_KERNEL_CASES):], pace, read_pace(device, dtype))
    return points


def stamp(block: list[dict[str, Any]], before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Give each point of ``block`` the machine's pace while it was timed (``host_pace.PACE``: the geometric
    mean of the readings before and after the block); returns ``after``, the next block's ``before``."""
    for point in block:
        point[PACE] = between(before, after)
    return after


NO_KERNEL_CASES: dict[str, Callable[[torch.Tensor], Any]] = {
    "dispatch": lambda t: t.flatten(1),  # a view: a function call and a tensor header
    "identity": nn.Dropout(0.5).eval(),  # a module that returns its input: the module call alone
}


def no_kernel_point(fam: str, fn: Callable[[torch.Tensor], Any], x: torch.Tensor) -> dict[str, Any]:
    """The point of a family that launches no kernel (``op_families.NO_KERNEL``): on the CPU ``fn(x)``
    back to back (``hot_s``, the per-call floor) and after a cache flush (``time_s``), so that the time
    model knows its cold start; on a GPU back to back only (``time_s``), as every GPU benchmark.

    Why flushed: a model calls its flatten and its dropouts once per pass, with their code long gone
    from the caches.  Back to back a flatten took 0.7 us and a Dropout in eval 3.4; in the benchmark
    models' passes 11-18 and 25-39 us, flushed here 15 and 34."""
    with torch.inference_mode():
        hot = stats(time_calls(lambda: fn(x), x.device, warmup=2, repeat=50, budget_s=0.05))["median"]
        point = {"family": fam, "flops": 0.0, "bytes": 0.0, "features": [], "time_s": hot, "signature": [fam]}
        if x.device.type == "cpu":  # a GPU calibration has no back-to-back fit: ``hot_s`` would start one
            point["time_s"], point["hot_s"] = stats(flushed_times(lambda: fn(x), repeat=7))["median"], hot
    return point


def reading(fastest: bool) -> Callable[[Iterable[float]], float]:
    """The statistic several passes (or rounds) of one timing are read by: their least with ``fastest``
    (other work only ever slows a call down), else their median (``combine``)."""
    return min if fastest else statistics.median


def combine(runs: list[list[dict[str, Any]]], fastest: bool = True) -> list[dict[str, Any]]:
    """One point per benchmark from several passes over the same grid: the least ``time_s``, ``hot_s``
    and ``EVICTED`` (other work only ever slows a benchmark down), or with ``fastest=False`` their
    medians (a host whose pace drifts for minutes: ``bench/roofline_accuracy.py`` reads its rounds so),
    and the mean ``after_s``, ``AFTER_BN``, ``AFTER_BN_RELU`` and ``AFTER_BN_WARM`` (differences of two
    timings, which a burst can move either way); ``COLD_LEVELS`` per flush size as ``time_s``.
    A point keeps the machine's pace (``host_pace.PACE``) and its other keys from the pass whose
    ``time_s`` it kept, or the one nearest the median (of two equally near, the earlier pass); the passes
    are compared as measured (re-read at one pace first, the benchmark read worse: docs/measured.md)."""
    pick = reading(fastest)
    out = []
    for same in zip(*runs):
        kept = pick(p["time_s"] for p in same)
        point = dict(min(same, key=lambda p: abs(p["time_s"] - kept)))
        point["time_s"] = kept
        for key in ("hot_s", EVICTED):
            if all(key in p for p in same):
                point[key] = pick(p[key] for p in same)
        for key in ("after_s", AFTER_BN, AFTER_BN_RELU, AFTER_BN_WARM):
            if all(key in p for p in same):
                point[key] = sum(p[key] for p in same) / len(same)
        if all(COLD_LEVELS in p for p in same):  # per flush size (those every pass timed), as ``time_s``
            by_size = [dict((n, t) for n, t in p[COLD_LEVELS]) for p in same]
            point[COLD_LEVELS] = [[n, pick(levels[n] for levels in by_size)] for n, _ in same[0][COLD_LEVELS]
                                  if all(n in levels for levels in by_size)]
        out.append(point)
    return out
