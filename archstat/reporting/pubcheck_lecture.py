"""EECS 498 Lecture 8 against archstat: the AlexNet table, totals, VGG-16 and the stem comparison.

Slide conventions (worked out in the published record): memory = output elements x 4 bytes, in KB
= /1024 and MB = /1024^2; params include biases except in FC rows; flop = multiply-adds, plus
K*K per pooled output (our ``lecture`` convention).  Every explanation below is computed here.
"""
from __future__ import annotations

from archstat.reporting.published import section
from archstat.reporting.pubcheck import (DIFFERS, MATCH, OTHER_MODEL, TYPO, WEIGHTS_ONLY, Analyses, Section,
                               check_rounding, first_row_at, kind_sum, rounded, weights_only)

SRC = "EECS 498 Lecture 8 (slide images L8_IMG_HQ, L8_IMG_VN, L8_IMG_ST)"
KB, MB = 1024, 1024 ** 2
TABLE_KINDS = ("conv", "pool", "view", "linear")


def _conv_text(r: dict) -> str:
    out, ins, k = r["out_shape"], r["in_shapes"][0], r["kernel"]
    if r["kind"] == "conv":
        return (f"{out[0]}*{out[1]}*{out[2]} outputs x {ins[0]}*{k[0]}*{k[1]} = {r['flops']:,}")
    return f"{r['flops']:,}"


def alexnet_table(a: Analyses) -> Section:
    s = Section("lecture_alexnet", "Lecture: AlexNet per-layer table (227x227)", SRC,
                section("eecs498_lecture8", "alexnet_table", "status"))
    df = a.table("alexnet", (3, 227, 227))
    rows = df[df["kind"].isin(TABLE_KINDS)].to_dict("records")
    for pub, r in zip(section("eecs498_lecture8", "alexnet_table", "rows"), rows):
        layer = pub["layer"]
        kb = r["act_bytes"] / KB
        s.add(f"{layer} memory (KB)", str(pub["memory_KB"]), rounded(kb, 2), "fp32 outputs / 1024",
              MATCH if check_rounding(kb, pub["memory_KB"]) else DIFFERS)
        bias = r["hparams"].get("out_features", 0) if r["kind"] == "linear" and r["hparams"].get("bias") else 0
        if check_rounding(r["params"] / 1000, pub["params_k"]):
            s.add(f"{layer} params (k)", f"{pub['params_k']:,}", f"{r['params']:,}", "weights + bias", MATCH)
        elif bias and check_rounding((r["params"] - bias) / 1000, pub["params_k"]):
            s.add(f"{layer} params (k)", f"{pub['params_k']:,}", f"{r['params'] - bias:,} (+{bias:,} bias)",
                  "weights only", WEIGHTS_ONLY, "the slide's FC cells leave out the bias: "
                  f"{r['params'] - bias:,} / 1000 rounds to {pub['params_k']:,}")
        else:
            s.add(f"{layer} params (k)", f"{pub['params_k']:,}", f"{r['params']:,}", "weights + bias", DIFFERS)
        ok = check_rounding(r["flops"] / 1e6, pub["flop_M"])
        s.add(f"{layer} flop (M)", str(pub["flop_M"]), rounded(r["flops"] / 1e6, 3), "lecture (MACs + pool windows)",
              MATCH if ok else TYPO, "" if ok else
              f"{_conv_text(r)} = {r['flops'] / 1e6:.1f} M, which rounds to {round(r['flops'] / 1e6)}; "
              "the lecture's own MFLOP bar chart shows ~150 for conv4")
    return s


