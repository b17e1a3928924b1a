"""archstat.analyze against fvcore's FlopCountAnalysis on the same architecture, in one run.

    python bench/bench_analyze.py [MODEL ...]      (default: resnet152, the deepest zoo model)

archstat analyses a model built on the meta device (no weight memory: the peak traced Python
allocation is printed); fvcore needs real weights and a real forward pass.  Prints the median
of several runs for each and the speed ratio.  Run it on an idle machine: fvcore's real forward
pass slows down far more than archstat under CPU contention, which inflates the ratio (a loaded
2-core box once gave 39x on ResNet-152; idle, it is about 8x, half of it torch.fx's tracing).
"""
from __future__ import annotations

import logging
import statistics
import sys
import time
import tracemalloc

import torch

import archstat
from archstat.models import get_model, list_models, model_info


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(name: str, repeat: int = 5) -> None:
    from fvcore.nn import FlopCountAnalysis

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    shape = model_info(name).default_input
    meta_model = get_model(name, device="meta")
    real_model = get_model(name).eval()
    x = torch.zeros(1, *shape)

    def ours():
        return archstat.analyze(meta_model, shape, convention="fvcore").attrs["total"]["flops"]

    def theirs():
        fv = FlopCountAnalysis(real_model, x)
        fv.unsupported_ops_warnings(False)
        fv.uncalled_modules_warnings(False)
        return fv.total()

    ours(), theirs()  # warm-up (imports, caches)
    tracemalloc.start()
    ours()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    t_ours, t_fv = median_time(ours, repeat), median_time(theirs, repeat)
    weights = sum(p.numel() * p.element_size() for p in real_model.parameters())
    print(f"{name:<14} archstat {t_ours * 1e3:8.1f} ms   fvcore {t_fv * 1e3:8.1f} ms   "
          f"ratio {t_fv / t_ours:6.1f}x   flops equal: {ours() == theirs()}   "
          f"archstat peak Python alloc {peak / 2**20:.1f} MiB vs weights {weights / 2**20:.0f} MiB")


if __name__ == "__main__":
    torch.set_num_threads(2)
    names = sys.argv[1:] or [n for n in ("resnet152", "alexnet") if n in list_models()][:1]
    for n in names:
        bench(n)
