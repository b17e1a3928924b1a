"""TF32 switches: set for the run, recorded, restored, through the API the process uses.

The legacy-API path runs in this process.  The new-API path (a process that wrote torch's
per-backend ``fp32_precision``, after which reading a legacy flag raises) runs in a subprocess:
once written, the new API's state would leak into every later test of this process.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from archstat.errors import ArchstatError
from archstat.profiling.precision import new_api_in_use, precision_flags, tf32_flags


def test_precision_flags_strict_tf32_and_restored():
    before = tf32_flags()
    with precision_flags("fp32") as f:
        assert f["cudnn_allow_tf32"] is False and f["matmul_allow_tf32"] is False
        assert tf32_flags() == {"cudnn_allow_tf32": False, "matmul_allow_tf32": False}
    with precision_flags("tf32") as f:
        assert f["cudnn_allow_tf32"] is True and f["matmul_allow_tf32"] is True
    assert tf32_flags() == before
    with pytest.raises(ArchstatError):
        with precision_flags("fp64"):
            pass


NEW_API_SCRIPT = textwrap.dedent("""
    import json, torch
    from torch import nn
    from archstat import profile
    from archstat.profiling.precision import new_api_in_use, precision_flags, tf32_flags

    torch.backends.cuda.matmul.fp32_precision = "tf32"   # what a user (or a library) on the new API does
    torch.backends.cudnn.conv.fp32_precision = "ieee"
    try:
        torch.backends.cuda.matmul.allow_tf32
        legacy_readable = True
    except RuntimeError:
        legacy_readable = False
    out = {"legacy_readable": legacy_readable, "in_use": new_api_in_use(), "before": tf32_flags()}
    with precision_flags("fp32") as f:
        out["fp32"] = f
    with precision_flags("tf32") as f:
        out["tf32"] = f
        out["rnn"] = torch.backends.cudnn.rnn.fp32_precision
    out["after"] = [torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision]
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    p = profile(net, (3, 8, 8), warmup=1, repeat=2, layer_repeat=1, ceilings=False)
    out["profile_flags"] = [p.context["cudnn_allow_tf32"], p.context["matmul_allow_tf32"]]
    print(json.dumps(out))
""")


def test_new_fp32_precision_api_is_used_when_the_process_is_on_it():
    run = subprocess.run([sys.executable, "-c", NEW_API_SCRIPT], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["legacy_readable"] is False and out["in_use"] is True  # the premise: legacy reads raise
    assert out["before"] == {"cudnn_allow_tf32": False, "matmul_allow_tf32": True}
    assert out["fp32"]["cudnn_allow_tf32"] is False and out["fp32"]["matmul_allow_tf32"] is False
    assert out["tf32"]["cudnn_allow_tf32"] is True and out["tf32"]["matmul_allow_tf32"] is True
    assert out["rnn"] == "tf32"  # cuDNN conv and rnn agree, or an op-less cuDNN read would raise
    assert out["after"] == ["tf32", "ieee"]  # the user's own settings are back
    assert out["profile_flags"] == [False, False]  # profile's default precision is strict fp32


def test_legacy_flags_are_the_default_api():
    assert new_api_in_use() is False
