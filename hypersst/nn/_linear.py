"""Building the Euclidean linear map inside a hyperbolic layer, for every training method."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from hypersst.lowrank import make_linear

__all__ = ["build_linear", "check_dropout", "check_features", "load_dense_"]


def check_features(value, label: str, owner: str, minimum: int = 1) -> int:
    """Return ``value`` if it is an int ``>= minimum``, else raise ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}: {label} must be an int >= {minimum}, got {value!r}")
    return value


def check_dropout(p, owner: str) -> float:
    """Return ``p`` as a float in ``[0, 1)`` or raise ``ValueError``."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) < 1.0:
        raise ValueError(f"{owner}: dropout must be a probability in [0, 1), got {p!r}")
    return float(p)


def build_linear(
    in_features: int, out_features: int, *, bias: bool, method: str, rank: Optional[int], **options
) -> nn.Module:
    """Build the inner linear map of a hyperbolic layer with ``hypersst.lowrank.make_linear``."""
    return make_linear(in_features, out_features, bias=bias, method=method, rank=rank, **options)


@torch.no_grad()
def load_dense_(linear: nn.Module, weight: Tensor, bias: Optional[Tensor], owner: str) -> None:
    """Make ``linear`` compute ``x @ weight.T + bias``, whatever its training method.

    An ``nn.Linear`` gets copies of the tensors. An SST layer factorizes ``weight`` with its
    ``load_dense_weight_``. A LoRA or ReLoRA* layer takes ``weight`` as its frozen base, with a zero update.
    """
    if isinstance(linear, nn.Linear):
        linear.weight.copy_(weight)
    elif hasattr(linear, "load_dense_weight_"):
        linear.load_dense_weight_(weight)
    elif hasattr(linear, "base_weight") and hasattr(linear, "lora_B"):
        linear.base_weight.copy_(weight)
        linear.lora_B.zero_()
    else:
        raise TypeError(f"{owner}: cannot load a dense weight into {type(linear).__name__}")
    if bias is not None:
        if linear.bias is None:
            raise ValueError(f"{owner}: the inner linear has no bias to load")
        linear.bias.copy_(bias)
