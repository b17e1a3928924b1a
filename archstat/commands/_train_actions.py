"""What ``archstat train`` does for a plain run and for its sanity-check and after-training flags."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from archstat.errors import ArchstatError
from archstat.files import write_text

RECIPE_EDGE_NOTE = "the best LR is at the edge of the tried range"


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _dump(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(obj, indent=2, default=float) + "\n")


def run_plain(cfg, tta: bool = False) -> int:
    """Train once; print test accuracy (EMA and TTA beside it when asked), time per step, files written."""
    from archstat.train.loop import train

    run = train(cfg)
    s = run.summary
    if s.get("world_size", 1) > 1 and s.get("rank", 0) != 0:
        return 0
    tps = s["time_per_step_s"]
    ema = f" (EMA weights {_pct(s['test_acc_ema'])}, val {_pct(s['val_acc_ema'])})" if "test_acc_ema" in s else ""
    speed = f", {1000 * tps:.1f} ms/step" if tps else ""
    print(f"{cfg.model} on {cfg.data} {'x'.join(map(str, s['input']))}: {s['steps']} steps, "
          f"test acc {_pct(s['test_acc'])}{ema}, best val {_pct(s['best_val_acc'])}{speed}, {s['wall_s']:.0f} s")
    if tta:
        from archstat.train.tta import tta_line, tta_report

        r = s["tta"] = tta_report(run.model, *run.splits.test.tensors, cfg.augment, run.splits.mean, run.splits.std)
        print(tta_line(r))
        write_text(Path(cfg.out, "summary.json"), json.dumps(s, indent=2) + "\n")
    done = min(cfg.epochs, cfg.stop_after or cfg.epochs)  # the epochs this run reached (files of earlier runs aside)
    epochs = ", ".join(f"epoch_{k}.pt" for k in range(1, done + 1) if Path(cfg.out, f"epoch_{k}.pt").exists())
    files = {"best": "last.pt, best.pt, ", "last": "last.pt, ", "all": f"last.pt, best.pt, {epochs}, ", "none": ""}
    print(f"wrote {cfg.out}/metrics.csv, curves.png, {files[cfg.save]}summary.json")
    if "rank_param_max_diff" in s:
        print(f"ranks: {s['world_size']}, max parameter difference across ranks {s['rank_param_max_diff']:g}")
    return 0


def parse_lr_bounds(text: str) -> tuple[float, float]:
    """``"1e-5,1"`` -> (1e-5, 1.0), with 0 < lo < hi."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise ArchstatError(f"--lr-range expects LO,HI such as 1e-5,1; got {text!r}") from None
    if not 0 < lo < hi:
        raise ArchstatError(f"--lr-range needs 0 < LO < HI, got {lo:g},{hi:g}")
    return lo, hi


def run_checks(cfg, args) -> int:
    """--check-init-loss / --overfit-small / --lr-range / --recipe; exit 1 if a check fails."""
    from archstat.train import checks
    from archstat.train.dist import pick_device
    from archstat.train.setup import build_model, check_input_fits, load_data

    bounds = parse_lr_bounds(args.lr_range) if args.lr_range is not None else None
    if args.overfit_small is not None and not 1 <= args.overfit_small <= 20:
        raise ArchstatError(f"--overfit-small takes 1..20 minibatches (the lecture says 5-10), got {args.overfit_small}")
    device = pick_device(cfg.device)
    splits = load_data(cfg.data, cfg.input_shape, cfg.model, cfg.seed, cfg.classes, cfg.train_per_class)
    model = build_model(cfg.model, splits.num_classes, splits.input_shape[0], cfg.seed, cfg.model_kw)
    check_input_fits(model, splits.input_shape, cfg.model)
    out = Path(cfg.out)
    results = []
    if args.check_init_loss:
        results.append(checks.check_init_loss(model, splits, device=device))
    if args.overfit_small is not None:
        print(f"overfit-small: {args.overfit_small} minibatches of {min(cfg.batch, 32)}, {cfg.optimizer} lr {cfg.lr:g}, "
              "weight decay 0, dropout off, no augmentation", flush=True)
        results.append(checks.overfit_small(model, splits, batches=args.overfit_small, batch=min(cfg.batch, 32),
                                            optimizer=cfg.optimizer, lr=cfg.lr, device=device, progress=not cfg.quiet))
    for r in results:
        print(f"{'PASS' if r.ok else 'FAIL'} {r.name}: {r.detail}")
    if bounds is not None:
        r = checks.lr_range_test(model, splits, lo=bounds[0], hi=bounds[1], batch=cfg.batch, optimizer=cfg.optimizer,
                                 seed=cfg.seed, device=device)
        out.mkdir(parents=True, exist_ok=True)
        checks.plot_lr_range(r, out / "lr_range.png")
        _dump(r, out / "lr_range.json")
        stop = " (stopped: diverged)" if r["diverged"] else f" (never diverged: raise the top, e.g. --lr-range {bounds[0]:g},{10 * bounds[1]:g})"
        print(f"LR range test {bounds[0]:g}..{bounds[1]:g} with {cfg.optimizer}, {len(r['lr'])} iterations{stop}: "
              f"steepest descent at lr {r['suggested_lr']:.3g}, lowest loss at {r['min_loss_lr']:.3g} "
              f"(plot {out / 'lr_range.png'})")
    if args.recipe:
        _recipe(cfg, splits, out)
    return 0 if all(r.ok for r in results) else 1


