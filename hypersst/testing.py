"""Assertion helpers and tolerances shared by hypersst's tests and by users' own tests."""

from __future__ import annotations

import torch

__all__ = ["DTYPE_TOLERANCE", "tolerance_for"]

# Absolute tolerance for values that went through a few matrix products of moderate size.
DTYPE_TOLERANCE = {
    torch.float16: 1e-2,
    torch.bfloat16: 5e-2,
    torch.float32: 1e-5,
    torch.float64: 1e-12,
}


def tolerance_for(dtype: torch.dtype, scale: float = 1.0) -> float:
    """Return the absolute tolerance for ``dtype``, multiplied by ``scale``.

    Raises:
        ValueError: if ``dtype`` is not a floating-point type listed in ``DTYPE_TOLERANCE``.
    """
    if dtype not in DTYPE_TOLERANCE:
        raise ValueError(f"no tolerance defined for dtype {dtype}; expected one of {sorted(map(str, DTYPE_TOLERANCE))}")
    return DTYPE_TOLERANCE[dtype] * scale
