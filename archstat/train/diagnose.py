"""Reading a metrics CSV the way the lecture reads loss and accuracy curves (step 6).

With ``m_t`` the moving average of the per-iteration loss (window ``w`` = 5% of the run) and
``L0 = m_w`` its starting level:

* **bad init** — a plateau at the start: over the first 20% of iterations ``m`` falls by < 5% of
  ``L0``, yet by the end it has fallen by > 30%;
* **not learning** — the loss never falls by 5% at all (LR too low / bad init / bug);
* **decayed too early** — at an LR step (``lr_t < lr_{t-1} / 2`` after a flat ``lr_{t-1} = lr_{t-2}``;
  a smooth decay's last iterations halve the LR too and are not steps) the loss was still falling:
  over the window before the drop ``m`` fell by more than 2% (relative);
* **plateau at constant LR** — the LR did not change over the last third and ``m`` fell by < 1%
  there: try LR decay;
* **still improving** — validation accuracy rose by >= 0.5 points over the last quarter of
  epochs: train longer;
* **overfitting** — final train accuracy exceeds validation accuracy by > 5 points: more
  regularisation or data;
* **underfitting** — no gap (< 1 point) and training accuracy below 99%: train longer or use a
  bigger model.  A gap < 1 point at >= 99% is healthy.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from archstat.train.metrics import moving_average, read_metrics


@dataclass
class Finding:
    code: str
    message: str


def diagnose(csv_path: str | Path) -> list[Finding]:
    steps, epochs = read_metrics(csv_path)
    loss = np.asarray(steps["loss"], dtype=float)
    lr = np.asarray(steps["lr"], dtype=float)
    findings: list[Finding] = []
    n = len(loss)
    if n < 10:
        return [Finding("too-short", f"only {n} iterations logged; nothing to read yet")]
    w = max(3, n // 20)
    m = moving_average(loss, w)
    start = m[w - 1]
    early = m[max(w, n // 5)]
    end = m[-1]
    fell_early = (start - early) / start
    fell_total = (start - end) / start
    if fell_total < 0.05:
        findings.append(Finding("not-learning", f"loss {start:.3f} -> {end:.3f} ({100 * fell_total:.1f}% lower) over "
                                                f"{n} iterations: LR too low, bad initialisation or a bug"))
    elif fell_early < 0.05 and fell_total > 0.30:
        findings.append(Finding("bad-init", f"loss flat for the first 20% of iterations ({100 * fell_early:.1f}% lower) "
                                            f"then falls {100 * fell_total:.0f}%: a plateau at the start, likely bad initialisation"))
    drops = np.nonzero(lr[1:] < lr[:-1] / 2)[0] + 1
    for t in drops:
        # a step of a step schedule (the LR flat just before), not the last iterations of a smooth decay,
        # where a cosine's LR halves from one iteration to the next as it reaches 0
        if t < 2 * w or not np.isclose(lr[t - 1], lr[t - 2], rtol=0.01):
            continue
        before = (m[t - w] - m[t - 1]) / m[t - w]
        if before > 0.02:
            findings.append(Finding("decayed-too-early", f"LR dropped {lr[t - 1]:.3g} -> {lr[t]:.3g} at iteration {t + 1} "
                                                         f"while the loss was still falling ({100 * before:.1f}% over "
                                                         f"the last {w} iterations): decay later"))
    third = n - n // 3
    if np.allclose(lr[third:], lr[third], rtol=1e-6) and n // 3 > w:
        tail = (m[third] - end) / m[third]
        if tail < 0.01:
            findings.append(Finding("plateau", f"loss flat ({100 * tail:.1f}% lower) over the last third at a constant "
                                               f"LR {lr[-1]:.3g}: try decaying the LR"))
    if len(epochs) >= 4:
        val = np.asarray(epochs["val_acc"], dtype=float)
        q = max(1, len(val) // 4)
        rise = val[-1] - val[-1 - q]
        if rise >= 0.005:
            findings.append(Finding("still-improving", f"validation accuracy still rising (+{100 * rise:.1f} points over "
                                                       f"the last {q} epochs): train longer"))
    if len(epochs):
        tr, va = float(epochs["train_acc"].iloc[-1]), float(epochs["val_acc"].iloc[-1])
        gap = tr - va
        if gap > 0.05:
            findings.append(Finding("overfitting", f"train accuracy {100 * tr:.1f}% vs validation {100 * va:.1f}% "
                                                   f"(gap {100 * gap:.1f} points): increase regularisation or get more data"))
        elif abs(gap) < 0.01 and tr < 0.99:
            findings.append(Finding("underfitting", f"no train/validation gap ({100 * tr:.1f}% vs {100 * va:.1f}%): "
                                                    "train longer or use a bigger model"))
        elif abs(gap) < 0.01:
            findings.append(Finding("healthy", f"train {100 * tr:.1f}% and validation {100 * va:.1f}% agree"))
    if not findings:
        findings.append(Finding("ok", "no pattern from the lecture's list stands out"))
    return findings
