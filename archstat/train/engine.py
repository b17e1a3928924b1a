"""The pieces every training routine shares: outputs -> loss, accuracy, evaluation, batching.

Loss is the cross-entropy ``-sum_k y_k log softmax(z)_k``; ``y`` is a class index or, after Mixup /
CutMix, a probability vector (``F.cross_entropy`` accepts both).  Models with auxiliary heads
(GoogLeNet, Inception v3 in training mode) return ``(logits, aux, ...)``; their auxiliary losses
are added with weight 0.3, as in Szegedy et al. 2015.  Training accuracy under soft labels is the
label mass on the predicted class, ``mean_n y_n[argmax z_n]``, which is the usual accuracy for
one-hot labels.
"""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import BatchSampler, Dataset, DistributedSampler, TensorDataset

from archstat.train.data import batch_stream, sequential_batches

AUX_WEIGHT = 0.3


def split_outputs(out) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``logits`` or ``(logits, aux1, ...)`` (namedtuples included) -> (logits, [aux ...])."""
    if isinstance(out, torch.Tensor):
        return out, []
    if hasattr(out, "logits"):
        aux = [getattr(out, f) for f in getattr(out, "_fields", ()) if f != "logits"]
        return out.logits, [a for a in aux if isinstance(a, torch.Tensor)]
    if isinstance(out, (tuple, list)):
        return out[0], [a for a in out[1:] if isinstance(a, torch.Tensor)]
    raise TypeError(f"model returned {type(out).__name__}; expected logits or (logits, aux ...)")


def loss_of(out, y: torch.Tensor, label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(total loss incl. weighted aux losses, main logits)."""
    logits, aux = split_outputs(out)
    loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    for a in aux:
        loss = loss + AUX_WEIGHT * F.cross_entropy(a, y, label_smoothing=label_smoothing)
    return loss, logits


def correct(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Number correct (label mass on the predicted class for soft labels)."""
    pred = logits.argmax(dim=1)
    if y.dtype.is_floating_point:
        return float(y.gather(1, pred.view(-1, 1)).sum())
    return float((pred == y).sum())


def model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch: int = 256,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """Eval-mode logits for all of ``x`` (returned on CPU), computed where the model lives.

    ``device`` defaults to the model's own; the model's train/eval mode is restored afterwards.
    """
    device = model_device(model) if device is None else device
    was_training = model.training
    model.eval()
    out = [split_outputs(model(x[i:i + batch].to(device)))[0].float().cpu() for i in range(0, len(x), batch)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def evaluate(model: nn.Module, ds: Dataset, batch: int = 256,
             device: torch.device | str | None = None) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` on a dataset, in eval mode.

    An in-memory ``TensorDataset`` is scored at once; an image folder streams through its workers.
    """
    if isinstance(ds, TensorDataset):
        x, y = ds.tensors
        logits = predict_logits(model, x, batch, device)
    else:
        parts = [(predict_logits(model, xb, batch, device), yb)
                 for xb, yb in batch_stream(ds, sequential_batches(len(ds), batch))]
        logits, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    return float(F.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())


def accuracy_of_probs(probs: torch.Tensor, y: torch.Tensor) -> float:
    return float((probs.argmax(1) == y).float().mean())


def epoch_batches(n: int, batch: int, epoch: int, seed: int, rank: int = 0, world: int = 1) -> Iterator[list[int]]:
    """This rank's shuffled minibatch indices for one epoch.

    A ``DistributedSampler`` shards a permutation seeded by ``seed + epoch`` (one replica when not
    distributed), so every epoch's order is reproducible and a resumed run sees the same batches.
    The last partial batch is dropped when there is more than one batch (BatchNorm needs > 1 sample).
    """
    sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    return iter(BatchSampler(sampler, batch, drop_last=len(sampler) > batch))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def progress_bar(total: int, initial: int = 0, disable: bool = False, desc: str | None = None, leave: bool = False):
    """A bar on stderr (progress never mixes with the results on stdout): archstat.progress's, so that
    --quiet and a non-terminal stderr silence training as every other command."""
    from archstat.progress import progress

    return progress(total=total, initial=initial, disable=disable, desc=desc or "", leave=leave)


def freeze_batchnorm(model: nn.Module) -> None:
    """BatchNorm layers to eval mode: normalise with the running statistics, do not update them."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
