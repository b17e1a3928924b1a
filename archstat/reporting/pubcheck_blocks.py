"""The lecture's formula slides, recomputed symbolically from tiny modules (``lecture_blocks``).

Each block is analysed with ``symbolic=True`` at two channel widths C; the cost divided by C^2 HW
(or HWC for memory) must be the same number for both widths, and that number is the slide's
coefficient: 25 vs 18 for one 5x5 vs two 3x3 convs, 18 vs 17 for the basic vs bottleneck residual
block, 4HWC vs 2HWC memory before and after VGG's channel-doubling pool.
"""
from __future__ import annotations

import sympy

from archstat.engine.analyze import SYMBOLS
from archstat.reporting import lecture_blocks as lb
from archstat.reporting.pubcheck import DIFFERS, MATCH, TYPO, Analyses, Section
from archstat.reporting.published import section

H, W, N = SYMBOLS["H"], SYMBOLS["W"], SYMBOLS["N"]
WIDTHS = (64, 128)


def _coeff(a: Analyses, build, c_in_of, column: str, per, scale_hw: int = 1) -> tuple[sympy.Expr, str]:
    """Cost / per(C) for C in WIDTHS; the common value (or None) and the per-width expressions."""
    found = []
    for c in WIDTHS:
        df = a.of(build(c), (c_in_of(c), 28, 28), symbolic=True)
        value = sympy.sympify(df.attrs["total"][column]).subs(N, 1)
        if scale_hw != 1:
            value = value.subs({H: scale_hw * H, W: scale_hw * W})
        found.append(sympy.simplify(value / per(c)))
    same = found[0] if all(sympy.simplify(f - found[0]) == 0 for f in found) else None
    return same, ", ".join(f"C={c}: {sympy.sympify(f)}" for c, f in zip(WIDTHS, found))


def _fmt(expr, unit: str) -> str:
    return f"{sympy.sympify(expr)}".replace("*", "") + unit


def design_rules(a: Analyses) -> Section:
    rules = section("eecs498_lecture8", "vgg_design_rules")
    s = Section("lecture_vgg_rules", "Lecture: VGG design rules (symbolic, no bias)", "EECS 498 Lecture 8",
                rules["status"], notes=[f"Each block analysed with symbolic H, W at C = {WIDTHS}."])
    one = lambda c: c  # noqa: E731
    cases = [
        ("Conv(5x5, C->C) params", "25C^2", lb.one_5x5, one, "params", lambda c: c * c, 1, 25),
        ("Conv(5x5, C->C) flops", "25C^2HW", lb.one_5x5, one, "macs", lambda c: c * c, 1, 25 * H * W),
        ("2x Conv(3x3, C->C) params", "18C^2", lb.two_3x3, one, "params", lambda c: c * c, 1, 18),
        ("2x Conv(3x3, C->C) flops", "18C^2HW", lb.two_3x3, one, "macs", lambda c: c * c, 1, 18 * H * W),
        ("C x 2H x 2W, Conv(3x3, C->C) memory", "4HWC", lambda c: lb.conv(c, c, 3), one, "act_bytes",
         lambda c: 4 * c, 2, 4 * H * W),
        ("C x 2H x 2W, Conv(3x3, C->C) flops", "36HWC^2", lambda c: lb.conv(c, c, 3), one, "macs",
         lambda c: c * c, 2, 36 * H * W),
        ("2C x H x W, Conv(3x3, 2C->2C) memory", "2HWC", lambda c: lb.conv(2 * c, 2 * c, 3), lambda c: 2 * c,
         "act_bytes", lambda c: 4 * c, 1, 2 * H * W),
        ("2C x H x W, Conv(3x3, 2C->2C) params", "36C^2", lambda c: lb.conv(2 * c, 2 * c, 3), lambda c: 2 * c,
         "params", lambda c: c * c, 1, 36),
        ("2C x H x W, Conv(3x3, 2C->2C) flops", "36HWC^2", lambda c: lb.conv(2 * c, 2 * c, 3), lambda c: 2 * c,
         "macs", lambda c: c * c, 1, 36 * H * W),
    ]
    for item, printed, build, c_in, column, per, scale, expected in cases:
        got, detail = _coeff(a, build, c_in, column, per, scale)
        unit = {"params": "C^2", "macs": "C^2", "act_bytes": "C"}[column]
        ok = got is not None and sympy.simplify(got - expected) == 0
        s.add(item, printed, _fmt(got, unit) if got is not None else detail,
              "elements (bytes / 4)" if column == "act_bytes" else "MACs" if column == "macs" else "weights",
              MATCH if ok else DIFFERS, "" if ok else detail)
    return s


