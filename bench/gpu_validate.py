"""GPU checks of issue 4, on the lent machine: `archstat validate --device cuda` and the training-
memory estimate against the CUDA caching allocator.

Run:  ../shared/device/prepare-wheels.sh   (here), then on the device (carry [".whl"]):
      python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl &&
      PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 python3 bench/gpu_validate.py --out $OUT
Writes validate_gpu.json (every result, written after each step, so a timeout still returns data)
and validate_gpu.md (a summary) to --out.
"""
from __future__ import annotations

import argparse
import json
import time
import traceback
from pathlib import Path

import torch

VALIDATE = [("resnet50", (3, 224, 224), 8), ("alexnet", (3, 227, 227), 8), ("googlenet", (3, 224, 224), 4),
            ("vgg16_bn", (3, 224, 224), 4), ("inception_v3", (3, 299, 299), 2)]
MEMORY = [("resnet18", (3, 224, 224), 32), ("resnet50", (3, 224, 224), 32), ("vgg11_bn", (3, 224, 224), 16),
          ("googlenet_bn", (3, 224, 224), 16), ("alexnet", (3, 227, 227), 64), ("inception_v3", (3, 299, 299), 8)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="gpu_out")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from archstat.engine.analyze import analyze_rows
    from archstat.validation.memory_check import gpu_memory_check
    from archstat.models import get_model
    from archstat.validation.validate import validate

    results = {"card": torch.cuda.get_device_name(0), "torch": torch.__version__, "validate": [], "memory": []}

    def save() -> None:
        (out / "validate_gpu.json").write_text(json.dumps(results, indent=1, default=str))

    for name, shape, batch in VALIDATE:
        model = None
        try:
            torch.manual_seed(0)
            model = get_model(name, device="cuda")
            t = time.perf_counter()
            df = validate(model, shape, batch=batch, device="cuda")
            a = df.attrs
            results["validate"].append({"model": name, "input": shape, "batch": batch, "agree": a["agree"],
                                        "fidelity": a["fidelity"], "totals": a["totals"], "checks": a["checks"],
                                        "mismatches": a["mismatches"][:10], "timing": a["timing"],
                                        "wall_s": time.perf_counter() - t})
        except Exception:  # record and go on: one model's failure must not lose the others
            results["validate"].append({"model": name, "error": traceback.format_exc()[-2000:]})
        print(results["validate"][-1].get("agree", "ERROR"), name, flush=True)
        save()
        del model
        torch.cuda.empty_cache()
    for name, shape, batch in MEMORY:
        for opt in ("sgd", "adam"):
            try:
                torch.manual_seed(0)
                model = get_model(name, device="cuda")
                rows = analyze_rows(model, shape, batch=batch, mode="train")
                r = gpu_memory_check(rows, device="cuda", optimizer=opt)
                results["memory"].append({"model": name, "input": shape, "batch": batch, "optimizer": opt, **r})
            except Exception:
                results["memory"].append({"model": name, "optimizer": opt, "error": traceback.format_exc()[-2000:]})
            print(results["memory"][-1].get("forward_rel_err", "ERROR"), name, opt, flush=True)
            save()
            torch.cuda.empty_cache()
    lines = [f"# GPU validation ({results['card']}, torch {results['torch']})", "",
             "| model | input | batch | agree | fvcore total (archstat/oracle) | time (s) |", "|---|---|---|---|---|---|"]
    for v in results["validate"]:
        if "error" in v:
            lines.append(f"| {v['model']} | | | ERROR | | |")
            continue
        fv = v["totals"]["flops_fvcore"]
        lines.append(f"| {v['model']} | {'x'.join(map(str, v['input']))} | {v['batch']} | {v['agree']} | "
                     f"{fv[0]:,} / {fv[1]:,} | {v['timing']['total_s']:.2f} |")
    lines += ["", "| model | batch | optimizer | forward kept: measured | estimate | rel. err | peak measured | peak estimate |",
              "|---|---|---|---|---|---|---|---|"]
    for m in results["memory"]:
        if "error" in m:
            lines.append(f"| {m['model']} | | {m['optimizer']} | ERROR | | | | |")
            continue
        lines.append(f"| {m['model']} | {m['batch']} | {m['optimizer']} | {m['forward_measured']:,} | "
                     f"{m['forward_estimate']:,} | {m['forward_rel_err']:.4f} | {m['peak_measured']:,} | {m['peak_estimate']:,} |")
    (out / "validate_gpu.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
