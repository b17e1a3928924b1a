"""Device ceilings, measured on the device itself and cached per device name.

* **Matmul FLOP/s per precision**: a square ``n x n`` product, ``2 n^3`` FLOPs, median of repeats
  (``n = 8192`` on CUDA, 512 on CPU).  ``fp32`` is strict, ``tf32`` has TF32 on.
* **Copy bandwidth**: ``dst.copy_(src)`` of a large buffer; bytes moved = read + write = ``2 * size``.
  This is the bandwidth an elementwise kernel (ReLU, BN, add) can hope for.
* **Convolution ceilings**: a small calibration grid of convolutions, one per kernel size and channel
  width met in the zoo (VGG's wide 3x3s, ResNet's stages and bottleneck 1x1s, the 7x7 and 11x11 stems,
  GoogLeNet's 5x5, Inception-v3's 1x7), each timed at the profiled batch, precision and memory format.
  A 3x3 conv reaches a very different share of the matmul peak at 64 channels than at 256, so a
  roofline that uses the matmul peak for every conv mispredicts; :func:`conv_ceiling` picks the grid
  point that fits a layer instead.

Results are cached as JSON in ``$ARCHSTAT_CACHE_DIR`` (default ``~/.cache/archstat``), keyed by
device name and torch version, so a second run measures nothing.
"""
from __future__ import annotations

import json
import math
import os
import pathlib
from dataclasses import asdict, dataclass, field
from typing import Optional

import torch
from torch import nn

from archstat.profiling.precision import PRECISIONS, precision_flags
from archstat.errors import is_oom
from archstat.profiling.timing import device_name, environment, stats, time_calls

# (kh, kw, c_in, c_out, stride, in_size): where such a layer lives
CONV_GRID: list[tuple[int, int, int, int, int, int]] = [
    (3, 3, 64, 64, 1, 224), (3, 3, 128, 128, 1, 112), (3, 3, 256, 256, 1, 56),  # VGG blocks 1-3
    (3, 3, 512, 512, 1, 28), (3, 3, 512, 512, 1, 14),                           # VGG blocks 4-5
    (3, 3, 64, 64, 1, 56), (3, 3, 128, 128, 1, 28), (3, 3, 256, 256, 1, 14),    # ResNet stages
    (3, 3, 512, 512, 1, 7), (3, 3, 128, 128, 2, 56), (3, 3, 32, 64, 1, 147),    # strided; Inception stem
    (3, 3, 96, 128, 1, 28), (3, 3, 192, 384, 1, 13),                            # GoogLeNet; AlexNet conv3
    (1, 1, 64, 256, 1, 56), (1, 1, 256, 64, 1, 56), (1, 1, 512, 128, 1, 28),    # bottleneck 1x1s
    (1, 1, 1024, 256, 1, 14), (1, 1, 2048, 512, 1, 7), (1, 1, 512, 2048, 1, 7),
    (1, 1, 192, 64, 1, 28), (1, 1, 832, 256, 1, 7),                             # Inception 1x1 branches
    (5, 5, 16, 32, 1, 28), (5, 5, 64, 192, 1, 27),                              # GoogLeNet 5x5; AlexNet conv2
    (7, 7, 3, 64, 2, 224), (11, 11, 3, 64, 4, 227),                             # stems
    (1, 7, 128, 128, 1, 17), (7, 1, 128, 192, 1, 17),                           # Inception-v3 factorised
]


@dataclass
class Ceilings:
    """Measured ceilings of one device (FLOP/s and bytes/s, all measured, none from a datasheet)."""

    device_name: str
    matmul: dict[str, float] = field(default_factory=dict)  # precision -> FLOP/s
    copy_bw: float = math.nan  # bytes/s, read + write counted
    conv: dict[str, list[dict]] = field(default_factory=dict)  # conv_key(...) -> grid points
    env: dict = field(default_factory=dict)

    def peak(self, precision: str) -> float:
        return self.matmul.get(precision, math.nan)


def conv_key(precision: str, channels_last: bool, batch: int) -> str:
    return f"{precision}/{'channels_last' if channels_last else 'contiguous'}/b{batch}"