def _recipe(cfg, splits, out: Path) -> None:
    from archstat.train.recipe import STEP3_LRS, run_recipe

    coarse = max(1, min(5, cfg.epochs // 5 or 1))
    print(f"recipe with {cfg.optimizer}, batch {cfg.batch}: step 3 tries lr {', '.join(f'{v:g}' for v in STEP3_LRS)}",
          flush=True)
    res = run_recipe(dataclasses.replace(cfg, quiet=True), splits, out / "recipe", coarse_epochs=coarse,
                     long_epochs=cfg.epochs)
    if res["best_lr"] in (max(STEP3_LRS), min(STEP3_LRS)):
        # step 3 picks among STEP3_LRS; step 4 then tries a third and three times its pick: say which is which
        step4 = res["step4"][0]["lr"] if res.get("step4") else res["best_lr"]
        res["warning"] = (f"{RECIPE_EDGE_NOTE} (step 3: {res['best_lr']:g} of {min(STEP3_LRS):g}..{max(STEP3_LRS):g}; "
                          f"step 4 then kept {step4:g})")
        print(f"warning: {res['warning']}: the optimum may lie beyond it; check with --lr-range")
    _dump(res, out / "recipe" / "recipe.json")


def run_after(cfg, args) -> int:
    """--ensemble / --snapshots / --transfer, each against a single model on the same test split."""
    from archstat.train.setup import load_data

    out = Path(cfg.out)
    report: dict = {}
    if args.transfer:
        from archstat.train.transfer import transfer_table

        print("transfer learning, the lecture's 2x2 table (target digits 5-9):", flush=True)
        steps = {} if args.transfer_exemplar_steps is None else {"exemplar_steps": args.transfer_exemplar_steps}
        report["transfer"] = transfer_table(cfg, little=args.transfer_per_class, draws=args.transfer_draws, **steps)
    if args.ensemble or args.snapshots:
        splits = load_data(cfg.data, cfg.input_shape, cfg.model, cfg.seed, cfg.classes, cfg.train_per_class)
    if args.ensemble:
        from archstat.train.ensemble import independent_ensemble

        print(f"ensemble of {args.ensemble} independent models:")
        r = report["ensemble"] = independent_ensemble(cfg, splits, args.ensemble)
        print(f"  single {_pct(r['single_test_acc'])}, mean member {_pct(r['mean_member_test_acc'])}, "
              f"ensemble {_pct(r['ensemble_test_acc'])}")
        if cfg.ema is not None:
            print(f"  EMA weights (decay {cfg.ema}) of member 0: {_pct(r['member_test_accs_ema'][0])}")
    if args.snapshots:
        from archstat.train.ensemble import snapshot_ensemble

        print(f"snapshot ensemble, {args.snapshots} cycles of a cyclic LR:")
        r = report["snapshots"] = snapshot_ensemble(cfg, splits, args.snapshots)
        print(f"  single ({r['single_schedule']}) {_pct(r['single_test_acc'])}, last snapshot "
              f"{_pct(r['last_snapshot_test_acc'])}, snapshot ensemble {_pct(r['ensemble_test_acc'])}")
    _dump(report, out / "after_training.json")
    print(f"wrote {out / 'after_training.json'}")
    return 0
