"""The data behind the zoo-wide figures: accuracy bubbles, ILSVRC winners, cost vs resolution.

Each builder returns a DataFrame (also written as CSV/JSON next to the figure), so every plotted
point can be checked.
"""
from __future__ import annotations

from typing import Optional

import pandas as pd

from archstat.engine.analyze import analyze
from archstat.reporting.published import section

# the zoo model that stands for each ILSVRC entry on the lecture's winners slide
ILSVRC_MODELS = {"Krizhevsky": "alexnet", "Zeiler": "zfnet", "Simonyan": "vgg19", "Szegedy": "googlenet"}
# one line per family in the resolution figure, in the lecture's order
RESOLUTION_MODELS = ("alexnet", "zfnet", "vgg16", "googlenet", "inception_v3", "resnet50", "resnet152")
SIDES = tuple(range(64, 513, 32))


def bubble_points(zoo: pd.DataFrame, families: dict[str, str]) -> pd.DataFrame:
    """Models with a published top-1 error: (label, gflops = GMACs, top1_acc, params, family)."""
    pts = zoo[zoo["top1_err"].notna()]
    return pd.DataFrame({
        "label": pts["model"], "gflops": pts["macs"] / 1e9, "top1_acc": 100 - pts["top1_err"],
        "params": pts["params"], "family": [families[m] for m in pts["model"]],
        "source": pts["top1_err_source"],
    }).reset_index(drop=True)


def ilsvrc_rows(depth_of: dict[str, int], zoo: pd.DataFrame) -> pd.DataFrame:
    """The slide's winners (2010-2014) plus later winners the zoo records (``ilsvrc_top5_err``)."""
    rows = []
    for r in section("eecs498_lecture8", "ilsvrc_winners_slide", "rows"):
        model = next((m for k, m in ILSVRC_MODELS.items() if k in r["entry"]), None)
        rows.append({"year": r["year"], "label": r["entry"].replace(" et al", "").replace(" (", "\n("),
                     "top5_err": r["top5_error_pct"], "model": model or "",
                     "depth": depth_of.get(model) if model else None, "source": "EECS 498 Lecture 8 slide"})
    years = {r["year"] for r in rows}
    for r in zoo[zoo["ilsvrc_top5_err"].notna()].to_dict("records"):
        src = r["ilsvrc_top5_err_source"]
        year = next((int(t) for t in src.replace("(", " ").split() if t.isdigit() and len(t) == 4), None)
        if year and year not in years and "winner" in src:
            years.add(year)
            rows.append({"year": year, "label": r["model"], "top5_err": r["ilsvrc_top5_err"], "model": r["model"],
                         "depth": depth_of.get(r["model"]), "source": src})
    return pd.DataFrame(rows).sort_values(["year", "top5_err"], ascending=[True, False], kind="stable")


def resolution_curves(reports: dict, sides=SIDES) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """MACs and activation bytes per image at H = W = side, from the closed forms.

    A model whose closed forms are unavailable is evaluated numerically at each side instead
    (``method`` says which); sides below the model's smallest input are skipped.
    """
    from archstat.analyses import closed_forms as cf
    from archstat.models import model_info

    curves, flat = {}, []
    for name in RESOLUTION_MODELS:
        rep = reports.get(name)
        if rep is None:
            continue
        info = model_info(name)
        usable = [s for s in sides if s >= max(info.min_input[1:])]
        if rep.forms:
            c = cf.sweep({"macs": rep.forms["macs"], "act_bytes": rep.forms["act_bytes"]}, usable)
            method = "closed form"
        else:
            c = pd.DataFrame([_numeric(rep.model, info.default_input[0], s) for s in usable])
            method = "numeric (no closed form)"
        curves[name if method == "closed form" else f"{name} (numeric)"] = c
        flat += [{"model": name, "method": method, **r} for r in c.to_dict("records")]
    return curves, pd.DataFrame(flat)


def _numeric(model, channels: int, side: int) -> dict:
    df = analyze(model, (channels, side, side))
    t = df.attrs["total"]
    return {"side": side, "macs": int(t["macs"]), "act_bytes": int(t["act_bytes"])}


def latency_points(zoo: pd.DataFrame) -> Optional[pd.DataFrame]:
    pts = zoo[zoo["latency_ms"].notna()]
    if pts.empty:
        return None
    return pd.DataFrame({"model": pts["model"], "gmacs": pts["macs"] / 1e9, "latency_ms": pts["latency_ms"],
                         "setting": pts["latency_setting"]}).reset_index(drop=True)


def roofline_points(layers: pd.DataFrame) -> pd.DataFrame:
    """The layers of the most common measured configuration (step), timed ones only, sorted."""
    timed = layers[layers["time_s"].notna() & (layers["time_s"] > 0) & layers["intensity"].notna()]
    step = timed["step"].value_counts().sort_index().idxmax() if not timed.empty else None
    cols = [c for c in ("card", "model", "step", "batch", "name", "op", "call", "intensity", "achieved_flops_per_s",
                        "time_s", "bound") if c in timed.columns]
    pts = timed[timed["step"] == step][cols]
    return pts.sort_values(["model", "name", "call"] if "call" in pts else ["model"], kind="stable").reset_index(
        drop=True)
