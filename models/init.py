"""Weight initialisation shared by the zoo (Kaiming/MSRA by default, as the lecture recommends).

A model built on the ``meta`` device (how every analysis builds the zoo) has no values to
initialise, so the random draws are skipped there.  That is not only saving work: PyTorch's meta
kernel for ``Tensor.normal_`` is a Python reference (``torch._refs.normal``) whose decorator
imports ``torch._dynamo`` on first use, 0.8 s of start-up that a table never needs.
"""
from __future__ import annotations

from torch import nn

SCHEMES = ("kaiming", "xavier", "normal")


def is_meta(model: nn.Module) -> bool:
    """True when ``model``'s parameters live on the meta device (shapes only, no values)."""
    first = next(model.parameters(), None)
    return first is not None and first.is_meta


def init_weights(model: nn.Module, scheme: str = "kaiming", last_linear_std: float = 0.01) -> None:
    """Initialise conv/linear weights in place (a no-op on the meta device).

    ``kaiming``: He et al. 2015, N(0, 2/fan_out) for convs (ReLU gain), so activations keep
    their scale through depth.  ``xavier``: Glorot uniform.  ``normal``: N(0, 0.01).
    Biases start at 0, BN at (1, 0).  The final classifier gets a small std so that the initial
    loss is close to ln(num_classes), the lecture's first sanity check.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}")
    if is_meta(model):
        return
    last_linear = None
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)):
            if scheme == "kaiming":
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif scheme == "xavier":
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.normal_(m.weight, 0.0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if scheme == "xavier":
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.normal_(m.weight, 0.0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
            last_linear = m
    if last_linear is not None:
        nn.init.normal_(last_linear.weight, 0.0, last_linear_std)
