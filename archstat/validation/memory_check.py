"""The oracles for the training-memory estimate.

CPU (exact): run the model once with autograd on, under ``torch.autograd.graph.saved_tensors_hooks``,
along the rows of the analysis (``validation.real_run.RealRun``), and charge every saved tensor's *storage* to
the first row that saves it.  Storages of parameters and buffers are counted apart.

GPU (with a tolerance): ``gpu_memory_check`` compares the estimate with the CUDA caching
allocator.  After the forward pass, ``memory_allocated()`` minus what was there before is exactly
what the graph keeps (saved storages plus the output), each block rounded up to 512 bytes, which
the estimate applies too; cuDNN batch-norm may keep a small reserve buffer, hence the tolerance.
The peak over backward and the optimizer step (``max_memory_allocated``) also holds gradients,
transient buffers and cuDNN workspaces, so it is reported next to the estimate's peak, not
asserted.
"""
from __future__ import annotations

import copy
from typing import Any

import torch

from archstat.analyses.memory import saved_per_row, state_bytes
from archstat.engine.rows import Rows
from archstat.engine.trace import training_mode
from archstat.validation.real_run import RealRun, storage_key, tensors

GPU_TOLERANCE = 0.05  # relative, on the forward pass's kept bytes (cuDNN BN reserve space, allocator slack)
BLOCK = 512  # the CUDA caching allocator's rounding


class SavedTensors:
    """Pack hook + row listener: bytes of the storages each row is the first to save."""

    def __init__(self, state_keys: set[int]) -> None:
        self.state_keys = state_keys
        self.seen: set[int] = set()
        self.pending: list[tuple[int, int]] = []
        self.per_row: dict[int, int] = {}
        self.state_bytes = 0
        self.keep: list[torch.Tensor] = []  # saved tensors stay alive, so no address is reused

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        self.keep.append(t)
        key = storage_key(t)
        if key in self.seen:
            return t
        self.seen.add(key)
        nbytes = t.untyped_storage().nbytes()
        if key in self.state_keys:
            self.state_bytes += nbytes
        else:
            self.pending.append((key, nbytes))
        return t

    def row_done(self, index: int) -> None:
        self.per_row[index] = self.per_row.get(index, 0) + sum(b for _, b in self.pending)
        self.pending = []


def measured_saved(rows: Rows, device: str | torch.device = "cpu", seed: int = 0) -> dict[str, Any]:
    """What autograd really saves, per row of ``rows`` (run on a copy of ``rows.model`` in the rows'
    mode, batch and dtype): ``per_row`` (list of bytes), ``saved`` (their sum) and ``state`` (bytes
    of saved parameters/buffers, counted apart)."""
    work = copy.deepcopy(rows.model).to(device=device, dtype=rows.dtype)
    state = {storage_key(t) for t in list(work.parameters()) + list(work.buffers())}
    hook = SavedTensors(state)
    args, kwargs = rows.example(device, seed)
    with training_mode(work, rows.mode == "train"), torch.enable_grad():
        with torch.autograd.graph.saved_tensors_hooks(hook.pack, lambda t: t):
            RealRun(work, rows, listeners=[hook]).run(args, kwargs)
    per_row = [hook.per_row.get(i, 0) for i in range(len(rows.df))]
    return {"per_row": per_row, "saved": sum(per_row), "state": hook.state_bytes}


def _rounded(nbytes: int) -> int:
    return -(-nbytes // BLOCK) * BLOCK


def gpu_memory_check(rows: Rows, device: str = "cuda", optimizer: str = "sgd") -> dict[str, Any]:
    """One training step of a copy of ``rows.model`` (give it the float32 training graph's rows) on
    ``device``, measured by the caching allocator, next to the estimate.

    ``forward_measured``: ``memory_allocated()`` after the forward pass minus before it (input
    included); ``forward_estimate``: the estimate's saved storages, the input and the output, each
    rounded to 512-byte blocks; ``ok``: they agree within ``GPU_TOLERANCE``.  ``peak_measured``:
    ``max_memory_allocated()`` over forward, backward and the optimizer step, minus the weights;
    ``peak_estimate``: forward_estimate + gradients + optimizer state.
    """
    dev = torch.device(device)
    work = copy.deepcopy(rows.model).to(dev)
    per_row = saved_per_row(rows, device=dev.type)
    est_saved = _estimate_blocks(rows, per_row)
    state = state_bytes(rows, optimizer)
    opt = (torch.optim.SGD(work.parameters(), lr=1e-3, momentum=0.9) if optimizer == "sgd"
           else torch.optim.Adam(work.parameters(), lr=1e-3))
    with training_mode(work, True):
        torch.cuda.synchronize(dev) if dev.type == "cuda" else None
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        args, kwargs = rows.example(dev, 0)
        out = work(*args, **kwargs)
        fwd = torch.cuda.memory_allocated(dev) - base
        outs = tensors(out)
        out_bytes = sum(_rounded(t.untyped_storage().nbytes()) for t in outs)
        loss = sum(t.float().mean() for t in outs)
        loss.backward()
        opt.step()
        torch.cuda.synchronize(dev)
        peak = torch.cuda.max_memory_allocated(dev) - base
    # the inputs autograd saves are among the saved blocks already; the others are alive too
    unsaved = sum(_rounded(x.untyped_storage().nbytes()) for j, x in enumerate([*args, *kwargs.values()])
                  if ("input", j) not in est_saved["inputs_saved"])
    forward_estimate = est_saved["saved_blocks"] + unsaved + out_bytes
    rel = abs(fwd - forward_estimate) / max(fwd, 1)
    return {"forward_measured": fwd, "forward_estimate": forward_estimate, "forward_rel_err": rel,
            "ok": rel <= GPU_TOLERANCE, "tolerance": GPU_TOLERANCE, "saved_estimate": int(per_row["saved_bytes"].sum()),
            "peak_measured": peak, "peak_estimate": forward_estimate + state["grads"] + state["optimizer"],
            "grads": state["grads"], "optimizer_state": state["optimizer"]}


def _estimate_blocks(rows, per_row) -> dict[str, Any]:
    """The estimate's saved storages, each rounded to the allocator's 512-byte blocks."""
    blocks = [(key, nbytes) for storages in per_row["saved_storages"] for key, nbytes in storages.items()]
    return {"saved_blocks": sum(_rounded(b) for _, b in blocks if b),
            "inputs_saved": {key for key, _ in blocks if key[0] == "input"}}
