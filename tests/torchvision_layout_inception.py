"""torchvision's GoogLeNet and Inception3 state_dict layouts, transcribed from torchvision's source.

Companion of ``tests/torchvision_layout.py`` (same file format, same folder
``tests/data/torchvision_keys/``).  torchvision cannot be installed here, so each builder below
re-states, line by line, the
constructor calls of torchvision/models/googlenet.py and torchvision/models/inception.py
(pytorch/vision main, torchvision 0.29) and expands them into the keys that nn.Conv2d,
nn.BatchNorm2d and nn.Linear register.  It does not import archstat: the files are an
independent oracle for tests/test_zoo_inception.py and for the GPU script, which compares the
files against real torchvision.  Regenerate with ``python tests/torchvision_layout_inception.py``.

Line format (``torchvision_layout.format_layout``): ``key 64x3x7x7``, ``scalar`` for 0-d tensors.
"""
from __future__ import annotations

from torchvision_layout import KEY_DIR, Layout, format_layout


def _ks(k: int | tuple[int, int]) -> tuple[int, int]:
    return (k, k) if isinstance(k, int) else k


def basic_conv(out: Layout, prefix: str, cin: int, cout: int, kernel_size) -> None:
    """BasicConv2d: conv (bias=False) + BatchNorm2d(cout, eps=0.001)."""
    kh, kw = _ks(kernel_size)
    out.append((f"{prefix}.conv.weight", (cout, cin, kh, kw)))
    for name in ("weight", "bias", "running_mean", "running_var"):
        out.append((f"{prefix}.bn.{name}", (cout,)))
    out.append((f"{prefix}.bn.num_batches_tracked", ()))


def linear(out: Layout, prefix: str, cin: int, cout: int) -> None:
    out.append((f"{prefix}.weight", (cout, cin)))
    out.append((f"{prefix}.bias", (cout,)))


