"""Measured timings and memory, joined to the symbolic table by its ``(name, op, call)`` key.

``profile(model, input_shape, batch=, device=, precision=, channels_last=, train=)`` returns a
:class:`Profile` of DataFrames:

* ``runs``: one row per phase (``forward``, and ``train`` with ``train=True``): median, min, max,
  IQR and CV of the latency over ``repeat`` calls after ``warmup`` (CUDA events on GPU, perf_counter
  on CPU, ``cudnn.benchmark`` on), images/s, the allocator's peak memory, achieved FLOP/s
  (hardware FLOPs / median) and its share of the measured matmul peak of the precision.  Peak
  memory is the CUDA allocator's; on CPU, which keeps no statistics, weights + input + the live
  activations a dispatch-level tracker counts during one eager forward.  The share
  can pass 100%: FLOPs are counted as 2 per MAC, and Winograd or FFT convolutions multiply less.
* ``layers``: analyze()'s rows plus each op call's measured time (see ``layer_timing``), its share,
  hardware FLOPs, bytes moved and the roofline columns (see ``roofline``).
* ``summary``: per-layer sum against the whole-model time (measured between the instrumented passes),
  roofline error statistics, training memory against the symbolic estimate.  ``context``: device, card,
  versions, date, the TF32 flags, the machine's pace while the layers were timed (``host_pace``, probe
  seconds; with a time model; on a CPU a calibration ``profile`` loads from its cache is re-read at it,
  ``TimeModel.reread``, and ``context["ceilings"]["time_model"]["applied_pace"]`` says by how much).

The caller's model is never changed: conversion (device, dtype, memory format) and the training
step work on copies.  An out-of-memory batch is a one-line ArchstatError naming the batch.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import pandas as pd
import torch
from torch import nn

from archstat.engine.analyze import analyze_rows
from archstat.engine.inputs import several_text
from archstat.engine.rows import Rows
from archstat.engine.conventions import counter
from archstat.errors import ArchstatError
from archstat.analyses.live_memory import inference_peak
from archstat.profiling.calibrate import MEASURED_NOW, get_time_model
from archstat.profiling.ceilings import Ceilings, defend, get_ceilings
from archstat.profiling.fresh_pages import steady_heap
from archstat.profiling.host_pace import between, read_pace
from archstat.profiling.layer_timing import bytes_moved, interleaved, trace_records
from archstat.profiling.precision import check_precision, precision_flags
from archstat.profiling.profile_inputs import make_inputs, profile_inputs
from archstat.profiling.profile_train import train_memory_estimate, train_step_fn
from archstat.profiling.roofline import roofline, roofline_summary
from archstat.progress import Stages
from archstat.profiling.timing import environment, oom_guard, peak_bytes, reset_peak, stats, time_calls
from archstat.device import resolve_device
from archstat.engine.trace import training_mode
from archstat.validation.fits import free_memory, state_bytes
from archstat.validation.live_storages import eager_peak

DEFAULTS = {"cuda": {"warmup": 10, "repeat": 50, "layer_repeat": 10},
            "cpu": {"warmup": 2, "repeat": 5, "layer_repeat": 3}}
TIMING_METHOD = {"cuda": "CUDA events per call on the stream, one synchronize at the end",
                 "cpu": "time.perf_counter per call (synchronous)"}


@dataclass
class Profile:
    runs: pd.DataFrame
    layers: pd.DataFrame
    summary: dict = field(default_factory=dict)
    context: dict = field(default_factory=dict)


def prepare(model: nn.Module, device: torch.device, dtype: torch.dtype, channels_last: bool) -> nn.Module:
    """The model on ``device`` in ``dtype`` (and channels-last), copied if anything must change."""
    tensors = list(model.parameters()) + list(model.buffers())
    if any(t.is_meta for t in tensors):
        raise ArchstatError("the model is on the meta device: profile needs real weights (build it on cpu or cuda)")
    fp = [t for t in tensors if t.is_floating_point()]
    same = all(t.device.type == device.type and t.dtype == dtype for t in fp) and not channels_last
    if same:
        return model
    out = copy.deepcopy(model).to(device=device, dtype=dtype)
    return out.to(memory_format=torch.channels_last) if channels_last else out


def _run_row(phase: str, times: list[float], batch: int, flops: float, peak: Optional[int],
             baseline: Optional[int], ceil: Optional[Ceilings], precision: str) -> dict[str, Any]:
    s = stats(times)
    achieved = flops / s["median"] if s["median"] > 0 else math.nan
    top = ceil.peak(precision) if ceil else math.nan
    return {"phase": phase, "batch": batch, "repeats": s["n"], "median_s": s["median"], "min_s": s["min"],
            "max_s": s["max"], "iqr_s": s["iqr"], "cv": s["cv"], "images_per_s": batch / s["median"],
            "peak_mem_bytes": peak, "baseline_mem_bytes": baseline, "flops_hardware": flops,
            "achieved_flops_per_s": achieved, "peak_flops_per_s": top,
            "peak_share": achieved / top if top and math.isfinite(top) else math.nan}


def _layer_frame(df: pd.DataFrame, records: list, wbytes: list[int], passes: Optional[list[list[float]]]) -> pd.DataFrame:
    hw = counter("hardware")
    out = df.copy()
    out["flops_hardware"] = [int(hw(r.cost, r.inputs)[0]) if r.supported else 0 for r in records]
    out["bytes_moved"] = [bytes_moved(r, wb) for r, wb in zip(records, wbytes)]
    if passes:
        per_row = list(zip(*passes))
        st = [stats(list(ts)) for ts in per_row]
        out["time_s"] = [s["median"] for s in st]
        out["time_min_s"] = [s["min"] for s in st]
        out["time_iqr_s"] = [s["iqr"] for s in st]
        total = float(out["time_s"].sum())
        out["time_share"] = out["time_s"] / total if total > 0 else math.nan
        out["achieved_flops_per_s"] = [f / t if t > 0 else math.nan for f, t in zip(out["flops_hardware"], out["time_s"])]
    return out


def profile(model: nn.Module, input_shape: Optional[Sequence[int]] = None, *, batch: int = 1,
            device: str | torch.device = "cpu", precision: str = "fp32", channels_last: bool = False,
            warmup: Optional[int] = None, repeat: Optional[int] = None, layer_repeat: Optional[int] = None,
            train: bool = False, layers: bool = True, ceilings: Ceilings | bool = True, quick: bool = False,
            time_budget_s: Optional[float] = None, refresh_ceilings: bool = False, time_model: Any = True,
            quiet: Optional[bool] = None, inputs: Optional[Sequence[Any]] = None,
            kwargs: Optional[dict] = None) -> Profile:
    """Time ``model`` on ``batch`` random inputs of ``input_shape`` (per sample) and join the results
    to ``analyze()``'s rows.  A model with several inputs takes ``inputs`` / ``kwargs`` as
    :func:`archstat.engine.analyze.analyze_rows` does; every timed call feeds all of them.

    ``ceilings``: True measures (or loads from cache) the device ceilings and adds the roofline;
    a :class:`Ceilings` is used as given; False skips both.  ``quick`` shrinks the calibration
    (tests, dry runs).  ``time_budget_s`` caps the whole-model and training-step loops (the repeat count is
    cut to fit); the ``layer_repeat`` instrumented passes, each after one more whole-model call, are not cut.
    ``time_model``: True calibrates (or loads) the per-family time model for per-layer runs with
    ceilings, and on a CPU re-reads a calibration loaded from the cache at the machine's pace while the
    layers ran (``host_pace``); a ``TimeModel`` is used as given; False predicts with the naive roofline only.
    ``refresh_ceilings`` measures the ceilings and the time model again; ``quiet`` silences the
    progress bar (None: shown when stderr is a terminal).

    On a CPU with glibc every timing runs under ``fresh_pages.steady_heap`` (no heap trimming while
    measuring), and the process keeps glibc's steady-state malloc thresholds afterwards (mmap at
    32 MiB, trim at 64 MiB), the values a long-running process reaches by itself.
    """
    dev, dtype = resolve_device(device), check_precision(precision)
    given = profile_inputs(model, input_shape, inputs, kwargs, batch)
    warmup, repeat, layer_repeat = _counts(dev, warmup, repeat, layer_repeat)
    net = prepare(model, dev, dtype, channels_last)
    rows = analyze_rows(net, batch=batch, dtype=dtype, **given)  # the one trace: table, records and nodes
    batch = rows.batch
    df = rows.df
    graph, records, nodes, wbytes = trace_records(rows)
    memory = free_memory(dev)
    if memory is not None:
        check_fits(df, batch, *memory)
    ceil, tmodel, cached_model = _ceilings_and_model(ceilings, time_model if layers else False, dev, precision,
                                                     channels_last, quick, refresh_ceilings, quiet)
    stages = Stages(2 + int(layers) + int(train), quiet)
    flops = float(sum(int(counter("hardware")(r.cost, r.inputs)[0]) for r in records if r.supported))
    context = {**environment(dev), "precision": precision, "dtype": str(dtype).replace("torch.", ""),
               "channels_last": channels_last, "batch": batch, "input": list(rows.input_shape),
               **({"inputs": several_text(rows.df.attrs["inputs"])} if several_text(rows.df.attrs["inputs"]) else {}),
               "warmup": warmup,
               "repeat": repeat, "layer_repeat": layer_repeat if layers else 0, "timing": TIMING_METHOD[dev.type],
               "model": type(model).__name__,
               # ops without a formula: their FLOPs are unknown, so every FLOP figure below is a lower bound
               **({"unsupported": list(df.attrs["unsupported"])} if df.attrs.get("unsupported") else {})}
    runs, passes = [], None
    with precision_flags(precision) as flags, steady_heap(dev) as pinned:
        context.update(flags)
        if pinned:  # every timing below runs with glibc's heap pinned (fresh_pages.steady_heap)
            context["heap"] = "glibc steady state: mmap threshold 32 MiB, no trimming"
        feed = make_inputs(rows, dev, channels_last)
        stages.next(f"timing the whole model ({warmup} warm-up + {repeat} calls)")
        runs.append(_forward(net, df, feed, batch, dev, warmup, repeat, time_budget_s, flops, ceil, precision))
        if ceil is not None:  # a run faster than its ceiling: measure the ceiling again (if ours), or say so
            ceil, context["ceiling_check"] = defend(ceil, runs[0]["achieved_flops_per_s"], dev, precision,
                                                    "the whole model", quick=quick, quiet=quiet,
                                                    remeasure=ceilings is True)
            runs[0]["peak_flops_per_s"] = ceil.peak(precision)
            runs[0]["peak_share"] = runs[0]["achieved_flops_per_s"] / ceil.peak(precision)
        if layers:
            stages.next(f"timing every op call ({layer_repeat} instrumented passes, each after a whole-model call)")
            # the machine's pace before and after (host_pace); on a CPU a calibration profile loaded from its
            # cache (measured at another hour of a shared host) is re-read at it: predicting one run's layers
            # from another run's calibration, the mean of the ten medians of bench/roofline_accuracy.py fell
            # from 28.8% to 20.3% over six such pairs (docs/measured.md); one measured just now, or passed in
            # (the bench's), is used as built: calibrated in the same minutes, it read worse re-read so
            pace0 = read_pace(dev, dtype) if tmodel is not None else None
            with oom_guard(batch, dev, "per-layer pass"), training_mode(net, False):
                passes, whole_s = interleaved(net, graph, nodes, feed[0], dev, warmup=1, repeat=layer_repeat,
                                              kwargs=feed[1], whole=lambda: net(*feed[0], **feed[1]))
            if pace0 is not None:
                context["host_pace"] = between(pace0, read_pace(dev, dtype))
                if cached_model and dev.type == "cpu":
                    tmodel = tmodel.reread(context["host_pace"])
        feed = None  # free the inputs before the training step allocates its own
        summary: dict[str, Any] = {}
        if train:
            stages.next(f"timing a training step ({repeat} calls)")
            runs.append(_train(net, rows, dev, channels_last, warmup, repeat, time_budget_s,
                               flops, ceil, precision, summary))
    stages.close()
    frame = _layer_frame(df, records, wbytes, passes)
    if passes:
        frame = _summarize(frame, passes, stats(whole_s)["median"], ceil, precision, batch, dtype.itemsize, tmodel,
                           summary)
    if ceil is not None:
        context["ceilings"] = {"device_name": ceil.device_name, "matmul_flops_per_s": ceil.matmul,
                               "copy_bytes_per_s": ceil.copy_bw, "measured": ceil.state,
                               "time_model": tmodel.describe() if tmodel is not None else None}
    frame.attrs.update(df.attrs)
    return Profile(runs=pd.DataFrame(runs), layers=frame, summary=summary, context=context)


def _summarize(frame: pd.DataFrame, passes: list[list[float]], whole: float, ceil: Optional[Ceilings],
               precision: str, batch: int, itemsize: int, tmodel: Any, summary: dict) -> pd.DataFrame:
    """Per-layer times against ``whole``, the median of the whole-model calls made between the
    instrumented passes (``layer_timing.interleaved``), and the roofline where there are ceilings."""
    totals = [sum(p) for p in passes]
    # sum of the per-row medians (what the table shows) and the median of whole passes (less
    # sensitive to one-off stalls): both against the whole-model median of the same stretch of time
    summary.update({"layer_sum_s": float(frame["time_s"].sum()), "layer_pass_median_s": stats(totals)["median"],
                    "whole_model_s": whole, "layer_sum_ratio": float(frame["time_s"].sum()) / whole,
                    "layer_pass_ratio": stats(totals)["median"] / whole})
    if ceil is not None:
        frame = roofline(frame, ceil, precision, batch, itemsize, tmodel)
        summary["roofline"] = roofline_summary(frame)
    return frame


def _forward(net: nn.Module, df: pd.DataFrame, feed: tuple[list, dict], batch: int, dev: torch.device, warmup: int,
             repeat: int, budget: Optional[float], flops: float, ceil: Optional[Ceilings], precision: str) -> dict:
    """Time the whole forward pass on every input (``feed``: args, kwargs) in inference mode; its peak
    memory, next to the estimate."""
    args, kwargs = feed
    with oom_guard(batch, dev, "forward"), training_mode(net, False), torch.inference_mode():
        reset_peak(dev)
        base = int(torch.cuda.memory_allocated(dev)) if dev.type == "cuda" else None
        times = time_calls(lambda: net(*args, **kwargs), dev, warmup, repeat, budget)
        peak, source = peak_bytes(dev), "CUDA caching allocator (max_memory_allocated)"
        if peak is None:  # CPU: no allocator statistics; count live storages at the dispatch level
            peak = state_bytes(net) + sum(t.nbytes for t in [*args, *kwargs.values()]) + eager_peak(net, args, kwargs)
            source = "weights + input + live activations tracked at the dispatch level (eager forward)"
        row = _run_row("forward", times, batch, flops, peak, base, ceil, precision)
    row.update({"peak_mem_source": source, **_forward_memory_estimate(net, df, peak)})
    return row


def _counts(dev: torch.device, warmup: Optional[int], repeat: Optional[int],
            layer_repeat: Optional[int]) -> tuple[int, int, int]:
    """The device's default counts where none is given, each checked."""
    d = DEFAULTS[dev.type]
    warmup = d["warmup"] if warmup is None else warmup
    repeat = d["repeat"] if repeat is None else repeat
    layer_repeat = d["layer_repeat"] if layer_repeat is None else layer_repeat
    check_counts(warmup, repeat, layer_repeat)
    return warmup, repeat, layer_repeat


