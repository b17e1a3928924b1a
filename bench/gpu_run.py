"""The one GPU script (issue 5): validate, profile, roofline and the torchvision comparison, zoo-wide.

    python bench/gpu_run.py --out "$OUT"                 # on the lent H100 (see bench/gpu_run.sh)
    python bench/gpu_run.py --dry-run --out /tmp/gpu     # the same code on CPU, tiny models and inputs

Order: device ceilings (matmul per dtype, copy bandwidth, conv grids), then the models in priority
order (alexnet, vgg16, googlenet_bn, resnet18, resnet50, resnet152, inception_v3, then the rest of
list_models()).  Per model, most important first: forward at batch 64 with per-layer times and the
roofline in tf32 and in bf16 channels-last; batch 1 in both; torchvision (state_dict strict, outputs,
latency, same settings, same run); validate on the GPU; a training step for a few models.  Every
model has a time budget and the whole run a deadline (default 200 s after start-up): what does not
fit is skipped with the reason.  Results are written after every step, so a timeout leaves data.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time
import traceback
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from gpu_report import Writer  # noqa: E402
from gpu_steps import machine, torchvision_step, validate_step  # noqa: E402

PRIORITY = ["alexnet", "vgg16", "googlenet_bn", "resnet18", "resnet50", "resnet152", "inception_v3"]
TRAIN_MODELS = ["alexnet", "resnet18", "resnet50", "vgg16"]
CONFIGS = [("tf32", False), ("bf16", True)]  # (precision, channels_last)


def plan(args: argparse.Namespace) -> dict[str, Any]:
    from archstat.models import list_models

    if args.dry_run:
        return {"device": "cpu", "quick": True, "models": args.models or ["alexnet", "resnet18", "googlenet_bn"],
                "batches": (1, 4), "warmup": 1, "repeat": 3, "layer_repeat": 2, "loop_s": 0.5,
                "budget_priority": 60.0, "budget_other": 30.0, "small_input": True, "train_models": ["resnet18"],
                "validate_batch": 2, "accuracy_models": ["mobilenet_dw"], "accuracy_batches": (2,),
                "accuracy_precision": "fp32", "accuracy_min_s": 5.0}
    names = list_models()
    order = args.models or [m for m in PRIORITY if m in names] + [m for m in names if m not in PRIORITY]
    return {"device": "cuda", "quick": False, "models": order, "batches": (1, 64), "warmup": 5, "repeat": 50,
            "layer_repeat": 10, "loop_s": 1.5, "budget_priority": 24.0, "budget_other": 8.0, "small_input": False,
            "train_models": TRAIN_MODELS, "validate_batch": 2, "accuracy_precision": "tf32", "accuracy_min_s": 30.0,
            "accuracy_models": ["resnet50", "vgg16", "googlenet", "inception_v3", "mobilenet_dw"],
            "accuracy_batches": (64, 8, 1)}


def input_for(name: str, small: bool) -> tuple[int, ...]:
    from archstat.models import model_info

    info = model_info(name)
    if not small:
        return tuple(info.default_input)
    c, h, w = info.min_input
    return (c, max(h, 32), max(w, 32))


class Clock:
    def __init__(self, budget_s: float) -> None:
        self.t0, self.budget = time.monotonic(), budget_s

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def left(self) -> float:
        return self.budget - self.elapsed()


def run_model(name: str, p: dict, clock: Clock, w: Writer, ceil: Any, reserve_s: float) -> None:
    from archstat.models import get_model, model_info
    from archstat.profiling.profile import profile

    dev = torch.device(p["device"])
    shape = input_for(name, p["small_input"])
    small, large = p["batches"]
    budget = p["budget_priority"] if name in PRIORITY else p["budget_other"]
    deadline = min(clock.elapsed() + budget, clock.budget - reserve_s)
    info = model_info(name)
    w.start_model(name, shape, budget)

    def step(label: str, fn: Callable[[], Any]) -> None:
        if clock.elapsed() >= deadline:
            w.skip(name, label, "model time budget spent" if clock.left() > reserve_s else "run deadline reached")
            return
        t = time.monotonic()
        try:
            w.step(name, label, fn(), time.monotonic() - t)
        except Exception as exc:  # noqa: BLE001 - one failing step never stops the sweep
            w.fail(name, label, exc, traceback.format_exc(), time.monotonic() - t)
        finally:
            if dev.type == "cuda":
                torch.cuda.empty_cache()

    model = get_model(name, device=dev)

    def prof(precision: str, cl: bool, batch: int, layers: bool, train: bool = False) -> Any:
        return profile(model, shape, batch=batch, device=dev, precision=precision, channels_last=cl,
                       warmup=p["warmup"], repeat=p["repeat"], layer_repeat=p["layer_repeat"], layers=layers,
                       train=train, ceilings=ceil if ceil is not None else False, quick=p["quick"],
                       time_budget_s=p["loop_s"], time_model=False, quiet=True)  # calibrated: accuracy_step

    for precision, cl in CONFIGS:
        step(f"profile {precision}{' cl' if cl else ''} b{large}", lambda: prof(precision, cl, large, True))
    for precision, cl in CONFIGS:
        step(f"profile {precision}{' cl' if cl else ''} b{small}", lambda: prof(precision, cl, small, False))
    if info.torchvision_name:
        step("torchvision", lambda: torchvision_step(
            name, info.torchvision_name, lambda: get_model(name), shape, dev,
            [(pr, cl, large) for pr, cl in CONFIGS], p["warmup"], p["repeat"], 2 * p["loop_s"]))
    else:
        w.skip(name, "torchvision", "no torchvision counterpart with the same state_dict layout")
    if name in PRIORITY or p["device"] == "cpu":
        step("validate", lambda: validate_step(name, p["device"], p["validate_batch"], shape))
        step("validate train", lambda: validate_step(name, p["device"], p["validate_batch"], shape, mode="train"))
    if name in p["train_models"]:
        step(f"train tf32 b{large}", lambda: prof("tf32", False, large, False, train=True))
    model = None  # frees the weights before the next model is built (the closures above are done)


def accuracy_step(p: dict, w: Writer, clock: Clock, reserve_s: float) -> None:
    """bench/roofline_accuracy.py in the same call: calibrated time model vs naive roofline, CUDA events."""
    import roofline_accuracy

    if clock.left() <= reserve_s + p["accuracy_min_s"]:
        w.skip("", "roofline accuracy", "run deadline reached")
        return
    t = time.monotonic()
    try:
        rows, text = roofline_accuracy.run(torch.device(p["device"]), p["accuracy_models"], list(p["accuracy_batches"]),
                                           p["accuracy_precision"], small=p["small_input"], quick=p["quick"],
                                           repeat=p["repeat"] // 2 or 1, layer_repeat=p["layer_repeat"],
                                           out=pathlib.Path(w.out) / "roofline_accuracy.md",
                                           command="bash bench/gpu_run.sh (accuracy_step)",
                                           deadline_s=max(clock.left() - reserve_s, 1.0))
        w.results["roofline_accuracy"] = rows
        w.log(text)
        w.log(f"roofline accuracy: {time.monotonic() - t:.1f} s")
    except Exception as exc:  # noqa: BLE001 - the sweep goes on without it
        w.fail("", "roofline accuracy", exc, traceback.format_exc(), time.monotonic() - t)
    w.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "gpu_out"), help="results folder (default $OUT)")
    ap.add_argument("--budget", type=float, default=200.0, help="seconds for the whole sweep after start-up")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny inputs, few models, quick calibration")
    ap.add_argument("--models", type=lambda s: [m for m in s.split(",") if m], default=None)
    args = ap.parse_args(argv)
    p = plan(args)
    if p["device"] == "cuda" and not torch.cuda.is_available():
        print("gpu_run: CUDA is not available here; use --dry-run on CPU", file=sys.stderr)
        return 2
    if p["device"] == "cpu":
        torch.set_num_threads(1)  # a dry run checks code paths; one thread keeps it quick on a busy CI box
    clock = Clock(args.budget)
    dev = torch.device(p["device"])
    w = Writer(args.out, machine(dev), p, args.budget)
    reserve_s = min(15.0, args.budget / 10)
    ceil = None
    try:
        from archstat.profiling.ceilings import get_ceilings

        t = time.monotonic()
        ceil = get_ceilings(dev, tuple(dict.fromkeys(["fp32", p["accuracy_precision"]] + [pr for pr, _ in CONFIGS])),
                            quick=p["quick"], refresh=True, quiet=True)
        w.ceilings(ceil, time.monotonic() - t)
    except Exception as exc:  # noqa: BLE001 - without ceilings the profiles still run, roofline-free
        w.fail("", "ceilings", exc, traceback.format_exc(), 0.0)
    accuracy_done = False
    for name in p["models"]:
        if name not in PRIORITY and not accuracy_done:  # after the priority models, before the rest
            accuracy_step(p, w, clock, reserve_s)
            accuracy_done = True
        if clock.left() <= reserve_s:
            w.skip(name, "all", "run deadline reached")
            continue
        try:
            run_model(name, p, clock, w, ceil, reserve_s)
        except Exception as exc:  # noqa: BLE001 - e.g. the model does not build
            w.fail(name, "build", exc, traceback.format_exc(), 0.0)
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    if not accuracy_done:
        accuracy_step(p, w, clock, reserve_s)
    w.finish(clock.elapsed())
    print(w.short_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
