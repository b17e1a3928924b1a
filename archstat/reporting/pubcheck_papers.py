"""The papers against archstat: GoogLeNet Table 1, VGG Table 2, ResNet Table 1 (and the lecture's
ResNet and ILSVRC slides), ZFNet Fig. 3, the 2012 AlexNet, CS231n's VGG-16 memory."""
from __future__ import annotations

import re

import torch
from torch import nn

from archstat.analyses.depth import depth_per_row, weight_depth
from archstat.reporting.published import old_docs_errors, section
from archstat.reporting.pubcheck import (DIFFERS, MATCH, QUOTED, TYPO, WEIGHTS_ONLY, Analyses, Section,
                               check_rounding, kind_sum, weights_only)

G1 = ["conv1", "maxpool1", ("conv2", "conv3"), "maxpool2", "inception3a", "inception3b", "maxpool3",
      "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4", "inception5a",
      "inception5b", "avgpool", "dropout", "fc", None]


def _shape_hwc(out: list) -> str:
    return f"{out[1]}x{out[2]}x{out[0]}" if len(out) == 3 else f"1x1x{out[0]}"


def googlenet_table1(a: Analyses) -> Section:
    t = section("googlenet_paper_table1")
    s = Section("googlenet_table1", "GoogLeNet paper, Table 1 (googlenet, 224x224)", "GOOGLENET_PAPER", t["status"],
                notes=["params = weights only in K = 1024 (no biases), ops = multiply-adds, as the table counts.",
                       "Rows where the table disagrees with its own channel counts are reproduced as computed."])
    if not a.available("googlenet"):
        return s
    df = a.table("googlenet")
    df = df.assign(depth=depth_per_row(df), top=[n.split(".")[0] for n in df["name"]])
    seen_depth = 0
    for row, mods in zip(t["rows"], G1):
        if mods is None:
            continue
        mods = mods if isinstance(mods, tuple) else (mods,)
        g = df[df["top"].isin(mods)]
        label = f"{row['type']} {row['patch_size_stride'] or ''}".strip()
        s.add(f"{label} output", row["output_size"], _shape_hwc(g.iloc[-1]["out_shape"]), "H x W x C",
              MATCH if row["output_size"] == _shape_hwc(g.iloc[-1]["out_shape"]) else DIFFERS)
        depth = int(g["depth"].max()) - seen_depth
        seen_depth = int(g["depth"].max())
        s.add(f"{label} depth", str(row["depth"]), str(depth), "weight layers on the longest path",
              MATCH if depth == row["depth"] else DIFFERS)
        if row["params"]:
            w = weights_only(g) / 1024
            printed = float(row["params"].rstrip("K"))
            ok = abs(w - printed) < 1
            s.add(f"{label} params", row["params"], f"{w:,.2f}K", "weights only, K = 1024", MATCH if ok else TYPO,
                  "" if ok else f"the row's own channel counts give {weights_only(g):,} weights = {w:,.1f}K")
        if row["ops"]:
            m = kind_sum(g, "macs", ("conv", "linear")) / 1e6
            printed = float(row["ops"].rstrip("M"))
            ok = abs(m - printed) < 1
            s.add(f"{label} ops", row["ops"], f"{m:,.1f}M", "multiply-adds", MATCH if ok else TYPO,
                  "" if ok else f"{_conv_desc(g)} is {row['ops']}")
    s.add("total depth", "22 layers (text)", str(weight_depth(df)), "weight layers on the longest path",
          MATCH if weight_depth(df) == 22 else DIFFERS)
    macs = kind_sum(df, "macs", ("conv", "linear"))
    col = sum(float(r["ops"].rstrip("M")) for r in t["rows"] if r["ops"])
    s.add("total ops", "~1.5 billion multiply-adds (text)", f"{macs:,}", "multiply-adds", DIFFERS,
          f"the ops column sums to {col:,.0f}M; recomputed rows give {macs / 1e6:,.1f}M, the difference being conv1's "
          "printed 34M (118.0M) and 5a's 54M (51.1M)")
    return s


def _conv_desc(g) -> str:
    first = g[g["kind"] == "conv"].iloc[0] if (g["kind"] == "conv").any() else g.iloc[0]
    if len(g[g["kind"] == "conv"]) == 1:
        out, k, c = first["out_shape"], first["kernel"], first["in_shapes"][0][0]
        return (f"{out[0]}*{out[1]}*{out[2]} outputs x {c}*{k[0]}*{k[1]} = {first['macs'] / 1e6:,.1f}M "
                "from the row's own shapes; the print")
    return f"its {int((g['kind'] == 'conv').sum())} convs sum to {kind_sum(g, 'macs', ('conv',)) / 1e6:,.1f}M; the print"