def check_counts(warmup: object, repeat: object, layer_repeat: object) -> None:
    """warm-up >= 0, repeat >= 1, layer_repeat >= 1, all integers: else a one-line ArchstatError."""
    for name, value, low in (("warmup", warmup, 0), ("repeat", repeat, 1), ("layer_repeat", layer_repeat, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ArchstatError(f"{name} must be an integer >= {low}, got {value!r}")


def _ceilings_and_model(ceilings: Ceilings | bool, time_model: Any, dev: torch.device, precision: str,
                        channels_last: bool, quick: bool, refresh: bool, quiet: Optional[bool]) -> tuple:
    """The ceilings and the calibrated time model, each measured, cached or given (or None), and whether the
    model is a calibration from the cache (measured at another time: ``profile`` re-reads it at the pace)."""
    if ceilings is False:
        return None, None, False
    ceil = ceilings if isinstance(ceilings, Ceilings) else get_ceilings(dev, (precision,), quick=quick,
                                                                        refresh=refresh, quiet=quiet)
    cached = False
    if time_model is True:
        time_model, entry = get_time_model(dev, precision, channels_last, quick=quick, refresh=refresh, quiet=quiet)
        cached = not entry.get(MEASURED_NOW)
    return ceil, time_model or None, cached


def check_fits(df: pd.DataFrame, batch: int, free: int, total: int) -> None:
    """Refuse, before running anything, a batch whose activations alone cannot fit in ``free`` bytes.

    The floor of the inference peak (``archstat.analyses.live_memory`` without the ops' internal
    temporaries) is what this op order needs whatever the device and mode; an eager forward needs
    that or more, so a batch above it would only end in an out-of-memory error.  The suggested
    batch scales the peak linearly (activations are proportional to the batch).
    """
    live = inference_peak(df, transients=False)
    if live is None or live["peak_bytes"] <= free:
        return
    per_image = live["peak_bytes"] / batch
    fits = int(free // per_image) if per_image > 0 else 0
    hint = f"try --batch {1 << (fits.bit_length() - 1)}" if fits >= 1 else "not even batch 1 fits; try a smaller --input"
    raise ArchstatError(f"batch {batch} needs at least {live['peak_bytes'] / 2 ** 30:.2f} GiB of activations "
                        f"(inference peak, at {live['peak_name']}), but {free / 2 ** 30:.2f} of {total / 2 ** 30:.2f} "
                        f"GiB are free; {hint}")


def _forward_memory_estimate(net: nn.Module, df: pd.DataFrame, measured: Optional[int]) -> dict[str, Any]:
    """Weights and buffers plus the inference peak of live activations (``archstat.analyses.live_memory``),
    next to the allocator's peak of the timed forward passes."""
    live = inference_peak(df)
    if live is None:
        return {"memory_estimate_bytes": None, "memory_estimate_note": "no inference-peak estimate"}
    estimate = state_bytes(net) + live["peak_bytes"]
    return {"memory_estimate_bytes": estimate,
            "memory_estimate_note": f"weights and buffers + live activations at {live['peak_name']} (fx schedule; "
                                    "an eager forward's locals and cuDNN workspaces come on top)",
            "memory_error": (measured - estimate) / estimate if measured else math.nan}


def _train(net: nn.Module, rows: Rows, dev: torch.device, channels_last: bool,
           warmup: int, repeat: int, budget: Optional[float], fwd_flops: float, ceil: Optional[Ceilings],
           precision: str, summary: dict) -> dict:
    """Time a full training step (forward, loss, backward, SGD-momentum step) on a copy of the model."""
    batch = rows.batch
    with oom_guard(batch, dev, "training step"):
        model = copy.deepcopy(net).train()
        args, kwargs = make_inputs(rows, dev, channels_last)
        step = train_step_fn(model, args, batch, kwargs)
        for _ in range(max(warmup, 1)):  # the first step allocates the momentum buffers
            step()
        reset_peak(dev)
        base = int(torch.cuda.memory_allocated(dev)) if dev.type == "cuda" else None
        times = time_calls(step, dev, 0, repeat, budget)
        peak = peak_bytes(dev)
    # backward ~ 2x forward for conv/linear (grad-input + grad-weight): an estimate, labelled as one
    row = _run_row("train", times, batch, 3 * fwd_flops, peak, base, ceil, precision)
    estimate, note = train_memory_estimate(net, rows)
    row.update({"flops_note": "3 x forward hardware FLOPs (backward ~ 2 x forward)",
                "memory_estimate_bytes": estimate, "memory_estimate_note": note,
                "memory_error": (peak - estimate) / estimate if peak and estimate else math.nan})
    summary["train_memory"] = {"measured_peak_bytes": peak, "estimate_bytes": estimate, "note": note}
    del model, args, kwargs
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return row