def worked_examples(a: Analyses) -> Section:
    s = Section("lecture_worked", "Lecture: worked examples (conv1, pool1, fc6)", "L8_TXT_AI604 (text reproduction)",
                "CONFIRMED-TEXT")
    df = a.table("alexnet", (3, 227, 227))
    conv1, pool1 = df.iloc[0], df[df["kind"] == "pool"].iloc[0]
    fc6 = df[df["kind"] == "linear"].iloc[0]
    for item, printed, value, how in (
            ("conv1 memory (KB)", 784, conv1["act_bytes"] / KB, "64*56*56*4 / 1024"),
            ("conv1 params", 23_296, conv1["params"], "64*3*11*11 + 64"),
            ("conv1 flop", 72_855_552, conv1["flops"], "200,704 outputs x 3*11*11"),
            ("pool1 memory (KB)", 182.25, pool1["act_bytes"] / KB, "64*27*27*4 / 1024"),
            ("pool1 flop", 419_904, pool1["flops"], "(64*27*27) x (3*3)"),
            ("fc6 flop", 37_748_736, fc6["flops"], "9216 x 4096")):
        s.add(item, f"{printed:,}", f"{value:,}", how, MATCH if value == printed else DIFFERS)
    ok = fc6["params"] == 37_725_832
    s.add("fc6 params", "37,725,832", f"{fc6['params']:,}", "9216*4096 + 4096", MATCH if ok else TYPO,
          f"9216*4096 + 4096 = {9216 * 4096 + 4096:,}: the printed value transposes two digits "
          "(the seed note copies it)")
    return s


def _memory_mb(df, kinds=("conv",)) -> float:
    return kind_sum(df, "act_bytes", kinds) / MB


def totals(a: Analyses) -> Section:
    s = Section("lecture_totals", "Lecture: AlexNet vs VGG-16 totals", SRC,
                section("eecs498_lecture8", "alexnet_vs_vgg16", "status"),
                notes=["Memory totals count conv outputs (the slide's totals leave pooling outputs out; "
                       "with the FC outputs AlexNet is 1.91 MB as well).",
                       "vgg16_lecture is VGG-16 with two convs in stage 3 (models/vgg.py, cfg D_lecture)."])
    pub = section("eecs498_lecture8", "alexnet_vs_vgg16")
    alex = a.table("alexnet", (3, 227, 227))
    s.add("AlexNet memory", "1.9 MB", f"{_memory_mb(alex):.3f} MB", "conv outputs", MATCH if check_rounding(
        _memory_mb(alex), 1.9, 1) else DIFFERS, f"conv + fc outputs: {_memory_mb(alex, ('conv', 'linear')):.3f} MB")
    s.add("AlexNet params", "61M", f"{alex.attrs['total']['params']:,}", "weights + bias", MATCH)
    s.add("AlexNet GFLOP", "0.7", f"{alex.attrs['total']['flops'] / 1e9:.4f}", "lecture", MATCH)
    printed = pub["VGG-16"]
    for name in ("vgg16", "vgg16_lecture"):
        if not a.available(name):
            continue
        df = a.table(name)
        real = name == "vgg16"
        why = ("torchvision's VGG-16 has three convs in stage 3; vgg16_lecture (two) reproduces the slide"
               if real else "")
        mem = _memory_mb(df)
        s.add(f"VGG-16 memory [{name}]", f"{printed['memory_MB']} MB", f"{mem:.2f} MB", "conv outputs",
              MATCH if check_rounding(mem, printed["memory_MB"], 1) else OTHER_MODEL, why)
        p = df.attrs["total"]["params"]
        s.add(f"VGG-16 params [{name}]", "138M", f"{p:,}", "weights + bias",
              MATCH if check_rounding(p / 1e6, 138) else OTHER_MODEL)
        g = df.attrs["total"]["flops"] / 1e9
        s.add(f"VGG-16 GFLOP [{name}]", f"{printed['GFLOP']}", f"{g:.4f}", "lecture",
              MATCH if check_rounding(g, printed["GFLOP"], 1) else OTHER_MODEL, why)
    ratios = pub["ratios_printed"]
    s.add("memory ratio", ratios["memory"], f"48.6/1.9 = {48.6 / 1.9:.1f}x", "ratio of the printed totals",
          MATCH, "printed as a whole number")
    s.add("params ratio", ratios["params"], f"138/61 = {138 / 61:.2f}x", "ratio of the printed totals", MATCH)
    s.add("flop ratio", ratios["flop"], f"13.6/0.7 = {13.6 / 0.7:.1f}x", "ratio of the printed totals", MATCH)
    return s