def _vgg_c() -> nn.Module:
    """Configuration C: D with the last conv of stages 3-5 a 1x1 conv (VGG's cfgs are data)."""
    from archstat.models.vgg import VGG

    with torch.device("meta"):
        model = VGG("D")
        feats = model.features
        convs_per_stage, stage = {}, 0
        for i, m in enumerate(feats):
            if isinstance(m, nn.MaxPool2d):
                stage += 1
            elif isinstance(m, nn.Conv2d):
                convs_per_stage.setdefault(stage, []).append(i)
        for st in (2, 3, 4):
            i = convs_per_stage[st][-1]
            c = feats[i].out_channels
            feats[i] = nn.Conv2d(c, c, kernel_size=1)
    return model


def vgg_table2(a: Analyses) -> Section:
    t = section("vgg_paper_table2")
    s = Section("vgg_table2", "VGG paper, Table 2 (parameters, millions)", "VGG_PAPER", t["status"],
                notes=["A-LRN = A plus local response normalisation, which has no parameters.",
                       "C is built here from D's configuration with the last conv of stages 3-5 a 1x1 conv."])
    names = {"A": "vgg11", "A-LRN": "vgg11", "B": "vgg13", "C": None, "D": "vgg16", "E": "vgg19"}
    for cfg, printed in t["params_millions"].items():
        name = names[cfg]
        if name is None:
            p, label = sum(x.numel() for x in _vgg_c().parameters()), "VGG('D') with 1x1 convs"
        elif a.available(name):
            p, label = a.table(name).attrs["total"]["params"], name
        else:
            continue
        s.add(f"{cfg} [{label}]", f"{printed}", f"{p:,}", "weights + bias", MATCH if check_rounding(p / 1e6, printed)
              else DIFFERS)
    return s


def resnet(a: Analyses) -> Section:
    rows = section("eecs498_lecture8", "resnet_family", "rows")
    table1 = section("resnet_paper", "table1", "FLOPs")
    s = Section("resnet", "ResNet paper Table 1 and the lecture's ResNet slide", "RESNET_PAPER / EECS 498 Lecture 8",
                section("resnet_paper", "table1_status"),
                notes=["v1 = the paper's stride placement (stride 2 in the first 1x1 of a downsampling bottleneck); "
                       "v1.5 = torchvision's (stride in the 3x3). Basic blocks are the same in both."])
    old = old_docs_errors()
    for r in rows:
        n = r["model"].split("-")[1]
        name = f"resnet{n}"
        if not a.available(name):
            continue
        v15, v1 = a.table(name), a.table(name, variant="v1")
        g1, g15 = kind_sum(v1, "macs", ("conv", "linear")) / 1e9, kind_sum(v15, "macs", ("conv", "linear")) / 1e9
        printed = float(table1[n].split("x")[0])
        if check_rounding(g1, printed, 1):
            verdict, why = MATCH, ""
        elif check_rounding(g1, printed, 1, truncate_ok=True):
            verdict, why = MATCH, f"printed truncated: {g1:.3f} -> {printed} (rounding gives {g1:.1f})"
        else:
            verdict, why = DIFFERS, f"v1 computes {g1:.3f} G ({(g1 / printed - 1) * 100:.1f}% above the print)"
        if g15 != g1:
            why += f"{'; ' if why else ''}torchvision's v1.5 gives {g15:.3f} G"
        s.add(f"ResNet-{n} FLOPs (Table 1 = slide GFLOP)", table1[n], f"{g1:.3f} G (v1)", "multiply-adds", verdict, why)
        s.add(f"ResNet-{n} depth", f"{n} layers", str(weight_depth(v15)), "weight layers on the longest path",
              MATCH if weight_depth(v15) == int(n) else DIFFERS)
        for st in range(1, 5):
            convs = v15[(v15["kind"] == "conv") & v15["name"].str.startswith(f"layer{st}.")
                        & ~v15["name"].str.contains("downsample")]
            s.add(f"ResNet-{n} stage {st} layers", str(r[f"stage{st}_layers"]), str(len(convs)),
                  "convs on the main path", MATCH if len(convs) == r[f"stage{st}_layers"] else DIFFERS)
        docs = old.get(r["model"])
        s.add(f"ResNet-{n} top-5 error (slide)", str(r["imagenet_top5_error"]), f"{docs[1]} (old torchvision docs)"
              if docs else "", "quoted", QUOTED if docs and docs[1] == r["imagenet_top5_error"] else DIFFERS,
              "archstat does not evaluate accuracy; the slide quotes the old torchvision docs")
    return s