def googlenet_layout(num_classes: int = 1000, aux_logits: bool = True) -> Layout:
    """torchvision.models.GoogLeNet (blocks = BasicConv2d, Inception, InceptionAux)."""
    out: Layout = []
    basic_conv(out, "conv1", 3, 64, 7)
    basic_conv(out, "conv2", 64, 64, 1)
    basic_conv(out, "conv3", 64, 192, 3)

    def inception(p, cin, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        basic_conv(out, f"{p}.branch1", cin, ch1x1, 1)
        basic_conv(out, f"{p}.branch2.0", cin, ch3x3red, 1)
        basic_conv(out, f"{p}.branch2.1", ch3x3red, ch3x3, 3)
        basic_conv(out, f"{p}.branch3.0", cin, ch5x5red, 1)
        basic_conv(out, f"{p}.branch3.1", ch5x5red, ch5x5, 3)  # kernel_size=3: pytorch/vision#906
        # branch4.0 is the MaxPool2d (no state)
        basic_conv(out, f"{p}.branch4.1", cin, pool_proj, 1)

    inception("inception3a", 192, 64, 96, 128, 16, 32, 32)
    inception("inception3b", 256, 128, 128, 192, 32, 96, 64)
    inception("inception4a", 480, 192, 96, 208, 16, 48, 64)
    inception("inception4b", 512, 160, 112, 224, 24, 64, 64)
    inception("inception4c", 512, 128, 128, 256, 24, 64, 64)
    inception("inception4d", 512, 112, 144, 288, 32, 64, 64)
    inception("inception4e", 528, 256, 160, 320, 32, 128, 128)
    inception("inception5a", 832, 256, 160, 320, 32, 128, 128)
    inception("inception5b", 832, 384, 192, 384, 48, 128, 128)
    if aux_logits:
        for p, cin in (("aux1", 512), ("aux2", 528)):
            basic_conv(out, f"{p}.conv", cin, 128, 1)
            linear(out, f"{p}.fc1", 2048, 1024)
            linear(out, f"{p}.fc2", 1024, num_classes)
    linear(out, "fc", 1024, num_classes)
    return out


def inception_v3_layout(num_classes: int = 1000, aux_logits: bool = True) -> Layout:
    """torchvision.models.Inception3 (InceptionA..E, InceptionAux)."""
    out: Layout = []
    basic_conv(out, "Conv2d_1a_3x3", 3, 32, 3)
    basic_conv(out, "Conv2d_2a_3x3", 32, 32, 3)
    basic_conv(out, "Conv2d_2b_3x3", 32, 64, 3)
    basic_conv(out, "Conv2d_3b_1x1", 64, 80, 1)
    basic_conv(out, "Conv2d_4a_3x3", 80, 192, 3)

    def a(p, cin, pool_features):
        basic_conv(out, f"{p}.branch1x1", cin, 64, 1)
        basic_conv(out, f"{p}.branch5x5_1", cin, 48, 1)
        basic_conv(out, f"{p}.branch5x5_2", 48, 64, 5)
        basic_conv(out, f"{p}.branch3x3dbl_1", cin, 64, 1)
        basic_conv(out, f"{p}.branch3x3dbl_2", 64, 96, 3)
        basic_conv(out, f"{p}.branch3x3dbl_3", 96, 96, 3)
        basic_conv(out, f"{p}.branch_pool", cin, pool_features, 1)

    def b(p, cin):
        basic_conv(out, f"{p}.branch3x3", cin, 384, 3)
        basic_conv(out, f"{p}.branch3x3dbl_1", cin, 64, 1)
        basic_conv(out, f"{p}.branch3x3dbl_2", 64, 96, 3)
        basic_conv(out, f"{p}.branch3x3dbl_3", 96, 96, 3)

    def c(p, cin, c7):
        basic_conv(out, f"{p}.branch1x1", cin, 192, 1)
        basic_conv(out, f"{p}.branch7x7_1", cin, c7, 1)
        basic_conv(out, f"{p}.branch7x7_2", c7, c7, (1, 7))
        basic_conv(out, f"{p}.branch7x7_3", c7, 192, (7, 1))
        basic_conv(out, f"{p}.branch7x7dbl_1", cin, c7, 1)
        basic_conv(out, f"{p}.branch7x7dbl_2", c7, c7, (7, 1))
        basic_conv(out, f"{p}.branch7x7dbl_3", c7, c7, (1, 7))
        basic_conv(out, f"{p}.branch7x7dbl_4", c7, c7, (7, 1))
        basic_conv(out, f"{p}.branch7x7dbl_5", c7, 192, (1, 7))
        basic_conv(out, f"{p}.branch_pool", cin, 192, 1)

    def d(p, cin):
        basic_conv(out, f"{p}.branch3x3_1", cin, 192, 1)
        basic_conv(out, f"{p}.branch3x3_2", 192, 320, 3)
        basic_conv(out, f"{p}.branch7x7x3_1", cin, 192, 1)
        basic_conv(out, f"{p}.branch7x7x3_2", 192, 192, (1, 7))
        basic_conv(out, f"{p}.branch7x7x3_3", 192, 192, (7, 1))
        basic_conv(out, f"{p}.branch7x7x3_4", 192, 192, 3)

    def e(p, cin):
        basic_conv(out, f"{p}.branch1x1", cin, 320, 1)
        basic_conv(out, f"{p}.branch3x3_1", cin, 384, 1)
        basic_conv(out, f"{p}.branch3x3_2a", 384, 384, (1, 3))
        basic_conv(out, f"{p}.branch3x3_2b", 384, 384, (3, 1))
        basic_conv(out, f"{p}.branch3x3dbl_1", cin, 448, 1)
        basic_conv(out, f"{p}.branch3x3dbl_2", 448, 384, 3)
        basic_conv(out, f"{p}.branch3x3dbl_3a", 384, 384, (1, 3))
        basic_conv(out, f"{p}.branch3x3dbl_3b", 384, 384, (3, 1))
        basic_conv(out, f"{p}.branch_pool", cin, 192, 1)

    a("Mixed_5b", 192, 32)
    a("Mixed_5c", 256, 64)
    a("Mixed_5d", 288, 64)
    b("Mixed_6a", 288)
    c("Mixed_6b", 768, 128)
    c("Mixed_6c", 768, 160)
    c("Mixed_6d", 768, 160)
    c("Mixed_6e", 768, 192)
    if aux_logits:  # self.AuxLogits is assigned between Mixed_6e and Mixed_7a
        basic_conv(out, "AuxLogits.conv0", 768, 128, 1)
        basic_conv(out, "AuxLogits.conv1", 128, 768, 5)
        linear(out, "AuxLogits.fc", 768, num_classes)
    d("Mixed_7a", 768)
    e("Mixed_7b", 1280)
    e("Mixed_7c", 2048)
    linear(out, "fc", 2048, num_classes)
    return out


def inception_layouts() -> dict[str, Layout]:
    """Our registry name -> torchvision layout (``googlenet_bn`` is torchvision's ``googlenet``)."""
    return {"googlenet_bn": googlenet_layout(), "inception_v3": inception_v3_layout()}


if __name__ == "__main__":
    for name, lay in inception_layouts().items():
        (KEY_DIR / f"{name}.txt").write_text(format_layout(lay))
        print(name, len(lay))
