"""The lecture's hyper-parameter recipe, steps 3 to 6, run end to end.

3. With all the training data and a small weight decay (1e-4), try LRs 1e-1 ... 1e-5 for about
   100 iterations each and keep those that cut the loss noticeably: ``drop = 1 - L_end / L_0``
   with ``L`` the mean loss over the first/last 10 iterations; the best LR maximises ``drop``.
4. Coarse grid: LRs around the step-3 winner (x1/3, x1, x3) times weight decay {1e-4, 1e-5, 0},
   1-5 epochs each; rank by validation accuracy.
5. Refine: train the best configuration longer (10-20 epochs) without LR decay.
6. Read the curves (:mod:`archstat.train.diagnose`).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from archstat.train.data import Splits
from archstat.train.diagnose import diagnose
from archstat.train.loop import TrainConfig, train
from archstat.train.search import format_table, grid_configs, plot_search, run_search, write_results

STEP3_LRS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)
STEP4_WDS = (1e-4, 1e-5, 0.0)


def find_lr(base: TrainConfig, splits: Splits, iters: int = 100, lrs=STEP3_LRS) -> list[dict[str, Any]]:
    """Step 3: loss drop within ``iters`` iterations per candidate LR (constant LR, weight decay 1e-4)."""
    import csv
    import math
    import tempfile

    rows = []
    for lr in lrs:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = dataclasses.replace(base, lr=lr, weight_decay=1e-4, schedule="constant", max_steps=iters,
                                      epochs=10**6, out=tmp, resume=False, quiet=True, ema=None)
            train(cfg, splits=splits)
            with open(Path(tmp) / "metrics.csv", newline="") as f:
                losses = [float(r["loss"]) for r in csv.DictReader(f)]
        k = max(1, min(10, len(losses) // 5))
        first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
        drop = 1 - last / first if math.isfinite(last) else float("-inf")
        rows.append({"lr": lr, "loss_first": first, "loss_last": last, "drop": drop, "iters": len(losses)})
    return rows


def run_recipe(base: TrainConfig, splits: Splits, out: Path, coarse_epochs: int = 2, long_epochs: int = 10,
               iters: int = 100, log=print) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    step3 = find_lr(base, splits, iters)
    best_lr = max(step3, key=lambda r: r["drop"])["lr"]
    log(f"step 3: loss drop within {iters} iterations (weight decay 1e-4, constant LR)")
    for r in step3:
        log(f"  lr {r['lr']:.0e}: {r['loss_first']:.3f} -> {r['loss_last']:.3f} ({100 * r['drop']:.1f}% lower)")
    log(f"  -> lr {best_lr:g}")
    configs = grid_configs([best_lr / 3, best_lr, best_lr * 3], STEP4_WDS)
    coarse = run_search(dataclasses.replace(base, epochs=coarse_epochs), splits, configs, progress=not base.quiet)
    write_results(coarse, out / "step4_grid.csv")
    plot_search(coarse, out / "step4_grid.png", f"step 4: coarse grid, {coarse_epochs} epochs")
    log(f"step 4: coarse grid, {coarse_epochs} epochs each (best first)\n{format_table(coarse)}")
    best = coarse[0]
    cfg = dataclasses.replace(base, lr=best["lr"], weight_decay=best["weight_decay"], epochs=long_epochs,
                              schedule="constant", out=str(out / "step5"), resume=False)
    run = train(cfg, splits=splits)
    log(f"step 5: lr {best['lr']:.3g}, weight decay {best['weight_decay']:.3g}, {long_epochs} epochs without decay: "
        f"val acc {100 * run.summary['final_val_acc']:.1f}%  (curves: {out / 'step5' / 'curves.png'})")
    findings = diagnose(out / "step5" / "metrics.csv")
    log("step 6: reading the curves")
    for f in findings:
        log(f"  [{f.code}] {f.message}")
    return {"step3": step3, "best_lr": best_lr, "step4": coarse, "step5": run.summary,
            "step6": [dataclasses.asdict(f) for f in findings]}
