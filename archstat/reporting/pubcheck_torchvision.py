"""torchvision's weights metadata and Canziani et al.'s figure against archstat.

torchvision publishes, per weights enum: ``num_params`` (all parameters of the built model),
``_ops`` (GFLOPS counted as multiply-adds at the eval crop: 224, or 299 for Inception v3),
``_file_size`` (MB = 2^20 bytes of the saved state_dict) and accuracies.  archstat recomputes the
first three on the zoo model with the same ``torchvision_name``; accuracies are quoted.
Canziani's G-Ops are read from a figure (APPROX) and count 2 per multiply-add.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from archstat.reporting.pubcheck import APPROX, DIFFERS, MATCH, QUOTED, Analyses, Section, kind_sum
from archstat.reporting.published import old_docs_errors, section

CROP = {"inception_v3": 299}
FILE_TOLERANCE = 0.005  # a saved file is the state_dict's bytes plus a little zip/pickle overhead


def _zoo_names(a: Analyses) -> dict[str, str]:
    from archstat.models import list_models, model_info

    out: dict[str, str] = {}
    for name in list_models():
        tv = model_info(name).torchvision_name
        if tv and tv not in out:
            out[tv] = name
    return out


def _state_dict_mib(model: nn.Module) -> float:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 2 ** 20


def metadata(a: Analyses) -> Section:
    tv = section("torchvision_weights_metadata")
    s = Section("torchvision", "torchvision weights metadata (num_params, _ops, _file_size)", "TV", tv["status"])
    zoo = _zoo_names(a)
    missing = []
    for tv_name, entry in tv["models"].items():
        name = zoo.get(tv_name)
        if name is None:
            missing.append(tv_name)
            continue
        side = CROP.get(tv_name, 224)
        df = a.table(name, (3, side, side))
        model = a.model(name)
        for weights, w in entry["weights"].items():
            tag = f"{tv_name} {weights}"
            p_all, p_run = df.attrs["params_all"], df.attrs["total"]["params"]
            if w["num_params"] in (p_all, p_run):
                which = "all parameters" if w["num_params"] == p_all else "parameters that run in eval"
                other = p_run if w["num_params"] == p_all else p_all
                s.add(f"{tag} num_params [{name}]", f"{w['num_params']:,}", f"{w['num_params']:,}", which, MATCH,
                      "" if other == w["num_params"] else f"the other count is {other:,} (auxiliary heads)")
            else:
                s.add(f"{tag} num_params [{name}]", f"{w['num_params']:,}", f"{p_all:,}", "all parameters", DIFFERS)
            g = kind_sum(df, "macs", ("conv", "linear")) / 1e9
            s.add(f"{tag} _ops [{name}]", f"{w['_ops_GFLOPS']}", f"{g:.4f}", f"GMACs at {side}x{side}",
                  MATCH if abs(round(g, 3) - w["_ops_GFLOPS"]) < 1e-9 else DIFFERS)
            mib = _state_dict_mib(model)
            ok = abs(mib / w["_file_size_MB"] - 1) < FILE_TOLERANCE
            s.add(f"{tag} _file_size [{name}]", f"{w['_file_size_MB']} MB", f"{mib:.3f} MB",
                  "state_dict bytes / 2^20", MATCH if ok else DIFFERS,
                  f"file - state_dict = {(w['_file_size_MB'] - mib) * 1024:.0f} KB of container overhead" if ok else
                  "the file holds other tensors than this model's state_dict")
    if missing:
        s.notes.append("Not in the zoo (no archstat value): " + ", ".join(missing) + ".")
    return s


def accuracy(a: Analyses) -> Section:
    tv = section("torchvision_weights_metadata")
    s = Section("accuracy", "Accuracies (quoted: archstat counts, it does not evaluate)", "TV / TV_OLD_DOCS",
                "CONFIRMED-CODE / CONFIRMED-TEXT",
                notes=["Error = 100 - accuracy. The lecture and the zoo's top-1/top-5 errors quote the old docs."])
    old = old_docs_errors()
    labels = {k.lower().replace("-", "").replace(" ", "").replace("_", ""): k for k in old}
    for tv_name, entry in tv["models"].items():
        for weights, w in entry["weights"].items():
            e1, e5 = 100 - w["acc@1"], 100 - w["acc@5"]
            key = labels.get(tv_name.replace("_", ""))
            docs = old.get(key) if key else None
            s.add(f"{tv_name} {weights} acc@1 / acc@5", f"{w['acc@1']} / {w['acc@5']}",
                  f"errors {e1:.3f} / {e5:.3f}", "100 - accuracy", QUOTED,
                  f"old docs: {docs[0]} / {docs[1]}" if docs and weights == "IMAGENET1K_V1" else "")
    return s


def _ungrouped(model: nn.Module) -> nn.Module:
    """The same network with every grouped conv made dense (Canziani's AlexNet is ungrouped)."""
    model = copy.deepcopy(model)
    for name, m in list(model.named_modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, nn.Conv2d) and child.groups > 1:
                with torch.device("meta"):
                    dense = nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size, child.stride,
                                      child.padding, bias=child.bias is not None)
                setattr(m, child_name, dense)
    return model


