"""``archstat evaluate MODEL --checkpoint PATH [--tta]``: score a saved checkpoint on its test split.

The checkpoint (``best.pt``, ``last.pt`` or ``epoch_K.pt`` of ``archstat train``) carries the run's
config: data, input, classes and seed rebuild the same splits (the test split is fixed), so the
accuracy is the one the run would report.  Prints accuracy, per-class precision and recall and the
confusion matrix (rows: true class, columns: predicted); ``--tta`` adds test-time augmentation from
the training transforms the checkpoint records.
"""
from __future__ import annotations

from archstat.commands import summary
from archstat.errors import ArchstatError, message_line


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="accuracy and confusion matrix of a saved training checkpoint",
                              description=summary(__doc__))
    p.add_argument("model", metavar="MODEL", help="the architecture the checkpoint was trained as")
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="best.pt / last.pt / epoch_K.pt")
    p.add_argument("--split", default="test", choices=("test", "val"), help="which split to score (default test)")
    p.add_argument("--tta", action="store_true", help="also test-time augmentation from the training transforms")
    p.add_argument("--device", default="cpu", help="auto, cpu or cuda (default cpu; auto: cuda where there is one)")
    p.set_defaults(func=run)


def confusion(pred, y, k: int):
    """``k x k`` counts: row = true class, column = predicted class."""
    import torch

    return torch.bincount(y * k + pred, minlength=k * k).view(k, k)


def format_confusion(cm, names: list[str]) -> str:
    width = max(6, *(len(n) for n in names), len(str(int(cm.max()))) + 1)  # 6: a precision of "100.0%"
    head = " " * width + " " + " ".join(f"{n:>{width}}" for n in names) + f" {'recall':>7}"
    rows = [head]
    for i, n in enumerate(names):
        total = int(cm[i].sum())
        rec = f"{100 * int(cm[i, i]) / total:6.1f}%" if total else "      -"
        rows.append(f"{n:>{width}} " + " ".join(f"{int(v):>{width}}" for v in cm[i]) + f" {rec}")
    prec = []
    for j in range(len(names)):
        col = int(cm[:, j].sum())
        prec.append(f"{100 * int(cm[j, j]) / col:.1f}%" if col else "-")
    rows.append(f"{'prec.':>{width}} " + " ".join(f"{p:>{width}}" for p in prec))
    return "\n".join(rows)


def run(args) -> int:
    from archstat.train.checkpoint import load_checkpoint
    from archstat.train.dist import pick_device
    from archstat.train.engine import predict_logits
    from archstat.train.setup import build_model, load_data

    device = pick_device(args.device)
    ck = load_checkpoint(args.checkpoint)
    cfg = ck.get("config") or {}
    if "classes" not in ck or "input" not in cfg and "input" not in ck:
        raise ArchstatError(f"{args.checkpoint} has no run config; evaluate reads checkpoints of `archstat train`")
    trained = cfg.get("model")
    if trained and trained != args.model:
        raise ArchstatError(f"{args.checkpoint} is a checkpoint of {trained}, not of {args.model}")
    names = list(ck["classes"])
    shape = tuple(ck["input"])
    model = build_model(args.model, len(names), shape[0], cfg.get("seed", 0), cfg.get("model_kw") or {}, device)
    try:
        model.load_state_dict(ck["model"])
    except RuntimeError as exc:
        raise ArchstatError(f"{args.checkpoint} does not fit {args.model}: {message_line(exc)[:160]}") from None
    splits = load_data(cfg.get("data", "digits"), shape, args.model, cfg.get("seed", 0), cfg.get("classes"),
                       cfg.get("train_per_class"))
    x, y = getattr(splits, args.split).tensors
    pred = predict_logits(model, x, device=device).argmax(1)
    acc = float((pred == y).float().mean())
    epoch = f", epoch {ck['epoch']}" if "epoch" in ck else ""
    print(f"{args.model} ({args.checkpoint}{epoch}) on {cfg.get('data', 'digits')} {args.split} split, "
          f"{len(y)} images: accuracy {100 * acc:.2f}%")
    print(format_confusion(confusion(pred, y, len(names)), names))
    if args.tta:
        from archstat.train.tta import tta_line, tta_report

        r = tta_report(model, x, y, cfg.get("augment", ""), splits.mean, splits.std, device=device)
        print(tta_line(r, args.split))
    return 0