def vgg_stage_bars(a: Analyses) -> Section:
    from archstat.analyses.stages import stage_labels

    bars = section("eecs498_lecture8", "vgg16_stage_bars_approx")
    s = Section("lecture_vgg_bars", "Lecture: VGG-16 per-stage bars", SRC, bars["status"],
                notes=["Stage i = the convs at one resolution (224, 112, 56, 28, 14); fc6-fc8 one bar each.",
                       "Columns: vgg16_lecture (two convs in stage 3) / torchvision VGG-16."])
    if not (a.available("vgg16_lecture") and a.available("vgg16")):
        return s
    per = {}
    for name in ("vgg16_lecture", "vgg16"):
        df = a.table(name).assign(stage=lambda d: stage_labels(d))
        convs = df[df["kind"] == "conv"]
        groups = list(dict.fromkeys(convs["stage"]))
        vals = {f"conv{i + 1}": (convs.loc[convs["stage"] == g, "macs"].sum(),
                                 convs.loc[convs["stage"] == g, "act_bytes"].sum()) for i, g in enumerate(groups)}
        fcs = df[df["kind"] == "linear"]
        vals.update({f"fc{6 + i}": (m, b) for i, (m, b) in enumerate(zip(fcs["macs"], fcs["act_bytes"]))})
        per[name] = vals
    for group, mflop in bars["VGG16_MFLOP"].items():
        lec, real = per["vgg16_lecture"][group], per["vgg16"][group]
        ok = abs(lec[0] / 1e6 - mflop) < 1
        s.add(f"{group} MFLOP", str(mflop), f"{lec[0] / 1e6:.1f} / {real[0] / 1e6:.1f}", "conv MACs",
              MATCH if ok else DIFFERS, "" if lec[0] == real[0] else
              "the real VGG-16's third conv at this resolution adds the difference")
    for group, kb in bars["VGG16_memory_KB"].items():
        lec, real = per["vgg16_lecture"][group], per["vgg16"][group]
        s.add(f"{group} memory (KB)", f"{kb:,}", f"{lec[1] / KB:,.0f} / {real[1] / KB:,.0f}", "conv outputs",
              MATCH if abs(lec[1] / KB - kb) < 1 else DIFFERS)
    return s


