"""Argument checks and small constructors shared by the spectral and low-rank layers."""

from __future__ import annotations

__all__ = ["check_rank", "check_sparse_matrix", "linear_from_weight"]


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


def check_sparse_matrix(x, name: str, *, label: str = "a sparse input", shape: str = "(batch, in)") -> None:
    """Raise unless the sparse tensor ``x`` is a 2-D COO or CSR matrix with scalar entries.

    Args:
        x: the sparse tensor to check.
        name: owner named first in the messages.
        label: what ``x`` is, for the messages.
        shape: the expected shape, for the messages.

    Raises:
        TypeError: if ``x`` has a sparse layout other than COO or CSR.
        ValueError: if ``x`` has batch dimensions or dense (hybrid) dimensions.
    """
    import torch

    if x.layout not in (torch.sparse_coo, torch.sparse_csr):
        raise TypeError(
            f"{name}: {label} must use the COO or CSR layout, got {x.layout}; convert it with x.to_sparse_coo() "
            "or pass a dense tensor"
        )
    if x.dim() != 2 or x.dense_dim() != 0:
        raise ValueError(
            f"{name}: {label} must be a 2-D {shape} matrix with scalar entries, got shape {tuple(x.shape)} with "
            f"{x.dense_dim()} dense dimensions; flatten the batch dimensions or pass a dense tensor"
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
