"""Steps of the GPU script that are not `archstat.profiling.profile` itself: environment, validate, torchvision.

Each step returns a plain dict for results.json and never raises for a model-level problem: the
script records the reason and goes on to the next step.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import subprocess
import sys
from typing import Any, Callable

import torch

from archstat.errors import first_line
from archstat.profiling.precision import PRECISIONS, precision_flags
from archstat.profiling.timing import environment, stats, time_calls


def machine(device: torch.device) -> dict[str, Any]:
    """Card, driver, versions, date: recorded once, next to every number."""
    env = dict(environment(device))
    env["python"] = sys.version.split()[0]
    try:
        import torchvision  # noqa: F401

        env["torchvision"] = torchvision.__version__
    except ImportError:
        env["torchvision"] = None
    if device.type == "cuda":
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                                  "--format=csv,noheader"], capture_output=True, text=True, timeout=15)
            env["nvidia_smi"] = out.stdout.strip()
            env["driver"] = out.stdout.split(",")[1].strip() if out.returncode == 0 and "," in out.stdout else None
        except (OSError, subprocess.SubprocessError) as exc:
            env["driver"] = None
            env["nvidia_smi"] = f"unavailable: {exc}"
    return env


def validate_step(name: str, device: str, batch: int, shape: tuple, mode: str = "eval") -> dict[str, Any]:
    """`archstat validate NAME --device DEVICE --mode MODE` in process, through the CLI's stable contract.

    Exit 0 means every check agrees on the device: shapes, params, bytes, FLOPs, and live bytes
    (eval) or the bytes saved for backward and the backward FLOPs (train; on CUDA dropout keeps
    a bool mask, not the CPU's float one).
    """
    from archstat.cli import main

    argv = ["validate", name, "--device", device, "--mode", mode, "--batch", str(batch),
            "--input", "x".join(map(str, shape)), "--format", "json"]
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(argv)
    except SystemExit as exc:  # argparse usage errors
        rc = int(exc.code or 0)
    text = out.getvalue()
    try:
        report: Any = json.loads(text)
    except ValueError:
        report = text[-4000:]
    return {"status": "pass" if rc == 0 else "fail", "exit_code": rc, "argv": argv, "stderr": err.getvalue()[-2000:],
            "report": report}


def torchvision_step(name: str, tv_name: str, build_ours: Callable[[], torch.nn.Module], shape: tuple,
                     device: torch.device, configs: list[tuple[str, bool, int]], warmup: int, repeat: int,
                     budget_s: float) -> dict[str, Any]:
    """torchvision's random-init state_dict loaded into our model (strict), outputs compared, both timed.

    Timing alternates ours / torchvision in three rounds per configuration so that clock drift and
    thermal state hit both alike; the ratio is of the pooled medians.
    """
    try:
        tvm_mod = importlib.import_module("torchvision.models")
    except ImportError:
        return {"status": "skipped", "reason": "torchvision not installed on this machine"}
    from archstat.profiling.profile import prepare
    from archstat.profiling.profile_inputs import make_input

    res: dict[str, Any] = {"status": "ok", "torchvision_name": tv_name}
    torch.manual_seed(0)
    with torch.device(device):
        theirs = getattr(tvm_mod, tv_name)(weights=None).eval()
        ours = build_ours().eval()
    try:
        ours.load_state_dict(theirs.state_dict(), strict=True)
        res["state_dict_strict"] = True
    except RuntimeError as exc:
        res["state_dict_strict"] = False
        res["state_dict_error"] = str(exc)[:2000]
    with precision_flags("fp32", benchmark=False), torch.inference_mode():  # strict fp32: comparable outputs
        x = torch.randn(2, *shape, device=device)
        a, b = ours(x), theirs(x)
        res["max_abs_diff"] = float((a - b).abs().max())
        res["max_abs_out"] = float(b.abs().max())
        res["bitwise_equal"] = bool(torch.equal(a, b))
        res["outputs_match"] = bool(torch.allclose(a, b, rtol=1e-4, atol=1e-5))
    res["timing"] = []
    for precision, channels_last, batch in configs:
        row: dict[str, Any] = {"precision": precision, "channels_last": channels_last, "batch": batch}
        try:
            dtype = PRECISIONS[precision]
            m_o, m_t = prepare(ours, device, dtype, channels_last), prepare(theirs, device, dtype, channels_last)
            with precision_flags(precision) as flags, torch.inference_mode():
                row.update(flags)
                xb = make_input(shape, batch, device, dtype, channels_last)
                t_o: list[float] = []
                t_t: list[float] = []
                for r in range(3):  # full warm-up (cudnn.benchmark picks algorithms) only in round one
                    t_o += time_calls(lambda: m_o(xb), device, warmup if r == 0 else 1, max(repeat // 3, 3), budget_s / 6)
                    t_t += time_calls(lambda: m_t(xb), device, warmup if r == 0 else 1, max(repeat // 3, 3), budget_s / 6)
            so, st = stats(t_o), stats(t_t)
            row.update({"ours_median_s": so["median"], "ours_cv": so["cv"], "torchvision_median_s": st["median"],
                        "torchvision_cv": st["cv"], "ratio": so["median"] / st["median"]})
            m_o = m_t = xb = None  # free the copies before the next configuration
        except Exception as exc:  # noqa: BLE001 - recorded, the sweep goes on
            row["error"] = first_line(exc)
        res["timing"].append(row)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return res
