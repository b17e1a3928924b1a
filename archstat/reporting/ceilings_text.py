"""What `archstat ceilings` prints: each cached ceiling and calibration, with the machine's state then."""
from __future__ import annotations

import math
import pathlib
from typing import Any, Optional

import torch


def state_line(state: dict[str, Any]) -> str:
    """``measured 2026-... UTC, torch 2.13, 2 threads, load 0.31 -> 0.85 (idle)``."""
    if not state:
        return "measured: unknown (an entry written before archstat recorded it)"
    load = f"load {state.get('load_before', math.nan):.2f} -> {state.get('load_after', math.nan):.2f}"
    flag = "UNDER LOAD: the next run on an idle machine measures it again" if state.get("busy") else "idle"
    return (f"measured {state.get('date')}, torch {state.get('torch')}, {state.get('threads')} threads, "
            f"{load} ({flag})")


def ceilings_text(device: torch.device, path: pathlib.Path, ceil: Optional[Any], calibrations: dict[str, dict]) -> str:
    lines = [f"cache: {path}"]
    if ceil is None:
        lines.append(f"no ceilings cached for this {device.type} (torch {torch.__version__}, "
                     f"{torch.get_num_threads()} threads); `archstat ceilings --refresh` measures them")
    else:
        lines.append(f"ceilings of {ceil.device_name}: {state_line(ceil.state)}")
        for prec, v in sorted(ceil.matmul.items()):
            trials = ", ".join(f"{t / 1e9:.1f}" for t in ceil.trials.get(prec, []))
            lines.append(f"  matmul {prec:5s} {v / 1e9:10.1f} GFLOP/s  (best of: {trials or '-'})")
        trials = ", ".join(f"{t / 1e9:.2f}" for t in ceil.trials.get("copy", []))
        lines.append(f"  copy         {ceil.copy_bw / 1e9:10.2f} GB/s (read + write; best of: {trials or '-'})")
    if not calibrations:
        lines.append("no time-model calibration cached (the first `archstat profile` with per-layer times measures one)")
    for key, entry in calibrations.items():
        fams: dict[str, int] = {}
        for p in entry.get("points", []):
            fams[p["family"]] = fams.get(p["family"], 0) + 1
        lines.append(f"time model [{key}]: {len(entry.get('points', []))} synthetic ops "
                     f"({', '.join(f'{f} {n}' for f, n in fams.items())}); {state_line(entry.get('state', {}))}")
    return "\n".join(lines)
