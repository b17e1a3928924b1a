"""Model ensembles ("After Training"): average the predicted probabilities, then take the argmax.

    p(y | x) = (1 / K) sum_k softmax(f_k(x)),    prediction = argmax_y p(y | x).

*Independent*: K models trained from different seeds (different init, batch order, augmentation).
*Snapshots*: one run under a cyclic cosine LR with K cycles; the weights at the end of each cycle
(LR at its minimum) are the members, so the ensemble costs one training run (Huang et al. 2017).
Every result is reported against a single model on the same test split.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Sequence

import torch
from torch import nn

from archstat.train.data import Splits
from archstat.train.engine import accuracy_of_probs, predict_logits
from archstat.train.loop import TrainConfig, train


def ensemble_probs(models: Sequence[nn.Module], x: torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """Mean of the members' softmax outputs (eval mode)."""
    return torch.stack([predict_logits(m, x, device=device).softmax(1) for m in models]).mean(0)


def independent_ensemble(base: TrainConfig, splits: Splits, k: int, log=print) -> dict[str, Any]:
    """Train ``k`` models with seeds ``seed .. seed + k - 1``; member 0 is the single-model baseline."""
    x, y = splits.test.tensors
    models, singles, emas = [], [], []
    for i in range(k):
        out = f"{base.out}/member_{i}" if base.out else None
        run = train(dataclasses.replace(base, seed=base.seed + i, out=out, resume=False), splits=splits)
        models.append(run.model)
        singles.append(run.summary["test_acc"])
        emas.append(run.summary.get("test_acc_ema"))
        log(f"  member {i} (seed {base.seed + i}): test acc {100 * singles[-1]:.2f}%")
    acc = accuracy_of_probs(ensemble_probs(models, x), y)
    return {"kind": "independent", "members": k, "single_test_acc": singles[0], "member_test_accs": singles,
            "mean_member_test_acc": sum(singles) / k, "ensemble_test_acc": acc,
            "member_test_accs_ema": emas if base.ema is not None else None}


def snapshot_ensemble(base: TrainConfig, splits: Splits, k: int, log=print) -> dict[str, Any]:
    """One cyclic-LR run with ``k`` cycles; ensemble of its ``k`` end-of-cycle snapshots.

    Baselines on the same test split: the final snapshot alone, and a single run of the same length
    under ``base.schedule`` (cosine by default).
    """
    x, y = splits.test.tensors
    out = f"{base.out}/snapshots" if base.out else None
    run = train(dataclasses.replace(base, schedule="cyclic", cycles=k, out=out, resume=False), splits=splits)
    members = []
    for state in run.snapshots:
        m = copy.deepcopy(run.model)
        m.load_state_dict(state)
        members.append(m)
    snap_accs = [accuracy_of_probs(ensemble_probs([m], x), y) for m in members]
    for i, a in enumerate(snap_accs):
        log(f"  snapshot {i}: test acc {100 * a:.2f}%")
    single = train(dataclasses.replace(base, out=f"{base.out}/single" if base.out else None, resume=False), splits=splits)
    return {"kind": "snapshot", "members": len(members), "snapshot_test_accs": snap_accs,
            "last_snapshot_test_acc": snap_accs[-1] if snap_accs else None,
            "single_test_acc": single.summary["test_acc"], "single_schedule": base.schedule,
            "ensemble_test_acc": accuracy_of_probs(ensemble_probs(members, x), y) if members else None}