def stem_vs_vgg(a: Analyses) -> Section:
    stem = section("eecs498_lecture8", "googlenet_stem")
    s = Section("lecture_stem", "Lecture: GoogLeNet stem vs VGG-16 from 224 to 28", SRC, stem["status"],
                notes=["Cut with analyze(upto=...) at the first pool that outputs 28x28.",
                       "The stem's rows are convs and max pools (the zoo's googlenet also has two LRN layers, "
                       "which the slide's table leaves out); stem memory includes the pools, VGG's does not, "
                       "as on the slide."])
    if not a.available("googlenet"):
        return s
    g_full = a.table("googlenet")
    g = a.table("googlenet", upto=first_row_at(g_full, 28))
    g_rows = g[g["kind"].isin(("conv", "pool"))].to_dict("records")
    for pub, r in zip(stem["rows"], g_rows):
        s.add(f"stem {pub['layer']} {pub['kernel']}x{pub['kernel']} memory (KB)", f"{pub['memory_KB']:,}",
              f"{r['act_bytes'] / KB:,.2f}", "fp32 outputs", MATCH if check_rounding(r["act_bytes"] / KB,
                                                                                      pub["memory_KB"]) else DIFFERS)
        s.add(f"stem {pub['layer']} {pub['kernel']}x{pub['kernel']} flop (M)", str(pub["flop_M"]),
              f"{r['flops'] / 1e6:.3f}", "lecture", MATCH if check_rounding(r["flops"] / 1e6, pub["flop_M"]) else
              DIFFERS)
    mem = sum(r["act_bytes"] for r in g_rows) / MB
    params = sum(r["params"] for r in g_rows)
    mflop = sum(r["flops"] for r in g_rows) / 1e6
    printed_rows = sum(r["flop_M"] for r in stem["rows"])
    tot = stem["GoogLeNet_224_to_28"]
    lrn = int(g.loc[g["op"] == "LocalResponseNorm", "act_bytes"].sum())
    s.add("stem memory", f"{tot['memory_MB']} MB", f"{mem:.3f} MB", "conv + pool outputs",
          MATCH if check_rounding(mem, tot["memory_MB"], 1) else DIFFERS,
          f"without the paper's two LRN layers ({lrn / KB:,.0f} KB), which the slide's table leaves out: "
          f"`archstat table googlenet --upto {g['name'].iloc[-1]}` totals {(mem * MB + lrn) / KB:,.0f} KB with them")
    s.add("stem params", tot["params"], f"{params:,}", "weights + bias",
          MATCH if check_rounding(params / 1000, 124) else DIFFERS)
    s.add("stem MFLOP", str(tot["MFLOP"]), f"{mflop:.1f}", "lecture", TYPO,
          f"the slide's own rows sum to {printed_rows} (= {' + '.join(str(r['flop_M']) for r in stem['rows'])}); "
          f"exact {mflop:.1f}: 418 is a typo for 481")
    vgg_pub = stem["VGG16_224_to_28"]
    for name in ("vgg16", "vgg16_lecture"):
        if not a.available(name):
            continue
        v = a.table(name, upto=first_row_at(a.table(name), 28))
        mem_v, p_v, f_v = _memory_mb(v), v.attrs["total"]["params"], kind_sum(v, "macs", ("conv",)) / 1e6
        verdict = MATCH if check_rounding(mem_v, vgg_pub["memory_MB"], 1) else OTHER_MODEL
        why = "" if verdict == MATCH else "three convs in stage 3; vgg16_lecture (two) reproduces the slide"
        s.add(f"VGG-16 224->28 memory [{name}]", f"{vgg_pub['memory_MB']} MB", f"{mem_v:.2f} MB", "conv outputs",
              verdict, why)
        s.add(f"VGG-16 224->28 params [{name}]", vgg_pub["params"], f"{p_v:,}", "weights + bias",
              MATCH if check_rounding(p_v / 1e6, 1.1, 1) else OTHER_MODEL, why)
        s.add(f"VGG-16 224->28 MFLOP [{name}]", str(vgg_pub["MFLOP"]), f"{f_v:.1f}", "conv MACs",
              MATCH if check_rounding(f_v, vgg_pub["MFLOP"]) else OTHER_MODEL, why)
    s.add("MFLOP ratio", vgg_pub["MFLOP_ratio"], f"7485/418 = {7485 / 418:.1f}x; 7485/481 = {7485 / 481:.1f}x",
          "ratio of printed values", DIFFERS, "17.8x matches neither the printed 418 nor the rows' 481")
    s.add("memory ratio", vgg_pub["memory_ratio"], f"42.9/7.5 = {42.9 / 7.5:.1f}x", "ratio of printed values", MATCH)
    s.add("params ratio", vgg_pub["params_ratio"], f"1.1M/124K = {1.1e6 / 124e3:.1f}x", "ratio of printed values",
          MATCH)
    return s


def gap_slide(a: Analyses) -> Section:
    gap = section("eecs498_lecture8", "googlenet_global_average_pooling")
    s = Section("lecture_gap", "Lecture: global average pooling vs VGG's FC layers", SRC, gap["status"])
    if a.available("googlenet"):
        g = a.table("googlenet")
        fc = g[g["kind"] == "linear"].iloc[-1]
        s.add("GoogLeNet fc params (k)", "1,025", f"{fc['params']:,}", "weights + bias",
              MATCH if check_rounding(fc["params"] / 1000, 1025) else DIFFERS)
        s.add("GoogLeNet fc memory (KB)", "0", f"{fc['act_bytes'] / KB:.2f}", "fp32 outputs", DIFFERS,
              "1000 x 4 bytes / 1024 = 3.9 KB; the slide prints 0")
    if a.available("vgg16"):
        v = a.table("vgg16")
        fcs = v[v["kind"] == "linear"]
        for (label, printed), (_, r) in zip((("fc6", 102760), ("fc7", 16777), ("fc8", 4096)), fcs.iterrows()):
            w = weights_only(fcs.loc[[_]])
            s.add(f"VGG-16 {label} params (k)", f"{printed:,}", f"{w:,} (+{r['params'] - w:,} bias)", "weights only",
                  WEIGHTS_ONLY if check_rounding(w / 1000, printed) else DIFFERS)
        flat = v[v["kind"] == "view"].iloc[0]
        s.add("VGG-16 flatten memory (KB)", "98", f"{flat['act_bytes'] / KB:g}", "fp32 outputs", MATCH)
    return s


SECTIONS = (alexnet_table, worked_examples, totals, vgg_stage_bars, stem_vs_vgg, gap_slide)
