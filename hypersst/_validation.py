"""Argument checks and small constructors shared by the spectral and low-rank layers."""

from __future__ import annotations

__all__ = ["check_rank", "linear_from_weight"]


def check_rank(rank, in_features: int, out_features: int, name: str) -> None:
    """Raise unless ``rank`` is an int in ``[1, min(in_features, out_features)]``, naming the layer ``name``.

    Raises:
        TypeError: if ``rank`` is not an int (``bool`` included).
        ValueError: if ``rank`` is out of range.
    """
    k = min(in_features, out_features)
    if isinstance(rank, bool) or not isinstance(rank, int):
        raise TypeError(f"{name}: rank must be an int, got {type(rank).__name__} {rank!r}")
    if not 1 <= rank <= k:
        raise ValueError(
            f"{name}: rank={rank} is out of range for a {out_features}x{in_features} weight; "
            f"choose 1 <= rank <= min(in_features, out_features) = {k}"
        )


def linear_from_weight(weight, bias=None):
    """Return an ``nn.Linear`` whose weight and bias are copies of ``weight`` ``(out, in)`` and ``bias``."""
    import torch
    from torch import nn

    out_features, in_features = weight.shape
    linear = nn.Linear(in_features, out_features, bias=bias is not None, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        linear.weight.copy_(weight)
        if bias is not None:
            linear.bias.copy_(bias)
    return linear
