"""`archstat validate` on every torchvision classification model: models archstat never saw.

Needs torchvision, which does not install beside this project's CPU torch; in a separate venv:

    python -m venv /tmp/tv && /tmp/tv/bin/pip install torch==2.14.1 torchvision==0.29.1 -e ".[test]"
    /tmp/tv/bin/python bench/validate_torchvision.py [eval|train] [--max-params 90e6] [--models a,b]
    /tmp/tv/bin/python bench/validate_torchvision.py [eval|train] --dense

``--dense``: the segmentation models (FCN, DeepLabV3, LR-ASPP; their outputs are dicts) and the
feature extractors of the detectors (RetinaNet's and FCOS's ResNet-50 + FPN backbones, a dict of five
maps) instead of the classifiers, at 3x128x128.

Random weights (nothing is downloaded), batch 2, 3x96x96 (3x224x224 for ViT/Swin/MaxViT, whose
patching needs it; 3x107x107 for Inception v3, 3x299x299 in training, where its auxiliary head runs
and needs the 17x17 grid that only 299x299 inputs give).  One line per model: agree / DISAGREE (with the
first mismatches) / ERROR, whether the totals are partial (ops without a formula) and which.
"""
from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import sys
import time
import warnings

import torch

import archstat
from archstat.errors import first_line

NEEDS_224 = ("vit", "swin", "maxvit")


def input_for(name: str, mode: str = "eval") -> tuple[int, int, int]:
    if name.startswith(NEEDS_224):
        return (3, 224, 224)
    if name.startswith("inception"):  # training runs the auxiliary head: 5x5 conv on a 17x17 grid / 3
        return (3, 299, 299) if mode == "train" else (3, 107, 107)
    return (3, 96, 96)


def dense_models() -> dict[str, object]:
    """Builders of the dense-prediction models and detector backbones (random weights, nothing downloaded)."""
    from torchvision.models import detection, segmentation

    seg = dict(weights=None, weights_backbone=None)
    return {
        "fcn_resnet50": lambda: segmentation.fcn_resnet50(**seg, aux_loss=True),
        "deeplabv3_resnet50": lambda: segmentation.deeplabv3_resnet50(**seg, aux_loss=True),
        "deeplabv3_mobilenet_v3_large": lambda: segmentation.deeplabv3_mobilenet_v3_large(**seg),
        "lraspp_mobilenet_v3_large": lambda: segmentation.lraspp_mobilenet_v3_large(**seg),
        "retinanet_resnet50_fpn.backbone": lambda: detection.retinanet_resnet50_fpn(**seg).backbone,
        "fcos_resnet50_fpn.backbone": lambda: detection.fcos_resnet50_fpn(**seg).backbone,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", nargs="?", default="eval", choices=("eval", "train"))
    ap.add_argument("--max-params", type=float, default=90e6, help="skip larger models (time and memory)")
    ap.add_argument("--models", type=lambda s: s.split(","), default=None)
    ap.add_argument("--dense", action="store_true", help="segmentation models and detector backbones instead")
    args = ap.parse_args(argv)
    try:
        import torchvision
    except ImportError:
        print("validate_torchvision: torchvision is not installed here (see the module docstring)", file=sys.stderr)
        return 2
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    kind = "segmentation models and detector backbones" if args.dense else "classification models"
    print(f"# archstat validate --mode {args.mode} on torchvision {kind}, "
          f"{datetime.date.today().isoformat()}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"{platform.processor() or platform.machine()} CPU ({os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f} at start), batch 2, random weights", flush=True)
    counts = {"agree": 0, "DISAGREE": 0, "ERROR": 0, "skip": 0}
    dense = dense_models() if args.dense else {}
    for name in args.models or list(dense) or torchvision.models.list_models(module=torchvision.models):
        torch.manual_seed(0)
        model = dense[name]() if args.dense else torchvision.models.get_model(name, weights=None)
        n_params = sum(p.numel() for p in model.parameters())
        if n_params > args.max_params:
            counts["skip"] += 1
            print(f"{name:24s} skip ({n_params / 1e6:.0f}M params)", flush=True)
            continue
        t = time.perf_counter()
        try:
            shape = (3, 128, 128) if args.dense else input_for(name, args.mode)
            a = archstat.validate(model, shape, batch=2, mode=args.mode).attrs
        except Exception as exc:  # noqa: BLE001 - one line per model, the sweep goes on
            counts["ERROR"] += 1
            print(f"{name:24s} ERROR    {first_line(exc)[:200]}", flush=True)
            continue
        status = "agree" if a["agree"] else "DISAGREE"
        counts[status] += 1
        partial = f" partial: {', '.join(sorted({u.split(' ')[0] for u in a['unsupported']}))}" if a["partial"] else ""
        print(f"{name:24s} {status:8s} {time.perf_counter() - t:5.1f} s{partial}", flush=True)
        for line in a["mismatches"][:3]:
            print(f"    {line[:200]}", flush=True)
    print(f"{args.mode}: " + ", ".join(f"{k} {v}" for k, v in counts.items()) +
          f" (torch {torch.__version__}, torchvision {torchvision.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