def ilsvrc_depths(a: Analyses) -> Section:
    rows = section("eecs498_lecture8", "ilsvrc_winners_slide", "rows")
    s = Section("ilsvrc", "Lecture: ILSVRC winners' depth labels", "EECS 498 Lecture 8 (L8_IMG_ST 8-4.png)",
                section("eecs498_lecture8", "ilsvrc_winners_slide", "status"))
    names = {2012: "alexnet", 2013: "zfnet", "VGG": "vgg19", "GoogLeNet": "googlenet"}
    for r in rows:
        name = names.get(r["year"]) or next((v for k, v in names.items() if isinstance(k, str) and k in r["entry"]),
                                            None)
        if name is None or not a.available(name):
            continue
        d = weight_depth(a.table(name))
        printed = int(r["depth_label"].split()[0])
        s.add(f"{r['year']} {r['entry']} [{name}]", r["depth_label"], f"{d} layers", "weight layers on the longest path",
              MATCH if d == printed else DIFFERS)
    return s


def zfnet(a: Analyses) -> Section:
    z = section("zfnet")
    s = Section("zfnet", "ZFNet (Zeiler & Fergus Fig. 3) and the lecture's 512/1024/512 variant", "ZF_PAPER",
                z["status"])
    if not a.available("zfnet_paper"):
        return s
    df = a.table("zfnet_paper")
    convs = [_shape_hwc(o) for o in df.loc[df["kind"] == "conv", "out_shape"]]
    pools = [_shape_hwc(o) for o in df.loc[df["kind"] == "pool", "out_shape"]]
    layers = [r for r in z["fig3_layers"] if r["layer"].endswith("conv")]
    after = [m.group(1) for r in layers if r["note"] for m in [re.search(r"-> (\d+x\d+x\d+)", r["note"])] if m]
    for r, got in zip(layers, convs):
        s.add(f"{r['layer']} output", r["output"], got, "H x W x C", MATCH if r["output"] == got else DIFFERS)
    for printed, got in zip(after, pools):
        s.add("pooled output", printed, got, "H x W x C", MATCH if printed == got else DIFFERS)
    comp = z["computed"]
    for name, key in (("zfnet_paper", "variant_fig3_384_384_256"), ("zfnet", "variant_512_1024_512")):
        if a.available(name):
            p = a.table(name).attrs["total"]["params"]
            s.add(f"params [{name}]", f"{comp[key]['params']:,} (computed)", f"{p:,}", "weights + bias",
                  MATCH if p == comp[key]["params"] else DIFFERS)
    m = kind_sum(df, "macs", ("conv", "linear"))
    s.add("MACs [zfnet_paper]", f"{comp['variant_fig3_384_384_256']['macs']:,} (computed)", f"{m:,}", "multiply-adds",
          MATCH if m == comp["variant_fig3_384_384_256"]["macs"] else DIFFERS)
    return s


def alexnet_2012(a: Analyses) -> Section:
    o = section("alexnet_original")
    s = Section("alexnet_2012", "AlexNet paper (2012): two-GPU grouped network at 227x227", "ALEXNET_PAPER", o["status"])
    if not a.available("alexnet_2012"):
        return s
    df = a.table("alexnet_2012", (3, 227, 227))
    p = df.attrs["total"]["params"]
    s.add("parameters", "60 million (abstract)", f"{p:,}", "weights + bias",
          MATCH if check_rounding(p / 1e6, 60, truncate_ok=True) else DIFFERS, "the abstract truncates")
    m = kind_sum(df, "macs", ("conv", "linear"))
    printed = o["computed_grouped_227"]["macs"]
    s.add("MACs (recomputed in the record)", f"{printed:,}", f"{m:,}", "multiply-adds", MATCH if m == printed else DIFFERS)
    mains = df[df["kind"].isin(("conv", "pool"))]
    names = iter(o["shapes_227"].items())
    for (label, printed), out in zip(names, mains["out_shape"]):
        s.add(f"{label} output", printed, _shape_hwc(out), "H x W x C", MATCH if printed == _shape_hwc(out) else DIFFERS)
    return s


def cs231n_vgg(a: Analyses) -> Section:
    c = section("cs231n_2017_lecture9_vgg16")
    s = Section("cs231n_vgg", "CS231n 2017 Lecture 9: VGG-16 memory and params", "CS231N_2017_L9", c["status"])
    if not a.available("vgg16"):
        return s
    df = a.table("vgg16")
    elems = 3 * 224 * 224 + kind_sum(df, "act_bytes", ("conv", "pool", "linear")) // 4
    s.add("activations", c["printed_totals"]["memory"], f"{elems:,} elements = {elems * 4 / 1e6:.1f} MB",
          "input + conv/pool/fc outputs, fp32", TYPO, "the slide's own per-layer entries sum to ~15.2M elements, not 24M")
    w = weights_only(df)
    s.add("params", f"{c['printed_totals']['params']} {c['note_printed']}", f"{w:,}", "weights only",
          WEIGHTS_ONLY if check_rounding(w / 1e6, 138) else DIFFERS)
    return s


SECTIONS = (googlenet_table1, vgg_table2, resnet, ilsvrc_depths, zfnet, alexnet_2012, cs231n_vgg)
