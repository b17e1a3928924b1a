"""torchvision's state_dict layout, re-derived from its published source without importing it.

torchvision is not installed here, so this module enumerates the ``(key, shape)`` pairs that
``torchvision/models/{alexnet,vgg,resnet}.py`` (pytorch/vision) produce, by replaying their
constructors' bookkeeping in plain Python: no ``nn.Module`` of ours is involved.  The checked-in
files under ``tests/data/torchvision_keys/`` are this module's output (``python
tests/torchvision_layout.py`` rewrites them); the zoo tests compare our models against both, and
the GPU script compares the files against real torchvision.

Checked once against real torchvision (0.26.0, torch 2.11, on the lent H200, 2026-11-27): for all 14
models the files equal torchvision's state_dict keys and shapes, its random-init state_dict loads
into ours with ``strict=True``, and eval outputs at 2x3x224x224 (fp32, TF32 off) are bit-identical.

Conventions replayed from the source:
- ``nn.Conv2d(..., bias=True)`` -> ``weight [out, in/groups, k, k]``, ``bias [out]``.
- ``nn.BatchNorm2d(c)`` -> ``weight, bias, running_mean, running_var [c]``, ``num_batches_tracked []``.
- ``nn.Linear(i, o)`` -> ``weight [o, i]``, ``bias [o]``.
- ReLU, Dropout, pools have no entries, but do take a Sequential index.
"""
from __future__ import annotations

from pathlib import Path

Layout = list[tuple[str, tuple[int, ...]]]
KEY_DIR = Path(__file__).parent / "data" / "torchvision_keys"


def _conv(prefix: str, cin: int, cout: int, k: int, bias: bool = True) -> Layout:
    out = [(f"{prefix}.weight", (cout, cin, k, k))]
    return out + ([(f"{prefix}.bias", (cout,))] if bias else [])


def _bn(prefix: str, c: int) -> Layout:
    return [(f"{prefix}.{n}", (c,)) for n in ("weight", "bias", "running_mean", "running_var")] + [
        (f"{prefix}.num_batches_tracked", ())
    ]


def _linear(prefix: str, i: int, o: int) -> Layout:
    return [(f"{prefix}.weight", (o, i)), (f"{prefix}.bias", (o,))]


def alexnet_layout(num_classes: int = 1000) -> Layout:
    """features: conv(0) relu pool conv(3) relu pool conv(6) relu conv(8) relu conv(10) relu pool;
    classifier: dropout linear(1) relu dropout linear(4) relu linear(6)."""
    out: Layout = []
    for idx, (cin, cout, k) in zip((0, 3, 6, 8, 10), ((3, 64, 11), (64, 192, 5), (192, 384, 3),
                                                      (384, 256, 3), (256, 256, 3))):
        out += _conv(f"features.{idx}", cin, cout, k)
    out += _linear("classifier.1", 256 * 6 * 6, 4096)
    out += _linear("classifier.4", 4096, 4096)
    out += _linear("classifier.6", 4096, num_classes)
    return out


# torchvision vgg.py ``cfgs``
VGG_CFGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}
VGG_NAMES = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}


def vgg_layout(cfg: str, batch_norm: bool, num_classes: int = 1000) -> Layout:
    """make_layers: per int v -> [conv, (bn), relu]; per 'M' -> [maxpool];
    classifier: linear(0) relu dropout linear(3) relu dropout linear(6)."""
    out: Layout = []
    idx, cin = 0, 3
    for v in VGG_CFGS[cfg]:
        if v == "M":
            idx += 1
            continue
        assert isinstance(v, int)
        out += _conv(f"features.{idx}", cin, v, 3)
        if batch_norm:
            out += _bn(f"features.{idx + 1}", v)
            idx += 3
        else:
            idx += 2
        cin = v
    out += _linear("classifier.0", 512 * 7 * 7, 4096)
    out += _linear("classifier.3", 4096, 4096)
    out += _linear("classifier.6", 4096, num_classes)
    return out


RESNET_CFGS = {
    "resnet18": ("basic", [2, 2, 2, 2]),
    "resnet34": ("basic", [3, 4, 6, 3]),
    "resnet50": ("bottleneck", [3, 4, 6, 3]),
    "resnet101": ("bottleneck", [3, 4, 23, 3]),
    "resnet152": ("bottleneck", [3, 8, 36, 3]),
}


def resnet_layout(name: str, num_classes: int = 1000) -> Layout:
    """ResNet.__init__ / _make_layer: stem conv1(bias=False) bn1; per stage, block 0 gets
    ``downsample = Sequential(conv1x1, bn)`` when stride != 1 or inplanes != planes*expansion."""
    kind, layers = RESNET_CFGS[name]
    expansion = 1 if kind == "basic" else 4
    out: Layout = _conv("conv1", 3, 64, 7, bias=False) + _bn("bn1", 64)
    inplanes = 64
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
        stride = 1 if stage == 1 else 2
        for b in range(blocks):
            p = f"layer{stage}.{b}"
            if kind == "basic":
                out += _conv(f"{p}.conv1", inplanes, planes, 3, bias=False) + _bn(f"{p}.bn1", planes)
                out += _conv(f"{p}.conv2", planes, planes, 3, bias=False) + _bn(f"{p}.bn2", planes)
            else:
                out += _conv(f"{p}.conv1", inplanes, planes, 1, bias=False) + _bn(f"{p}.bn1", planes)
                out += _conv(f"{p}.conv2", planes, planes, 3, bias=False) + _bn(f"{p}.bn2", planes)
                out += _conv(f"{p}.conv3", planes, planes * 4, 1, bias=False)
                out += _bn(f"{p}.bn3", planes * 4)
            if b == 0 and (stride != 1 or inplanes != planes * expansion):
                out += _conv(f"{p}.downsample.0", inplanes, planes * expansion, 1, bias=False)
                out += _bn(f"{p}.downsample.1", planes * expansion)
            inplanes = planes * expansion
    out += _linear("fc", 512 * expansion, num_classes)
    return out


def all_layouts() -> dict[str, Layout]:
    """Every torchvision model name this project claims state_dict compatibility with."""
    out = {"alexnet": alexnet_layout()}
    for name, cfg in VGG_NAMES.items():
        out[name] = vgg_layout(cfg, batch_norm=False)
        out[f"{name}_bn"] = vgg_layout(cfg, batch_norm=True)
    for name in RESNET_CFGS:
        out[name] = resnet_layout(name)
    return out


def format_layout(layout: Layout) -> str:
    """One ``key shape`` line per entry; shape as ``64x3x7x7``, ``scalar`` for 0-d tensors."""
    return "".join(f"{k} {'x'.join(map(str, s)) or 'scalar'}\n" for k, s in layout)


def parse_layout(text: str) -> Layout:
    out: Layout = []
    for line in text.splitlines():
        key, shape = line.split()
        out.append((key, () if shape == "scalar" else tuple(int(d) for d in shape.split("x"))))
    return out


def read_layout(name: str) -> Layout:
    return parse_layout((KEY_DIR / f"{name}.txt").read_text())


if __name__ == "__main__":
    KEY_DIR.mkdir(parents=True, exist_ok=True)
    for name, layout in all_layouts().items():
        (KEY_DIR / f"{name}.txt").write_text(format_layout(layout))
        print(name, len(layout))