def inception_module(a: Analyses) -> Section:
    pub = section("eecs498_lecture8", "inception_module_cost_cs231n_2017")
    s = Section("lecture_inception", "Lecture: naive vs bottleneck Inception module on 28x28x256",
                "CS231n 2017 Lecture 9 (CS231N_2017_L9)", pub["status"])
    for key, build in (("naive", lb.naive_inception), ("bottleneck", lb.bottleneck_inception)):
        df = a.of(build(256), (256, 28, 28))
        macs, out = int(df.attrs["total"]["macs"]), df.iloc[-1]["out_shape"]
        printed = pub[key]["total_printed"]
        value_m = int(printed.split("M")[0])
        ok = round(macs / 1e6) == value_m
        terms = " + ".join(f"{int(m):,}" for m in df.loc[df["kind"] == "conv", "macs"])
        s.add(f"{key} module ops", printed, f"{macs:,}", "MACs (conv)", MATCH if ok else TYPO,
              "" if ok else f"the slide's own listed terms sum to {terms} = {macs:,} ({macs / 1e6:.0f}M)")
        s.add(f"{key} module output", pub[key]["output"], f"{out[1]}x{out[2]}x{out[0]}", "H x W x C", MATCH
              if pub[key]["output"] == f"{out[1]}x{out[2]}x{out[0]}" else DIFFERS)
    return s


def residual_blocks(a: Analyses) -> Section:
    pub = section("eecs498_lecture8", "residual_block_flops")
    s = Section("lecture_residual", "Lecture: residual block FLOPs (symbolic)", "EECS 498 Lecture 8", pub["status"],
                notes=["Basic block: two 3x3 convs C->C; bottleneck: 1x1 4C->C, 3x3 C->C, 1x1 C->4C; "
                       "the shortcut's add costs no multiply-adds."])
    one = lambda c: c  # noqa: E731
    cases = (("basic block", pub["basic"]["total"], lb.basic_block, one, 18),
             ("bottleneck block", pub["bottleneck"]["total"], lb.bottleneck_block, lambda c: 4 * c, 17))
    for item, printed, build, c_in, k in cases:
        got, detail = _coeff(a, build, c_in, "macs", lambda c: c * c)
        ok = got is not None and sympy.simplify(got - k * H * W) == 0
        s.add(f"{item} flops", printed, _fmt(got, "C^2") if got is not None else detail, "MACs",
              MATCH if ok else DIFFERS, "" if ok else detail)
    c = WIDTHS[0]
    df = a.of(lb.bottleneck_block(c), (4 * c, 28, 28), symbolic=True)
    convs = [sympy.sympify(m).subs(N, 1) / (c * c) for m in df.loc[df["kind"] == "conv", "macs"]]
    for (label, key), got in zip((("bottleneck 1x1 4C->C", "conv1x1_4C_to_C"), ("bottleneck 3x3 C->C", "conv3x3_C_to_C"),
                                  ("bottleneck 1x1 C->4C", "conv1x1_C_to_4C")), convs):
        printed = pub["bottleneck"][key]
        ok = _fmt(got, "C^2") == printed
        s.add(label, printed, _fmt(got, "C^2"), "MACs", MATCH if ok else DIFFERS)
    return s


SECTIONS = (design_rules, inception_module, residual_blocks)