def cache_path() -> pathlib.Path:
    root = os.environ.get("ARCHSTAT_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "archstat")
    return pathlib.Path(root) / "ceilings.json"


def _entry_key(device: torch.device, quick: bool) -> str:
    return f"{device_name(device)} | torch {torch.__version__}{' | quick' if quick else ''}"


def _load(path: pathlib.Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _save(path: pathlib.Path, key: str, ceil: Ceilings) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _load(path)
        data[key] = asdict(ceil)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(path)  # atomic: two runs never leave a half-written cache
    except OSError:
        pass  # a read-only home is not an error: the numbers were measured, just not kept


def measure_matmul(device: torch.device, precision: str, n: int, repeat: int = 10) -> float:
    """FLOP/s of an ``n x n @ n x n`` product: ``2 n^3 / median time``."""
    dtype = PRECISIONS[precision]
    with precision_flags(precision):
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        times = time_calls(lambda: torch.mm(a, b), device, warmup=2, repeat=repeat, budget_s=1.0)
    return 2 * n ** 3 / stats(times)["median"]


def measure_copy(device: torch.device, nbytes: int, repeat: int = 10) -> float:
    """Bytes/s of a device-to-device copy, counting the read and the write."""
    src = torch.empty(nbytes, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    times = time_calls(lambda: dst.copy_(src), device, warmup=2, repeat=repeat, budget_s=1.0)
    return 2 * nbytes / stats(times)["median"]


def grid_shapes(quick: bool, device: torch.device) -> list[tuple[int, int, int, int, int, int]]:
    """The calibration grid; scaled down on CPU (spatial / 4) and in quick mode (/ 8, channels / 8)."""
    if not quick and device.type == "cuda":
        return list(CONV_GRID)
    div_s, div_c = (8, 8) if quick else (4, 1)
    return [(kh, kw, ci if ci <= 3 else max(4, ci // div_c), max(4, co // div_c), s, max(kh, kw, s, n // div_s))
            for kh, kw, ci, co, s, n in CONV_GRID]


def measure_conv_grid(device: torch.device, precision: str, channels_last: bool, batch: int,
                      quick: bool = False, repeat: int = 10) -> list[dict]:
    """Achieved FLOP/s (2 per MAC) of each grid convolution at this batch, precision and format."""
    dtype = PRECISIONS[precision]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    points = []
    with precision_flags(precision), torch.inference_mode():
        for kh, kw, ci, co, s, n in grid_shapes(quick, device):
            conv = nn.Conv2d(ci, co, (kh, kw), s, (kh // 2, kw // 2), bias=False).to(device, dtype)
            conv = conv.to(memory_format=fmt)
            point = {"kh": kh, "kw": kw, "c_in": ci, "c_out": co, "stride": s, "in_size": n}
            try:
                x = torch.randn(batch, ci, n, n, device=device, dtype=dtype).to(memory_format=fmt)
                out_hw = conv(x).shape[-2:]
                macs = batch * co * out_hw[0] * out_hw[1] * ci * kh * kw
                t = stats(time_calls(lambda: conv(x), device, warmup=2, repeat=repeat, budget_s=0.3))["median"]
                point.update(out_h=int(out_hw[0]), out_w=int(out_hw[1]), flops=2 * macs, time_s=t,
                             flops_per_s=2 * macs / t)
            except Exception as exc:  # noqa: BLE001 - an OOM grid point is skipped, recorded
                if not is_oom(exc):
                    raise
                point.update(skipped="out of memory")
            finally:
                x = None
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            points.append(point)
    return points


def get_ceilings(device: torch.device, conv_configs: tuple = (), *, quick: bool = False,
                 refresh: bool = False, use_cache: bool = True) -> Ceilings:
    """Ceilings of ``device``, from the cache when present; measures and stores what is missing.

    ``conv_configs``: ``(precision, channels_last, batch)`` triples whose conv grid is wanted.
    """
    path, key = cache_path(), _entry_key(device, quick)
    cached = _load(path).get(key) if use_cache and not refresh else None
    known = Ceilings.__dataclass_fields__
    ceil = (Ceilings(**{k: v for k, v in cached.items() if k in known}) if cached
            else Ceilings(device_name(device), env=environment(device)))
    changed = False
    n = (256 if quick else 8192) if device.type == "cuda" else (128 if quick else 512)
    for precision in PRECISIONS:
        if precision not in ceil.matmul:
            ceil.matmul[precision] = measure_matmul(device, precision, n, repeat=3 if quick else 10)
            changed = True
    if not math.isfinite(ceil.copy_bw):
        size = (1 << 30 if not quick else 1 << 24) if device.type == "cuda" else (1 << 22 if quick else 1 << 26)
        ceil.copy_bw = measure_copy(device, size, repeat=3 if quick else 10)
        changed = True
    for precision, channels_last, batch in conv_configs:
        ck = conv_key(precision, channels_last, batch)
        if ck not in ceil.conv:
            ceil.conv[ck] = measure_conv_grid(device, precision, channels_last, batch, quick, repeat=2 if quick else 10)
            changed = True
    if changed and use_cache:
        _save(path, key, ceil)
    return ceil


def conv_ceiling(points: list[dict], kh: int, kw: int, c_in: int, c_out: int, out_hw: int
                 ) -> tuple[float, Optional[dict]]:
    """FLOP/s of the grid point that fits a conv layer best, and that point.

    Same kernel shape if the grid has it (else the nearest kernel area), then the nearest channel
    widths and output size on a log2 scale: ``d = dlog(c_in)^2 + dlog(c_out)^2 + dlog(H_out*W_out)^2 / 4``
    (``c_in`` per group).  Spatial size weighs less: at a fixed batch it moves efficiency less than width.
    """
    ok = [p for p in points if "flops_per_s" in p]
    if not ok:
        return math.nan, None
    same = [p for p in ok if (p["kh"], p["kw"]) == (kh, kw)]
    if not same:
        area = min(abs(math.log2(p["kh"] * p["kw"]) - math.log2(kh * kw)) for p in ok)
        same = [p for p in ok if abs(math.log2(p["kh"] * p["kw"]) - math.log2(kh * kw)) == area]

    def dist(p: dict) -> float:
        lg = math.log2
        return ((lg(p["c_in"]) - lg(max(c_in, 1))) ** 2 + (lg(p["c_out"]) - lg(max(c_out, 1))) ** 2
                + (lg(p["out_h"] * p["out_w"]) - lg(max(out_hw, 1))) ** 2 / 4)

    best = min(same, key=dist)
    return best["flops_per_s"], best
