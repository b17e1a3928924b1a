"""Every zoo model passes `archstat validate MODEL --device cpu` (batch 2, eval and train).

Inputs: reduced where the full one would be slow (the models end in adaptive pooling or are
fully convolutional up to it, so the per-layer checks are the same): ResNets 3x64x64, VGGs
3x32x32, GoogLeNets 3x96x96, Inceptions 3x107x107 in eval (their training graph's auxiliary head
needs the full 3x299x299).  AlexNet and ZFNet keep their default inputs (227 / 224).
Fast models run in CI, resnet18 in both modes; VGGs, Inceptions, the deep ResNets and the other
training graphs are `slow`.
"""
import json

import pytest

from archstat.cli import main
from archstat.models import list_models

REDUCED = {"resnet": "3x64x64", "preact_resnet": "3x64x64", "vgg": "3x32x32", "googlenet": "3x96x96",
           "inception": "3x107x107"}
FAST = {"alexnet", "alexnet_2012", "zfnet", "zfnet_paper", "resnet18", "resnet50", "preact_resnet18",
        "preact_resnet50", "googlenet", "googlenet_bn"}


def input_for(name: str, mode: str) -> list[str]:
    if mode == "train" and name.startswith("inception"):
        return []  # the auxiliary classifier of the training graph needs the full input
    family = next((f for f in sorted(REDUCED, key=len, reverse=True) if name.startswith(f)), None)
    return ["--input", REDUCED[family]] if family else []


def run_validate(name: str, mode: str, capsys) -> dict:
    code = main(["validate", name, "--device", "cpu", "--batch", "2", "--mode", mode, "--format", "json",
                 *input_for(name, mode)])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out["mismatches"]
    return out


def cases():
    for name in list_models():
        for mode in ("eval", "train"):
            slow = name not in FAST or (mode == "train" and name != "resnet18")
            yield pytest.param(name, mode, marks=[pytest.mark.slow] if slow else [], id=f"{name}-{mode}")


@pytest.mark.parametrize("name,mode", list(cases()))
def test_zoo_model_validates(name, mode, capsys):
    out = run_validate(name, mode, capsys)
    assert out["agree"] and out["fidelity"] and not out["partial"]
    n = len(out["layers"])
    # inference memory (live_ok) is an eval-mode check, saved tensors and backward FLOPs train-mode
    # ones: each is skipped, and said so, in the other mode
    own = {"live_ok"} if mode == "eval" else {"saved_ok", "bwd_ok"}
    other = {"live_ok", "saved_ok", "bwd_ok"} - own
    assert all(v["ok"] == n for k, v in out["checks"].items() if k not in other), out["checks"]
    assert all(out["checks"][k] == {"ok": 0, "failed": 0, "skipped": n} for k in other), out["checks"]
    assert ("inference_peak" in out["totals"]) == (mode == "eval")
    assert ({"training_saved", "backward_flopcounter"} <= set(out["totals"])) == (mode == "train")
    for key, t in out["totals"].items():
        assert t["archstat"] == t["oracle"], key
