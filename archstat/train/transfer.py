"""Transfer learning without downloads: pre-train on digits 0-4, transfer to digits 5-9.

The lecture's recipe, on a small labelled target set (``train_per_class`` images per class):

1. *From scratch*: train the same architecture on the small target split only (the baseline).
2. *Feature extraction*: take the pre-trained network, replace its last linear layer by a new one
   with the target's classes, freeze everything else and train the head; BatchNorm stays in eval
   mode (its running statistics are the pre-training ones), as the lecture advises.
3. *Fine-tuning*: from step 2, unfreeze everything and train at one tenth of the LR, BatchNorm
   still in eval mode.

All three are scored on the same target test split (the digits 5-9 images of the fixed test split).
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Sequence

import torch
from torch import nn

from archstat.errors import ArchstatError
from archstat.train.loop import TrainConfig, train
from archstat.train.setup import load_data


def replace_head(model: nn.Module, num_classes: int) -> nn.Linear:
    """Swap the main classifier (the last ``nn.Linear`` outside auxiliary heads) for a fresh one."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and "aux" not in n]
    if not names:
        raise ArchstatError("transfer learning needs a model whose classifier is an nn.Linear")
    parent_name, _, attr = names[-1].rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, attr)
    head = nn.Linear(old.in_features, num_classes, bias=old.bias is not None).to(old.weight.device)
    nn.init.normal_(head.weight, 0.0, 0.01)  # small, so the new head starts at ln C like a fresh model
    if head.bias is not None:
        nn.init.zeros_(head.bias)
    setattr(parent, attr, head)
    return head


def transfer(base: TrainConfig, source: Sequence[int] = (0, 1, 2, 3, 4), target: Sequence[int] = (5, 6, 7, 8, 9),
             train_per_class: int = 20, target_iters: int = 200, log=print) -> dict[str, Any]:
    """Pre-train on ``source`` with ``base``; then scratch / feature extraction / fine-tuning on ``target``.

    The small target split has few minibatches per epoch, so each target phase gets the same
    budget of about ``target_iters`` iterations (batch <= 25) instead of ``base.epochs`` epochs.
    """
    if base.data != "digits":
        raise ArchstatError("--transfer splits digits into 0-4 and 5-9; use --data digits")
    out = base.out

    def sub(name: str) -> str | None:
        return f"{out}/{name}" if out else None

    cfg = dataclasses.replace(base, resume=False)
    pre = train(dataclasses.replace(cfg, classes=list(source), out=sub("pretrain")))
    log(f"  pre-train on {list(source)}: test acc {100 * pre.summary['test_acc']:.2f}%")
    tgt = load_data(base.data, pre.splits.input_shape, base.model, base.seed, list(target), train_per_class)
    batch = min(base.batch, 25)
    per_epoch = max(1, len(tgt.train) // batch)
    tcfg = dataclasses.replace(cfg, classes=list(target), train_per_class=train_per_class, batch=batch,
                               epochs=max(1, -(-target_iters // per_epoch)))
    scratch = train(dataclasses.replace(tcfg, out=sub("scratch")), splits=tgt)
    log(f"  from scratch on {len(tgt.train)} images: test acc {100 * scratch.summary['test_acc']:.2f}%")

    model = copy.deepcopy(pre.model)
    head = replace_head(model, tgt.num_classes)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)
    feat = train(dataclasses.replace(tcfg, freeze_bn=True, ema=None, out=sub("feature_extraction")),
                 splits=tgt, model=model)
    log(f"  feature extraction (frozen backbone, new head): test acc {100 * feat.summary['test_acc']:.2f}%")
    for p in model.parameters():
        p.requires_grad_(True)
    fine = train(dataclasses.replace(tcfg, lr=base.lr / 10, freeze_bn=True, ema=None, out=sub("fine_tune")),
                 splits=tgt, model=model)
    log(f"  fine-tune all at lr/10: test acc {100 * fine.summary['test_acc']:.2f}%")
    return {"source_classes": list(source), "target_classes": list(target), "target_train_images": len(tgt.train),
            "target_test_images": len(tgt.test), "pretrain_test_acc": pre.summary["test_acc"],
            "scratch_test_acc": scratch.summary["test_acc"], "feature_extraction_test_acc": feat.summary["test_acc"],
            "fine_tune_test_acc": fine.summary["test_acc"]}


def freeze_batchnorm(model: nn.Module) -> None:
    """BatchNorm layers to eval mode: normalise with the running statistics, do not update them."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def trainable(model: nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]