CANZIANI = {"GoogLeNet": "googlenet", "VGG-16": "vgg16", "VGG-19": "vgg19", "ResNet-18": "resnet18",
            "ResNet-34": "resnet34", "ResNet-50": "resnet50", "ResNet-101": "resnet101", "ResNet-152": "resnet152",
            "Inception-v3": "inception_v3", "Inception-v4": "inception_v4", "AlexNet": "alexnet_2012"}
ALTERNATIVES = {"GoogLeNet": "googlenet_bn"}  # torchvision's GoogLeNet (3x3 in the "5x5" branch)


def canziani(a: Analyses) -> Section:
    c = section("canziani_2016")
    s = Section("canziani", "Canziani et al. 2016, G-Ops read from the figure (2 per multiply-add)", "CANZIANI_PAPER",
                c["status"], notes=["Figure readings carry about +-0.1 G-Ops; 'approx' = within 3%."])
    for r in c["rows"]:
        name = CANZIANI.get(r["model"])
        if name is None or not a.available(name):
            continue
        df = a.table(name)
        gops = 2 * kind_sum(df, "macs", ("conv", "linear")) / 1e9
        why = ""
        if r["model"] == "AlexNet":
            dense = a.of(_ungrouped(a.model(name)), (3, 227, 227))
            dense_gops = 2 * kind_sum(dense, "macs", ("conv", "linear")) / 1e9
            why = (f"the grouped 2012 AlexNet gives {gops:.2f}; Canziani's is ungrouped: "
                   f"2 x {dense_gops / 2:.3f} = {dense_gops:.2f}")
            gops = dense_gops
        ok = abs(gops / r["G_Ops_from_scatter"] - 1) < 0.03
        alt = ALTERNATIVES.get(r["model"])
        if not ok and alt and a.available(alt):
            alt_gops = 2 * kind_sum(a.table(alt), "macs", ("conv", "linear")) / 1e9
            if abs(alt_gops / r["G_Ops_from_scatter"] - 1) < 0.03:
                why = (f"the paper's network (true 5x5 convs) gives {gops:.2f}; {alt} gives {alt_gops:.2f}, "
                       "within the figure's reading error")
                ok, gops, name = True, alt_gops, alt
        if not ok and not why:
            why = f"{gops / r['G_Ops_from_scatter']:.2f}x the figure: a different network than the zoo's {name}"
        s.add(f"{r['model']} G-Ops [{name}]", f"{r['G_Ops_from_scatter']}", f"{gops:.2f}", "2 x MACs",
              APPROX if ok else DIFFERS, why)
    return s


SECTIONS = (metadata, accuracy, canziani)
