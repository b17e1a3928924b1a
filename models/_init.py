"""Weight initialisation shared by the zoo (Kaiming/MSRA by default, as the lecture recommends)."""
from __future__ import annotations

from torch import nn


def init_weights(model: nn.Module, scheme: str = "kaiming", last_linear_std: float = 0.01) -> None:
    """Initialise conv/linear weights in place.

    ``kaiming``: He et al. 2015, N(0, 2/fan_out) for convs (ReLU gain), so activations keep
    their scale through depth.  ``xavier``: Glorot uniform.  ``normal``: N(0, 0.01).
    Biases start at 0, BN at (1, 0).  The final classifier gets a small std so that the initial
    loss is close to ln(num_classes), the lecture's first sanity check.
    """
    last_linear = None
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)):
            if scheme == "kaiming":
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif scheme == "xavier":
                nn.init.xavier_uniform_(m.weight)
            elif scheme == "normal":
                nn.init.normal_(m.weight, 0.0, 0.01)
            else:
                raise ValueError(f"unknown init scheme {scheme!r}")
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
