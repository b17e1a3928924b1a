"""How fast the machine runs right now: three fixed probes, read at calibration and at measurement.

A shared machine does not keep one speed.  On the 2-core hosts we measure on, the same synthetic grid
timed in runs minutes apart moved by a median 1.0-1.5x per family, often close to one factor for
every family (convs 1.43x, ReLUs 1.28x, copies 1.17x in one pass against a run 10 minutes later),
and the predicted layer sum followed it: 1.05-1.29 of the whole model on one run, 0.78-1.0 on
another.  A calibration taken days ago, under another load, could be off by one factor for every layer.

So both sides read the same three probes (``PROBES``: a matmul, a copy that streams from DRAM, a
call too small to do any work), each the median of ``PROBE_REPEAT`` calls back to back: every
calibration point records the pace around it (``PACE``), every profile with a time model the pace
while its layers were timed (``context["host_pace"]``).  ``TimeModel(points, state, pace)`` re-reads a
calibration at another pace: every calibration time ``t`` becomes

    t * g(now) / g(then),    g(p) = (prod_k p_k) ** (1 / len(PROBES))

(``pace_factor``), one factor for every term of every family, no parameter fitted to any model.

Within a run tried, and not applied (docs/measured.md): on the first benchmark run that read the
probes (05:12 UTC 2026-12-01) the calibration re-read at the measurement's pace, its passes combined
at one pace, met 33 of 40 targets, mean of the ten medians 18.7%, against 35 of 40 and 17.1% as
measured; on the next run, out of sample, 29 of 40 and 17.9% against 38 and 13.2%.  The probes
explain little of a point's change between two passes (correlation 0.42 in log time; convs against
the matmul probe 0.65, memory-bound families near 0 or below): most of a shared host's drift here
is per benchmark, not one factor, and the dispatch probe alone moved 2x.

Applied where the calibration comes from another hour of the host (2026-12-02): ``profile`` re-reads
a calibration it loads from the cache at the pace of its layers, on a CPU (``TimeModel.reread``).
Between runs the host's other tenants move whole families together, and the probes follow: from the
00:32 to the 01:14 UTC run the copy probe read 1.8 -> 3.5 ms and the matmul 0.64 -> 0.82 while the
grid's flushed memory benchmarks slowed 1.5-1.7x and its convs 1.28x.  Each run's frames predicted from
another run's calibration (``bench/roofline_offline.py DUMP --calibration-from DUMP2 [--pace]``, the six
ordered pairs of the day's three runs): the mean of the ten medians 28.8% as measured, 20.3% re-read
(29.3 -> 21.6, 46.8 -> 20.1, 16.5 -> 16.6, 18.3 -> 18.8, 24.1 -> 24.4, 37.8 -> 20.2%), 142 -> 177 of 240
targets: a large gain where the host had moved; where it had not, 0.1-0.5 point and 2-4 targets of
40 lost per pair.  Within one run (the bench's model, calibrated in the same minutes) it still reads
worse (14.6 -> 14.9, 17.6 -> 18.8, 19.8 -> 22.2% on the same three), so a model passed to ``profile``,
or one it has just measured, is used as built.  Checked out of sample on the six pairs with the day's
fourth run (02:19 UTC): 21.35% as measured, 18.2% re-read.
"""
from __future__ import annotations

import math
import statistics
from typing import Any, Callable, Optional

import torch

from archstat.profiling.op_families import AFTER_BN, AFTER_BN_RELU, AFTER_BN_WARM, COLD_LEVELS, EVICTED
from archstat.profiling.timing import time_calls

# a calibration point's timings (s)
TIME_KEYS = ("time_s", "hot_s", EVICTED, "after_s", AFTER_BN, AFTER_BN_RELU, AFTER_BN_WARM)
PACE = "pace"  # the key of a calibration point's probe readings (seconds per probe)
PROBE_REPEAT = 9
# sized for a CPU host; on a GPU the three are launch-bound (a 2 x 16 MiB copy fits an H100's L2), a reading
# of its launch path only
MATMUL_N = 384  # 113 MFLOP: about 1-2 ms on 2 cores, compute-bound
COPY_BYTES = 16 * 2 ** 20  # larger than the last-level caches of the hosts we calibrate on: DRAM-bound
TINY = 1024  # elements: a call that does no work, the dispatch floor


def probes(device: torch.device, dtype: torch.dtype) -> dict[str, Callable[[], object]]:
    """The three probe calls, on operands built once."""
    a = torch.randn(MATMUL_N, MATMUL_N, device=device, dtype=dtype)
    src = torch.empty(COPY_BYTES // 4, device=device, dtype=torch.float32).uniform_()
    dst = torch.empty_like(src)
    tiny = torch.randn(TINY, device=device, dtype=dtype)
    return {"matmul": lambda: a @ a, "copy": lambda: dst.copy_(src), "dispatch": lambda: torch.relu(tiny)}


def read_pace(device: torch.device, dtype: torch.dtype = torch.float32) -> dict[str, float]:
    """Seconds of each probe now: the median of ``PROBE_REPEAT`` calls after one warm-up."""
    with torch.inference_mode():
        return {name: statistics.median(time_calls(call, device, warmup=1, repeat=PROBE_REPEAT))
                for name, call in probes(device, dtype).items()}


def pace_level(pace: dict[str, float]) -> float:
    """``g(p)``: the geometric mean of the probe times (seconds); NaN without readings."""
    values = [v for v in pace.values() if v and v > 0 and math.isfinite(v)]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else math.nan


def pace_factor(now: Optional[dict[str, float]], then: Optional[dict[str, float]]) -> float:
    """``g(now) / g(then)`` over the probes both readings have: how much slower the machine runs now than
    when ``then`` was read (1.0 where either reading is missing)."""
    if not now or not then:
        return 1.0
    common = sorted(set(now) & set(then))
    ratio = pace_level({k: now[k] for k in common}) / pace_level({k: then[k] for k in common}) if common else math.nan
    return ratio if math.isfinite(ratio) and ratio > 0 else 1.0


def between(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """The pace between two readings: per probe the geometric mean of the two."""
    return {k: math.sqrt(before[k] * after[k]) for k in before if k in after and before[k] > 0 and after[k] > 0}


def at_pace(point: dict[str, Any], pace: Optional[dict[str, float]]) -> dict[str, Any]:
    """A calibration ``point`` with its timings (``TIME_KEYS``, and each of its ``COLD_LEVELS``) re-read at
    the machine's ``pace``: each multiplied by ``pace_factor(pace, point[PACE])``, and ``PACE`` set to
    ``pace``; the point as it is where either reading is missing (a calibration from before the probes, or
    no reading now)."""
    if not pace or not point.get(PACE):
        return point
    scale = pace_factor(pace, point[PACE])
    levels = {COLD_LEVELS: [[n, t * scale] for n, t in point[COLD_LEVELS]]} if COLD_LEVELS in point else {}
    return {**point, **{k: point[k] * scale for k in TIME_KEYS if k in point}, **levels, PACE: dict(pace)}
