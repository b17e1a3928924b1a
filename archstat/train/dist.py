"""DistributedDataParallel plumbing for runs launched by ``torchrun`` (no launcher of our own).

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``; we read them,
start the default process group (NCCL when this rank has a GPU, gloo on CPU) and wrap the model in
``DistributedDataParallel``, which all-reduces (averages) gradients in ``backward`` so every rank
applies the same update: with the same initial weights, parameters stay identical across ranks.
Multi-node runs use torchrun's rendezvous (``--nnodes``, ``--rdzv-endpoint``) unchanged.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from archstat.errors import ArchstatError


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> the local GPU when there is one, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ArchstatError(f"--device {name}: no CUDA GPU is visible")
        return torch.device("cuda", local_rank if name == "cuda" else torch.device(name).index or 0)
    if name != "cpu":
        raise ArchstatError(f"unknown --device {name!r}; use auto, cpu or cuda")
    return torch.device("cpu")


def setup(device: str = "auto") -> DistEnv:
    """Join torchrun's process group if launched by it; otherwise a single-process environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv(device=pick_device(device))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistEnv(rank, world, local, dev)


def wrap(model: nn.Module, env: DistEnv) -> nn.Module:
    if not env.distributed:
        return model
    ids = [env.device.index] if env.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


SYNC_BN_NOTICE = "notice: --sync-bn does nothing in a single process (it shares BatchNorm statistics across torchrun ranks)"


def sync_batchnorm(model: nn.Module, env: DistEnv) -> tuple[nn.Module, int]:
    """Under DDP, every BatchNorm -> ``SyncBatchNorm`` (statistics over all ranks' batches); (model, count).

    A single process gets the model back unchanged (count 0).  Same parameters, buffers and
    ``state_dict`` keys, so checkpoints load into the plain model.  torch's SyncBatchNorm only
    synchronises CUDA (or XPU/HPU) tensors; on CPU ranks it would fail at the first training step,
    so that is refused here as one line.
    """
    if not env.distributed:
        return model, 0
    if env.device.type == "cpu":
        raise ArchstatError("--sync-bn needs GPU ranks: torch's SyncBatchNorm does not run on CPU (gloo)")
    count = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    return nn.SyncBatchNorm.convert_sync_batchnorm(model), count


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def max_param_diff(model: nn.Module, env: DistEnv) -> float:
    """Largest |difference| of any parameter between this rank and rank 0 (all ranks agree on it)."""
    if not env.distributed:
        return 0.0
    flat = torch.cat([p.detach().float().reshape(-1) for p in unwrap(model).parameters()]).to(env.device)
    ref = flat.clone()
    dist.broadcast(ref, src=0)
    diff = (flat - ref).abs().max().reshape(1)
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff)


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def cleanup(env: DistEnv) -> None:
    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()


def mean_over_ranks(value: torch.Tensor) -> float:
    """The mean of a scalar over all ranks (the logged loss under DDP), or the value itself."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return float(value)
    v = value.detach().reshape(1).clone()
    dist.all_reduce(v)
    return float(v) / dist.get_world_size()
