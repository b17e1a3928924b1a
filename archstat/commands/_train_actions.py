"""What ``archstat train`` does for its sanity-check and after-training flags (kept out of the parser module)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from archstat.errors import ArchstatError


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _dump(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=float) + "\n")


def run_checks(cfg, args) -> int:
    """--check-init-loss / --overfit-small / --lr-range / --recipe; exit 1 if a check fails."""
    from archstat.train import checks
    from archstat.train.dist import pick_device
    from archstat.train.setup import build_model, check_input_fits, load_data

    device = pick_device(cfg.device)
    splits = load_data(cfg.data, cfg.input_shape, cfg.model, cfg.seed, cfg.classes, cfg.train_per_class)
    model = build_model(cfg.model, splits.num_classes, splits.input_shape[0], cfg.seed, cfg.model_kw)
    check_input_fits(model, splits.input_shape, cfg.model)
    out = Path(cfg.out)
    ok = True
    results = []
    if args.check_init_loss:
        results.append(checks.check_init_loss(model, splits, device=device))
    if args.overfit_small is not None:
        if not 1 <= args.overfit_small <= 20:
            raise ArchstatError(f"--overfit-small takes 1..20 minibatches (the lecture says 5-10), got {args.overfit_small}")
        results.append(checks.overfit_small(model, splits, batches=args.overfit_small, batch=min(cfg.batch, 32),
                                            device=device))
    for r in results:
        print(f"{'PASS' if r.ok else 'FAIL'} {r.name}: {r.detail}")
        ok &= r.ok
    if args.lr_range:
        r = checks.lr_range_test(model, splits, batch=cfg.batch, optimizer=cfg.optimizer, seed=cfg.seed, device=device)
        out.mkdir(parents=True, exist_ok=True)
        checks.plot_lr_range(r, out / "lr_range.png")
        _dump(r, out / "lr_range.json")
        print(f"LR range test 1e-5..1e-1 over {len(r['lr'])} iterations{' (stopped: diverged)' if r['diverged'] else ''}: "
              f"steepest descent at lr {r['suggested_lr']:.3g}, lowest loss at {r['min_loss_lr']:.3g} "
              f"(plot {out / 'lr_range.png'})")
    if args.recipe:
        from archstat.train.recipe import run_recipe

        coarse = max(1, min(5, cfg.epochs // 5 or 1))
        res = run_recipe(dataclasses.replace(cfg, quiet=True), splits, out / "recipe", coarse_epochs=coarse,
                         long_epochs=cfg.epochs)
        _dump(res, out / "recipe" / "recipe.json")
    return 0 if ok else 1


def run_after(cfg, args) -> int:
    """--ensemble / --snapshots / --transfer / --tta, each against a single model on the same test split."""
    from archstat.train.setup import load_data

    out = Path(cfg.out)
    report: dict = {}
    if args.transfer:
        from archstat.train.transfer import transfer

        print("transfer learning, digits 0-4 -> 5-9:")
        report["transfer"] = transfer(cfg, train_per_class=args.transfer_per_class)
    if args.ensemble or args.snapshots or args.tta or cfg.ema is not None:
        splits = load_data(cfg.data, cfg.input_shape, cfg.model, cfg.seed, cfg.classes, cfg.train_per_class)
    if args.ensemble:
        from archstat.train.ensemble import independent_ensemble

        print(f"ensemble of {args.ensemble} independent models:")
        r = report["ensemble"] = independent_ensemble(cfg, splits, args.ensemble)
        print(f"  single {_pct(r['single_test_acc'])}, mean member {_pct(r['mean_member_test_acc'])}, "
              f"ensemble {_pct(r['ensemble_test_acc'])}")
    if args.snapshots:
        from archstat.train.ensemble import snapshot_ensemble

        print(f"snapshot ensemble, {args.snapshots} cycles of a cyclic LR:")
        r = report["snapshots"] = snapshot_ensemble(cfg, splits, args.snapshots)
        print(f"  single ({r['single_schedule']}) {_pct(r['single_test_acc'])}, last snapshot "
              f"{_pct(r['last_snapshot_test_acc'])}, snapshot ensemble {_pct(r['ensemble_test_acc'])}")
    if args.tta:
        from archstat.train.loop import train
        from archstat.train.tta import tta_report

        run = train(dataclasses.replace(cfg, out=str(out / "tta_model")), splits=splits)
        r = report["tta"] = tta_report(run.model, *splits.test.tensors, device=next(run.model.parameters()).device)
        print(f"test-time augmentation: single crop {_pct(r['single_crop_test_acc'])}, flips {_pct(r['flip_test_acc'])}, "
              f"10-crop {_pct(r['ten_crop_test_acc'])}, multi-scale 10-crop {_pct(r['multiscale_ten_crop_test_acc'])}")
    if cfg.ema is not None:
        if "ensemble" in report:  # the members were trained with EMA weights alongside
            r = report["ensemble"]
            report["ema"] = {"decay": cfg.ema, "single_test_acc": r["member_test_accs"][0],
                             "ema_test_acc": r["member_test_accs_ema"][0]}
        else:
            from archstat.train.ensemble import ema_comparison

            report["ema"] = ema_comparison(dataclasses.replace(cfg, out=str(out / "ema")), splits, cfg.ema)
        r = report["ema"]
        print(f"EMA weights (decay {cfg.ema}): single {_pct(r['single_test_acc'])}, EMA {_pct(r['ema_test_acc'])}")
    _dump(report, out / "after_training.json")
    print(f"wrote {out / 'after_training.json'}")
    return 0
